//! The C API's tokenizer on arbitrary arguments: encode arbitrary bytes (invalid UTF-8 included)
//! and decode arbitrary ids, into buffers of arbitrary capacity. Never a panic; a call either
//! fills the buffer or reports the size it needs, and that size is enough.
#![no_main]
use std::ffi::CString;
use std::ptr;
use std::sync::OnceLock;

use gptrt_capi::gptrt_status_t::{GPTRT_ERROR_BUFFER_TOO_SMALL, GPTRT_OK};
use gptrt_capi::tokenizer::*;
use gptrt_fuzz::assert_no_bug;
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

struct Handle(*mut gptrt_tokenizer_t);
// SAFETY: a handle is an id; the C API's tokenizer functions are thread-safe.
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

fn tokenizer() -> *const gptrt_tokenizer_t {
    static HANDLE: OnceLock<Handle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let dir = CString::new(gptrt_fuzz::fixture_dir().to_str().unwrap()).unwrap();
            let mut handle = ptr::null_mut();
            assert_eq!(
                unsafe { gptrt_tokenizer_load(dir.as_ptr(), &mut handle) },
                GPTRT_OK
            );
            Handle(handle)
        })
        .0
}

fuzz_target!(|data: &[u8]| {
    let tokenizer = tokenizer();
    let mut u = Unstructured::new(data);
    let capacity = u.int_in_range(0..=64usize).unwrap_or(0);
    let skip = u.arbitrary().unwrap_or(false);
    let split = u.int_in_range(0..=u.len()).unwrap_or(0);
    let rest = u.take_rest();
    let (text, id_bytes) = rest.split_at(split.min(rest.len()));
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    let text = CString::new(&text[..end]).unwrap();

    let mut ids = vec![0u32; capacity];
    let mut count = 0usize;
    let status = unsafe {
        gptrt_tokenizer_encode(
            tokenizer,
            text.as_ptr(),
            ids.as_mut_ptr(),
            capacity,
            &mut count,
        )
    };
    assert_no_bug("encode", status);
    if status == GPTRT_ERROR_BUFFER_TOO_SMALL {
        assert!(count > capacity);
        ids.resize(count, 0);
        let status = unsafe {
            gptrt_tokenizer_encode(
                tokenizer,
                text.as_ptr(),
                ids.as_mut_ptr(),
                count,
                &mut count,
            )
        };
        assert_eq!(status, GPTRT_OK, "encode with the size it asked for");
    }

    let arbitrary_ids: Vec<u32> = id_bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) % 60_000)
        .collect();
    for ids in [&ids[..count.min(ids.len())], &arbitrary_ids[..]] {
        let mut buffer = vec![0u8; capacity];
        let mut size = 0usize;
        let status = unsafe {
            gptrt_tokenizer_decode(
                tokenizer,
                ids.as_ptr(),
                ids.len(),
                skip,
                buffer.as_mut_ptr().cast(),
                capacity,
                &mut size,
            )
        };
        assert_no_bug("decode", status);
        if status == GPTRT_ERROR_BUFFER_TOO_SMALL {
            buffer.resize(size, 0);
            let status = unsafe {
                gptrt_tokenizer_decode(
                    tokenizer,
                    ids.as_ptr(),
                    ids.len(),
                    skip,
                    buffer.as_mut_ptr().cast(),
                    size,
                    &mut size,
                )
            };
            assert_eq!(status, GPTRT_OK, "decode with the size it asked for");
        }
        if status == GPTRT_OK || status == GPTRT_ERROR_BUFFER_TOO_SMALL {
            assert!(buffer.len() >= size && size >= 1 && buffer[size - 1] == 0);
        }
    }
});
