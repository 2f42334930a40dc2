//! The host API handed to plugins: tokenizer, scoring, generation, logging, over the model the
//! instance was created with.

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::{Arc, Mutex};

use gptrt_plugin_api::*;

use crate::config::GenerationConfig;
use crate::model::Model;

/// What `host_data` points to: the model (if any) and the last message the plugin logged.
pub(super) struct HostContext {
    pub(super) model: Option<Arc<Model>>,
    pub(super) last_log: Mutex<Option<String>>,
    /// Capability `org.gptrt.token_bytes`: points into the model's tokenizer, which `model` keeps
    /// alive as long as this context.
    token_bytes: Option<GptrtTokenBytes>,
    /// Capability `org.gptrt.hidden_states`, when the model's graph returns them.
    hidden_states: Option<GptrtHiddenStates>,
    /// Capability `org.gptrt.sessions`, with a model.
    pub(super) sessions_table: Option<GptrtSessions>,
    /// The sessions this instance made through it, freed with the context at the latest.
    pub(super) sessions: super::host_sessions::Registry,
    /// Capability `org.gptrt.output` and where its text goes.
    output_table: GptrtOutput,
    pub(super) output: super::host_output::Output,
}

/// The host API struct and its context, at a stable address for the life of an instance.
pub(super) struct HostApi {
    pub(super) api: GptrtHostApi,
    pub(super) context: Box<HostContext>,
}

impl HostApi {
    pub(super) fn new(model: Option<Arc<Model>>) -> Box<HostApi> {
        let token_bytes = model.as_ref().map(|model| {
            let (offsets, bytes, special) = model.tokenizer().byte_table();
            GptrtTokenBytes {
                struct_size: std::mem::size_of::<GptrtTokenBytes>(),
                vocab_size: special.len(),
                offsets: offsets.as_ptr(),
                bytes: bytes.as_ptr(),
                // `bool` is one byte, 0 or 1: the ABI's flags.
                special: special.as_ptr().cast::<u8>(),
            }
        });
        let hidden_states = model.as_deref().and_then(super::host_hidden::table);
        let sessions_table = model.as_deref().map(super::host_sessions::table);
        let mut context = Box::new(HostContext {
            hidden_states,
            sessions_table,
            sessions: Default::default(),
            model,
            last_log: Mutex::new(None),
            token_bytes,
            output_table: super::host_output::Output::table(),
            output: Default::default(),
        });
        let host_data = (&mut *context as *mut HostContext).cast();
        Box::new(HostApi {
            api: GptrtHostApi {
                struct_size: std::mem::size_of::<GptrtHostApi>(),
                abi: GPTRT_PLUGIN_ABI_VERSION,
                host_data,
                log: Some(host_log),
                tokenize: Some(host_tokenize),
                detokenize: Some(host_detokenize),
                score: Some(host_score),
                forward_logits: Some(host_forward_logits),
                generate: Some(host_generate),
                free_string: Some(host_free_string),
                get_capability: Some(host_get_capability),
                score_continuations: Some(super::host_model::host_score_continuations),
                model_config_json: Some(super::host_model::host_model_config_json),
            },
            context,
        })
    }

    pub(super) fn last_log(&self) -> Option<String> {
        self.context.last_log.lock().ok().and_then(|m| m.clone())
    }
}

/// # Safety
/// `host_data` is the `HostContext` this module created.
pub(super) unsafe fn context<'a>(host_data: *mut c_void) -> Option<&'a HostContext> {
    // SAFETY: see above.
    unsafe { host_data.cast::<HostContext>().as_ref() }
}

/// Run a host function body behind a panic boundary; a panic becomes an error status.
pub(super) fn guarded(body: impl FnOnce() -> i32) -> i32 {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(GPTRT_PLUGIN_ERROR)
}

/// # Safety
/// `text` is NULL or NUL-terminated.
pub(super) unsafe fn arg_str<'a>(text: *const c_char) -> Option<&'a str> {
    if text.is_null() {
        return None;
    }
    // SAFETY: see above.
    unsafe { CStr::from_ptr(text) }.to_str().ok()
}

/// # Safety
/// `ptr` is valid for `len` elements (or `len` is 0).
pub(super) unsafe fn arg_slice<'a, T>(ptr: *const T, len: usize) -> Option<&'a [T]> {
    if len == 0 {
        return Some(&[]);
    }
    if ptr.is_null() {
        return None;
    }
    // SAFETY: see above.
    Some(unsafe { std::slice::from_raw_parts(ptr, len) })
}

unsafe extern "C" fn host_log(host_data: *mut c_void, level: i32, message: *const c_char) {
    guarded(|| {
        // SAFETY: host API contract.
        if let (Some(ctx), Some(text)) =
            (unsafe { context(host_data) }, unsafe { arg_str(message) })
        {
            if level <= 1 {
                eprintln!("plugin: {text}");
            }
            if let Ok(mut last) = ctx.last_log.lock() {
                *last = Some(text.to_string());
            }
        }
        GPTRT_PLUGIN_OK
    });
}

fn write_out<T: Copy>(values: &[T], out: *mut T, capacity: usize, out_len: *mut usize) -> i32 {
    if out_len.is_null() {
        return GPTRT_PLUGIN_INVALID_ARGUMENT;
    }
    // SAFETY: `out_len` checked; `out` is valid for `capacity` per the contract.
    unsafe { *out_len = values.len() };
    if values.len() > capacity || (out.is_null() && !values.is_empty()) {
        return GPTRT_PLUGIN_BUFFER_TOO_SMALL;
    }
    // SAFETY: capacity checked above.
    unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), out, values.len()) };
    GPTRT_PLUGIN_OK
}

unsafe extern "C" fn host_tokenize(
    host_data: *mut c_void,
    text: *const c_char,
    ids: *mut u32,
    capacity: usize,
    out_len: *mut usize,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(text)) = (unsafe { context(host_data) }, unsafe { arg_str(text) })
        else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(model) = &ctx.model else {
            return GPTRT_PLUGIN_UNSUPPORTED;
        };
        match model.tokenizer().encode(text) {
            Ok(encoded) => write_out(&encoded, ids, capacity, out_len),
            Err(_) => GPTRT_PLUGIN_ERROR,
        }
    })
}

unsafe extern "C" fn host_detokenize(
    host_data: *mut c_void,
    ids: *const u32,
    n_ids: usize,
    text: *mut c_char,
    capacity: usize,
    out_len: *mut usize,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(ids)) = (unsafe { context(host_data) }, unsafe {
            arg_slice(ids, n_ids)
        }) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(model) = &ctx.model else {
            return GPTRT_PLUGIN_UNSUPPORTED;
        };
        let Ok(decoded) = model.tokenizer().decode(ids, false) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let bytes = decoded.as_bytes();
        if out_len.is_null() {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        }
        // SAFETY: checked non-NULL.
        unsafe { *out_len = bytes.len() };
        if text.is_null() || capacity < bytes.len() + 1 {
            return GPTRT_PLUGIN_BUFFER_TOO_SMALL;
        }
        // SAFETY: capacity checked, NUL included.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), text.cast::<u8>(), bytes.len());
            *text.add(bytes.len()) = 0;
        }
        GPTRT_PLUGIN_OK
    })
}

unsafe extern "C" fn host_score(
    host_data: *mut c_void,
    context_ids: *const u32,
    n_context: usize,
    continuation: *const u32,
    n_continuation: usize,
    out_logprob: *mut f64,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(context_ids), Some(continuation)) = (
            unsafe { context(host_data) },
            unsafe { arg_slice(context_ids, n_context) },
            unsafe { arg_slice(continuation, n_continuation) },
        ) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(model) = &ctx.model else {
            return GPTRT_PLUGIN_UNSUPPORTED;
        };
        if out_logprob.is_null() {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        }
        match model.score(context_ids, continuation) {
            Ok(score) => {
                // SAFETY: checked non-NULL.
                unsafe { *out_logprob = score };
                GPTRT_PLUGIN_OK
            }
            Err(_) => GPTRT_PLUGIN_INVALID_ARGUMENT,
        }
    })
}

unsafe extern "C" fn host_forward_logits(
    host_data: *mut c_void,
    ids: *const u32,
    n_ids: usize,
    logits: *mut f32,
    capacity: usize,
    out_len: *mut usize,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(ids)) = (unsafe { context(host_data) }, unsafe {
            arg_slice(ids, n_ids)
        }) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(model) = &ctx.model else {
            return GPTRT_PLUGIN_UNSUPPORTED;
        };
        match model.next_token_logits(ids) {
            Ok(values) => write_out(&values, logits, capacity, out_len),
            Err(_) => GPTRT_PLUGIN_INVALID_ARGUMENT,
        }
    })
}

unsafe extern "C" fn host_generate(
    host_data: *mut c_void,
    prompt: *const c_char,
    config_json: *const c_char,
    out_text: *mut *mut c_char,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(prompt)) = (unsafe { context(host_data) }, unsafe { arg_str(prompt) })
        else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(model) = &ctx.model else {
            return GPTRT_PLUGIN_UNSUPPORTED;
        };
        if out_text.is_null() {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        }
        // SAFETY: host API contract.
        let config = match unsafe { arg_str(config_json) } {
            None if !config_json.is_null() => return GPTRT_PLUGIN_INVALID_ARGUMENT,
            None => model.generation_config().clone(),
            Some(json) => match serde_json::from_str::<GenerationConfig>(json) {
                Ok(config) => config,
                Err(_) => return GPTRT_PLUGIN_INVALID_ARGUMENT,
            },
        };
        match model
            .generate(prompt, &config)
            .map(|g| CString::new(g.text.replace('\0', "")))
        {
            Ok(Ok(text)) => {
                // SAFETY: checked non-NULL; released by host_free_string.
                unsafe { *out_text = text.into_raw() };
                GPTRT_PLUGIN_OK
            }
            _ => GPTRT_PLUGIN_ERROR,
        }
    })
}

unsafe extern "C" fn host_free_string(_host_data: *mut c_void, text: *mut c_char) {
    if !text.is_null() {
        // SAFETY: allocated by CString::into_raw in host_generate.
        drop(unsafe { CString::from_raw(text) });
    }
}

unsafe extern "C" fn host_get_capability(
    host_data: *mut c_void,
    id: *const c_char,
) -> *const c_void {
    let found = std::panic::catch_unwind(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(id)) = (unsafe { context(host_data) }, unsafe { arg_str(id) }) else {
            return std::ptr::null();
        };
        if let (GPTRT_CAPABILITY_SESSIONS, Some(table)) = (id, &ctx.sessions_table) {
            return (table as *const GptrtSessions).cast::<c_void>();
        }
        if id == GPTRT_CAPABILITY_OUTPUT {
            return (&ctx.output_table as *const GptrtOutput).cast::<c_void>();
        }
        match (id, &ctx.token_bytes, &ctx.hidden_states) {
            (GPTRT_CAPABILITY_TOKEN_BYTES, Some(table), _) => {
                (table as *const GptrtTokenBytes).cast::<c_void>()
            }
            (GPTRT_CAPABILITY_HIDDEN_STATES, _, Some(table)) => {
                (table as *const GptrtHiddenStates).cast::<c_void>()
            }
            // Anything else is not offered: plugins must cope with NULL.
            _ => std::ptr::null(),
        }
    });
    found.unwrap_or(std::ptr::null())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_byte_table_is_the_tokenizers_and_absent_without_a_model() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/fixtures/tiny-random-gpt2/single");
        let model = Arc::new(Model::load(dir).expect("the tiny fixture loads"));
        let api = HostApi::new(Some(model.clone()));
        // SAFETY: a host API this module made, alive for the test.
        let host = unsafe { Host::from_raw(&api.api) };
        let table = host.token_bytes().expect("offered with a model");
        let tokenizer = model.tokenizer();
        assert_eq!(table.len(), tokenizer.vocab_size());
        for id in [0, 198, 15496, 50255, 50256] {
            assert_eq!(
                table.token(id),
                Some(tokenizer.token_bytes(id).unwrap()),
                "token {id}"
            );
            assert_eq!(table.is_special(id), tokenizer.is_special(id), "token {id}");
        }
        assert!(table.is_special(50256) && !table.is_special(15496));
        assert_eq!(table.token(50257), None);
        let unknown = c"org.example.nothing";
        let get = api.api.get_capability.expect("the slot is set");
        // SAFETY: as above; a NUL-terminated id.
        assert!(unsafe { get(api.api.host_data, unknown.as_ptr()) }.is_null());

        let bare = HostApi::new(None);
        // SAFETY: as above.
        assert!(unsafe { Host::from_raw(&bare.api) }.token_bytes().is_none());
    }
}
