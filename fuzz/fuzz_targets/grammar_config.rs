//! The grammar plugin's config (`{"json_schema": ...}`, `{"regex": ...}`, `{"grammar": "lark"}`)
//! as arbitrary text, through the plugin's C vtable as a host calls it, over GPT-2's token table
//! (the tiny fixture's tokenizer): `create` refuses it with a message or makes an instance, never
//! a panic, an abort or a hang (libFuzzer's timeout); an instance then computes a few masks and
//! accepts a token of each, in bounded time too.
#![no_main]
use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;
use std::sync::OnceLock;

use gptrt_plugin_api::*;
use gptrt_plugin_grammar::Grammar;
use libfuzzer_sys::fuzz_target;

/// Mask steps run on an instance that `create` made.
const STEPS: usize = 3;

/// The host side: GPT-2's token byte table and the fixture's config.
struct FakeHost {
    // Read through `table` only: kept here so its pointers stay valid.
    #[allow(dead_code)]
    offsets: Vec<usize>,
    #[allow(dead_code)]
    bytes: Vec<u8>,
    #[allow(dead_code)]
    special: Vec<u8>,
    table: GptrtTokenBytes,
    config: CString,
    api: GptrtHostApi,
    vtable: GptrtSamplerVtable,
    vocab: usize,
}

// SAFETY: built once, never changed; the pointers inside point into the struct's own vectors.
unsafe impl Send for FakeHost {}
// SAFETY: as above.
unsafe impl Sync for FakeHost {}

unsafe extern "C" fn get_capability(host_data: *mut c_void, id: *const c_char) -> *const c_void {
    // SAFETY: `host_data` is the FakeHost below; `id` a NUL-terminated id.
    let host = unsafe { &*host_data.cast::<FakeHost>() };
    if unsafe { CStr::from_ptr(id) }.to_bytes() == GPTRT_CAPABILITY_TOKEN_BYTES.as_bytes() {
        (&host.table as *const GptrtTokenBytes).cast()
    } else {
        ptr::null()
    }
}

unsafe extern "C" fn model_config_json(host_data: *mut c_void, out: *mut *mut c_char) -> i32 {
    // SAFETY: as above; `out` is valid for a write.
    let host = unsafe { &*host_data.cast::<FakeHost>() };
    unsafe { *out = host.config.clone().into_raw() };
    GPTRT_PLUGIN_OK
}

unsafe extern "C" fn free_string(_host_data: *mut c_void, text: *mut c_char) {
    // SAFETY: made by `model_config_json` with `into_raw`.
    drop(unsafe { CString::from_raw(text) });
}

fn host() -> &'static FakeHost {
    static HOST: OnceLock<Box<FakeHost>> = OnceLock::new();
    HOST.get_or_init(|| {
        let tokenizer = gptrt_fuzz::tokenizer();
        let vocab = tokenizer.vocab_size();
        let (mut offsets, mut bytes, mut special) = (vec![0], Vec::new(), Vec::new());
        for id in 0..vocab as u32 {
            bytes.extend_from_slice(tokenizer.token_bytes(id).unwrap());
            offsets.push(bytes.len());
            special.push(u8::from(tokenizer.is_special(id)));
        }
        let config = std::fs::read_to_string(gptrt_fuzz::fixture_dir().join("config.json"))
            .expect("the fixture's config.json");
        let descriptor = gptrt_plugin_api::__private::sampler::<Grammar>();
        // SAFETY: a sampler descriptor's vtable is a GptrtSamplerVtable; copied, so the
        // descriptor may go.
        let vtable = unsafe { *descriptor.descriptor.vtable.cast::<GptrtSamplerVtable>() };
        let mut host = Box::new(FakeHost {
            table: GptrtTokenBytes {
                struct_size: std::mem::size_of::<GptrtTokenBytes>(),
                vocab_size: special.len(),
                offsets: offsets.as_ptr(),
                bytes: bytes.as_ptr(),
                special: special.as_ptr(),
            },
            offsets,
            bytes,
            special,
            config: CString::new(config).unwrap(),
            api: GptrtHostApi {
                struct_size: std::mem::size_of::<GptrtHostApi>(),
                abi: GPTRT_PLUGIN_ABI_VERSION,
                host_data: ptr::null_mut(),
                log: None,
                tokenize: None,
                detokenize: None,
                score: None,
                forward_logits: None,
                generate: None,
                free_string: Some(free_string),
                get_capability: Some(get_capability),
                score_continuations: None,
                model_config_json: Some(model_config_json),
            },
            vtable,
            vocab,
        });
        host.api.host_data = (&mut *host as *mut FakeHost).cast();
        // The vectors moved into the box keep their heap buffers: the table's pointers hold.
        debug_assert_eq!(host.table.offsets, host.offsets.as_ptr());
        host
    })
}

/// A few steps as a host's sampler chain runs them: every token a candidate, the plugin keeps
/// the allowed ones; the first kept is chosen.
fn steps(host: &FakeHost, instance: *mut c_void) {
    let apply = host.vtable.apply.unwrap();
    let accept = host.vtable.accept.unwrap();
    let mut tokens: Vec<u32> = vec![0];
    for _ in 0..STEPS {
        let mut items: Vec<GptrtCandidate> = (0..host.vocab as u32)
            .map(|id| GptrtCandidate {
                id,
                logit: -((id % 101) as f32),
                p: 0.0,
            })
            .collect();
        let mut candidates = GptrtCandidates {
            struct_size: std::mem::size_of::<GptrtCandidates>(),
            data: items.as_mut_ptr(),
            size: items.len(),
            sorted: false,
            probs_valid: false,
            selected: -1,
            stop_reason: ptr::null(),
        };
        let context = GptrtSamplerContext {
            struct_size: std::mem::size_of::<GptrtSamplerContext>(),
            tokens: tokens.as_ptr(),
            n_tokens: tokens.len(),
            prompt_len: 1,
            max_length: 64,
            vocab_size: host.vocab,
        };
        // SAFETY: a live instance; the candidates and context are valid for the call.
        let status = unsafe { apply(instance, &mut candidates, &context) };
        assert_ne!(status, GPTRT_PLUGIN_PANIC, "apply panicked");
        if status != GPTRT_PLUGIN_OK || !candidates.stop_reason.is_null() {
            return;
        }
        assert!(candidates.size >= 1 && candidates.size <= items.len());
        let index = usize::try_from(candidates.selected).unwrap_or(0);
        assert!(
            index < candidates.size,
            "selected {index} of {}",
            candidates.size
        );
        let token = items[index].id;
        // SAFETY: a live instance.
        unsafe { accept(instance, token) };
        tokens.push(token);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = CString::new(text) else {
        return;
    };
    let host = host();
    let mut instance = ptr::null_mut();
    // SAFETY: the host API and config are valid for the call; `instance` for a write.
    let status =
        unsafe { (host.vtable.create.unwrap())(&host.api, config.as_ptr(), &mut instance) };
    assert_ne!(status, GPTRT_PLUGIN_PANIC, "create panicked");
    if status != GPTRT_PLUGIN_OK {
        assert!(instance.is_null());
        return;
    }
    steps(host, instance);
    // SAFETY: made by this vtable's create.
    unsafe { (host.vtable.destroy.unwrap())(instance) };
});
