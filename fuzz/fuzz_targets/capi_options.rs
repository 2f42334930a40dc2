//! The C API's generation options driven by arbitrary calls: string-keyed and typed setters with
//! arbitrary keys and values, `from_json` on arbitrary text, `validate`. No call panics (caught or
//! not), and whatever state the options reach, `to_json` writes JSON that `from_json` reads back
//! to the same options.
#![no_main]
use std::ffi::{c_char, CString};
use std::ptr;

use gptrt_capi::gptrt_status_t::{self, GPTRT_OK};
use gptrt_capi::options::*;
use gptrt_fuzz::assert_no_bug;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

// The typed setters live in a private module of the C API crate; their symbols are linked in.
// The handle types are opaque structs only ever used behind pointers.
#[allow(improper_ctypes)]
extern "C" {
    fn gptrt_generation_options_set_max_new_tokens(
        o: *mut gptrt_generation_options_t,
        v: usize,
    ) -> gptrt_status_t;
    fn gptrt_generation_options_set_num_beams(
        o: *mut gptrt_generation_options_t,
        v: usize,
    ) -> gptrt_status_t;
    fn gptrt_generation_options_set_temperature(
        o: *mut gptrt_generation_options_t,
        v: f32,
    ) -> gptrt_status_t;
    fn gptrt_generation_options_set_top_p(
        o: *mut gptrt_generation_options_t,
        v: f32,
    ) -> gptrt_status_t;
    fn gptrt_generation_options_set_max_time(
        o: *mut gptrt_generation_options_t,
        v: f64,
    ) -> gptrt_status_t;
    fn gptrt_generation_options_set_early_stopping(
        o: *mut gptrt_generation_options_t,
        v: u32,
    ) -> gptrt_status_t;
    fn gptrt_generation_options_set_seed(
        o: *mut gptrt_generation_options_t,
        v: u64,
    ) -> gptrt_status_t;
    fn gptrt_generation_options_set_stop_strings(
        o: *mut gptrt_generation_options_t,
        s: *const *const c_char,
        n: usize,
    ) -> gptrt_status_t;
    fn gptrt_generation_options_set_sequence_bias(
        o: *mut gptrt_generation_options_t,
        ids: *const u32,
        lengths: *const usize,
        biases: *const f32,
        n: usize,
    ) -> gptrt_status_t;
    fn gptrt_generation_options_set_bad_words_ids(
        o: *mut gptrt_generation_options_t,
        ids: *const u32,
        lengths: *const usize,
        n: usize,
    ) -> gptrt_status_t;
    fn gptrt_generation_options_set_eos_token_id(
        o: *mut gptrt_generation_options_t,
        ids: *const u32,
        n: usize,
    ) -> gptrt_status_t;
}

const KEYS: &[&str] = &[
    "max_new_tokens",
    "max_length",
    "min_new_tokens",
    "min_length",
    "max_time",
    "do_sample",
    "num_beams",
    "num_return_sequences",
    "length_penalty",
    "early_stopping",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "min_p",
    "epsilon_cutoff",
    "eta_cutoff",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "no_repeat_ngram_size",
    "renormalize_logits",
    "remove_invalid_values",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "seed",
    "logprobs",
    "stop_strings",
    "bad_words_ids",
    "sequence_bias",
    "suppress_tokens",
    "begin_suppress_tokens",
    "forced_eos_token_id",
    "truncate_prompt",
    "transformers_version",
];

/// Text for a C string: interior NULs end it, as they would in C.
fn c_string(u: &mut Unstructured<'_>) -> Result<CString> {
    let bytes: Vec<u8> = u.arbitrary()?;
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Ok(CString::new(&bytes[..end]).expect("no NUL left"))
}

fn key(u: &mut Unstructured<'_>) -> Result<CString> {
    if u.ratio(7, 8)? {
        Ok(CString::new(*u.choose(KEYS)?).unwrap())
    } else {
        c_string(u)
    }
}

fn to_json(options: *const gptrt_generation_options_t) -> CString {
    let mut size = 0usize;
    let status =
        unsafe { gptrt_generation_options_to_json(options, ptr::null_mut(), 0, &mut size) };
    assert_no_bug("to_json (size)", status);
    let mut buffer = vec![0u8; size];
    let status = unsafe {
        gptrt_generation_options_to_json(options, buffer.as_mut_ptr().cast(), size, &mut size)
    };
    assert_eq!(
        status, GPTRT_OK,
        "to_json into a buffer of the size it asked for"
    );
    CString::from_vec_with_nul(buffer).expect("one NUL, at the end")
}

fn step(u: &mut Unstructured<'_>, options: &mut *mut gptrt_generation_options_t) -> Result<()> {
    let o = *options;
    let (name, status) = match u.int_in_range(0..=17u8)? {
        0 => ("set_int", unsafe {
            gptrt_generation_options_set_int(o, key(u)?.as_ptr(), u.arbitrary()?)
        }),
        1 => ("set_float", unsafe {
            gptrt_generation_options_set_float(o, key(u)?.as_ptr(), u.arbitrary()?)
        }),
        2 => ("set_bool", unsafe {
            gptrt_generation_options_set_bool(o, key(u)?.as_ptr(), u.arbitrary()?)
        }),
        3 => ("set_string", unsafe {
            gptrt_generation_options_set_string(o, key(u)?.as_ptr(), c_string(u)?.as_ptr())
        }),
        4 => ("set_json", unsafe {
            gptrt_generation_options_set_json(o, key(u)?.as_ptr(), c_string(u)?.as_ptr())
        }),
        5 => ("unset", unsafe {
            gptrt_generation_options_unset(o, key(u)?.as_ptr())
        }),
        6 => ("validate", gptrt_generation_options_validate(o)),
        7 => ("set_max_new_tokens", unsafe {
            gptrt_generation_options_set_max_new_tokens(o, u.arbitrary()?)
        }),
        8 => ("set_num_beams", unsafe {
            gptrt_generation_options_set_num_beams(o, u.arbitrary()?)
        }),
        9 => ("set_temperature", unsafe {
            gptrt_generation_options_set_temperature(o, u.arbitrary()?)
        }),
        10 => ("set_top_p", unsafe {
            gptrt_generation_options_set_top_p(o, u.arbitrary()?)
        }),
        11 => ("set_max_time", unsafe {
            gptrt_generation_options_set_max_time(o, u.arbitrary()?)
        }),
        12 => ("set_early_stopping", unsafe {
            gptrt_generation_options_set_early_stopping(o, u.arbitrary()?)
        }),
        13 => ("set_seed", unsafe {
            gptrt_generation_options_set_seed(o, u.arbitrary()?)
        }),
        14 => {
            let strings: Vec<CString> = (0..u.int_in_range(0..=3u8)?)
                .map(|_| c_string(u))
                .collect::<Result<_>>()?;
            let pointers: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
            ("set_stop_strings", unsafe {
                gptrt_generation_options_set_stop_strings(o, pointers.as_ptr(), pointers.len())
            })
        }
        15 => {
            let lengths: Vec<usize> = (0..u.int_in_range(0..=3u8)?)
                .map(|_| u.int_in_range(0..=3usize))
                .collect::<Result<_>>()?;
            let ids: Vec<u32> = (0..lengths.iter().sum::<usize>())
                .map(|_| u.arbitrary())
                .collect::<Result<_>>()?;
            let biases: Vec<f32> = lengths
                .iter()
                .map(|_| u.arbitrary())
                .collect::<Result<_>>()?;
            if u.arbitrary()? {
                ("set_sequence_bias", unsafe {
                    gptrt_generation_options_set_sequence_bias(
                        o,
                        ids.as_ptr(),
                        lengths.as_ptr(),
                        biases.as_ptr(),
                        lengths.len(),
                    )
                })
            } else {
                ("set_bad_words_ids", unsafe {
                    gptrt_generation_options_set_bad_words_ids(
                        o,
                        ids.as_ptr(),
                        lengths.as_ptr(),
                        lengths.len(),
                    )
                })
            }
        }
        16 => {
            let ids: Vec<u32> = u.arbitrary()?;
            ("set_eos_token_id", unsafe {
                gptrt_generation_options_set_eos_token_id(o, ids.as_ptr(), ids.len())
            })
        }
        _ => {
            let mut fresh = ptr::null_mut();
            let status =
                unsafe { gptrt_generation_options_from_json(c_string(u)?.as_ptr(), &mut fresh) };
            if status == GPTRT_OK {
                gptrt_generation_options_free(o);
                *options = fresh;
            }
            ("from_json", status)
        }
    };
    assert_no_bug(name, status);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut options = ptr::null_mut();
    assert_eq!(
        unsafe { gptrt_generation_options_new(&mut options) },
        GPTRT_OK
    );
    while !u.is_empty() && step(&mut u, &mut options).is_ok() {}
    let json = to_json(options);
    let mut again = ptr::null_mut();
    let status = unsafe { gptrt_generation_options_from_json(json.as_ptr(), &mut again) };
    assert_eq!(
        status, GPTRT_OK,
        "to_json wrote what from_json refuses: {json:?}"
    );
    assert_eq!(
        to_json(again),
        json,
        "the options changed on the round trip"
    );
    gptrt_generation_options_free(again);
    gptrt_generation_options_free(options);
});
