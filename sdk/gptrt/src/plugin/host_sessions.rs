//! Host capability `org.gptrt.sessions` (ABI 1.2): dialogue sessions over the attached model,
//! handed to plugins as opaque handles. The sessions live in the instance's host context, so a
//! plugin that forgets to destroy one loses it when its instance is destroyed, not for good.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Mutex};

use gptrt_plugin_api::{
    GptrtSessionHandle, GptrtSessionTextFn, GptrtSessions, GPTRT_PLUGIN_BUFFER_TOO_SMALL,
    GPTRT_PLUGIN_ERROR, GPTRT_PLUGIN_INVALID_ARGUMENT, GPTRT_PLUGIN_OK, GPTRT_PLUGIN_UNSUPPORTED,
};

use super::host_api::{arg_slice, arg_str, context, guarded, HostContext};
use crate::config::GenerationConfig;
use crate::error::Error;
use crate::model::Model;
use crate::session::{SavedKv, Session};

/// The sessions one host context made, and the message of the last failed call.
#[derive(Default)]
pub(super) struct Registry {
    sessions: Mutex<HashMap<GptrtSessionHandle, Arc<Session>>>,
    next: Mutex<GptrtSessionHandle>,
    last_error: Mutex<Option<String>>,
}

/// The capability's table for `model`.
pub(super) fn table(model: &Model) -> GptrtSessions {
    GptrtSessions {
        struct_size: std::mem::size_of::<GptrtSessions>(),
        context_window: model.config().n_positions,
        create: Some(host_create),
        destroy: Some(host_destroy),
        append_text: Some(host_append_text),
        generate_turn: Some(host_generate_turn),
        rewind: Some(host_rewind),
        length: Some(host_length),
        tokens: Some(host_tokens),
        set_tokens: Some(host_set_tokens),
        save: Some(host_save),
        restore: Some(host_restore),
        free_bytes: Some(host_free_bytes),
        last_error: Some(host_last_error),
        prefill: Some(host_prefill),
    }
}

/// Why a call failed: its status, and the message `last_error` reports.
struct Failure(i32, String);

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let status = match error {
            Error::InvalidArgument { .. }
            | Error::InvalidToken { .. }
            | Error::InvalidOption { .. }
            | Error::ContextOverflow { .. }
            | Error::SavedState { .. } => GPTRT_PLUGIN_INVALID_ARGUMENT,
            _ => GPTRT_PLUGIN_ERROR,
        };
        Failure(status, error.to_string())
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure(GPTRT_PLUGIN_INVALID_ARGUMENT, message.into())
}

/// Run a session call: find the context and the model, run `body`, record a failure's message.
fn call(
    host_data: *mut c_void,
    body: impl FnOnce(&HostContext, &Arc<Model>) -> Result<(), Failure>,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let Some(ctx) = (unsafe { context(host_data) }) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(model) = &ctx.model else {
            return GPTRT_PLUGIN_UNSUPPORTED;
        };
        let outcome = body(ctx, model);
        let (status, message) = match outcome {
            Ok(()) => (GPTRT_PLUGIN_OK, None),
            Err(Failure(status, message)) => (status, Some(message)),
        };
        if let Ok(mut last) = ctx.sessions.last_error.lock() {
            *last = message;
        }
        status
    })
}

fn session(ctx: &HostContext, handle: GptrtSessionHandle) -> Result<Arc<Session>, Failure> {
    let sessions = ctx
        .sessions
        .sessions
        .lock()
        .map_err(|_| Failure(GPTRT_PLUGIN_ERROR, "the session table is poisoned".into()))?;
    sessions.get(&handle).cloned().ok_or_else(|| {
        invalid(format!(
            "no session with handle {handle} (destroyed, or another instance's)"
        ))
    })
}

/// Copy `bytes` into a host allocation released by `host_free_bytes`.
fn give_bytes(bytes: Vec<u8>, out: *mut *mut u8, out_len: *mut usize) {
    let boxed = bytes.into_boxed_slice();
    let len = boxed.len();
    // SAFETY: both checked non-NULL by the callers.
    unsafe {
        *out_len = len;
        *out = Box::into_raw(boxed).cast::<u8>();
    }
}

unsafe extern "C" fn host_create(
    host_data: *mut c_void,
    out_handle: *mut GptrtSessionHandle,
) -> i32 {
    call(host_data, |ctx, model| {
        if out_handle.is_null() {
            return Err(invalid("create: out_handle is NULL"));
        }
        let session = Arc::new(Session::new(model.clone())?);
        let mut next = ctx.sessions.next.lock().map_err(|_| invalid("poisoned"))?;
        *next += 1;
        let handle = *next;
        ctx.sessions
            .sessions
            .lock()
            .map_err(|_| invalid("poisoned"))?
            .insert(handle, session);
        // SAFETY: checked non-NULL.
        unsafe { *out_handle = handle };
        Ok(())
    })
}

unsafe extern "C" fn host_destroy(host_data: *mut c_void, handle: GptrtSessionHandle) -> i32 {
    call(host_data, |ctx, _| {
        let removed = ctx
            .sessions
            .sessions
            .lock()
            .map_err(|_| invalid("poisoned"))?
            .remove(&handle);
        removed
            .map(drop)
            .ok_or_else(|| invalid(format!("destroy: no session with handle {handle}")))
    })
}

unsafe extern "C" fn host_append_text(
    host_data: *mut c_void,
    handle: GptrtSessionHandle,
    text: *const c_char,
    out_added: *mut usize,
) -> i32 {
    call(host_data, |ctx, _| {
        // SAFETY: host API contract.
        let text = unsafe { arg_str(text) }
            .ok_or_else(|| invalid("append_text: text is NULL or not UTF-8"))?;
        let added = session(ctx, handle)?.append_text(text)?;
        if !out_added.is_null() {
            // SAFETY: checked non-NULL.
            unsafe { *out_added = added };
        }
        Ok(())
    })
}

/// The model's generation config with the fields of `json` (an object) laid over it.
fn turn_config(model: &Model, json: Option<&str>) -> Result<GenerationConfig, Failure> {
    let Some(json) = json else {
        return Ok(model.generation_config().clone());
    };
    let overrides: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| invalid(format!("generate_turn: config JSON: {e}")))?;
    let serde_json::Value::Object(overrides) = overrides else {
        return Err(invalid("generate_turn: config JSON is not an object"));
    };
    let base = serde_json::to_value(model.generation_config())
        .map_err(|e| Failure(GPTRT_PLUGIN_ERROR, e.to_string()))?;
    let with = |fields: &mut dyn Iterator<Item = (&String, &serde_json::Value)>| {
        let mut config = base.clone();
        if let serde_json::Value::Object(config) = &mut config {
            config.extend(fields.map(|(k, v)| (k.clone(), v.clone())));
        }
        serde_json::from_value::<GenerationConfig>(config)
    };
    with(&mut overrides.iter()).map_err(|error| {
        // serde's message does not say which field; find the first one that fails alone.
        let field = overrides
            .iter()
            .find(|field| with(&mut std::iter::once(*field)).is_err())
            .map_or(String::new(), |(name, _)| format!(" field \"{name}\""));
        invalid(format!("generate_turn: generation config{field}: {error}"))
    })
}

unsafe extern "C" fn host_generate_turn(
    host_data: *mut c_void,
    handle: GptrtSessionHandle,
    config_json: *const c_char,
    on_text: GptrtSessionTextFn,
    user_data: *mut c_void,
    out_json: *mut *mut c_char,
) -> i32 {
    call(host_data, |ctx, model| {
        if out_json.is_null() {
            return Err(invalid("generate_turn: out_json is NULL"));
        }
        // SAFETY: host API contract.
        let json = unsafe { arg_str(config_json) };
        if json.is_none() && !config_json.is_null() {
            return Err(invalid("generate_turn: config JSON is not UTF-8"));
        }
        let config = turn_config(model, json)?;
        let session = session(ctx, handle)?;
        session.generate_turn(&config, &mut |event| match on_text {
            Some(f) if !event.text.is_empty() => {
                // SAFETY: the plugin's callback, with a buffer valid for the call.
                let status = unsafe { f(user_data, event.text.as_ptr().cast(), event.text.len()) };
                status == 0
            }
            _ => true,
        })?;
        let result = session.result()?;
        let report = serde_json::json!({
            "text": result.text,
            "stop_reason": result.stop_reason.to_string(),
            "stop_string": result.stop_string,
            "token_ids": result.token_ids,
            "prompt_tokens_processed": result.stats.prompt_tokens,
        });
        let text = CString::new(report.to_string())
            .map_err(|_| Failure(GPTRT_PLUGIN_ERROR, "the reply contains NUL".into()))?;
        // SAFETY: checked non-NULL; released by the host API's free_string.
        unsafe { *out_json = text.into_raw() };
        Ok(())
    })
}

unsafe extern "C" fn host_rewind(
    host_data: *mut c_void,
    handle: GptrtSessionHandle,
    len: usize,
) -> i32 {
    call(host_data, |ctx, _| Ok(session(ctx, handle)?.rewind(len)?))
}

unsafe extern "C" fn host_length(
    host_data: *mut c_void,
    handle: GptrtSessionHandle,
    out_len: *mut usize,
) -> i32 {
    call(host_data, |ctx, _| {
        if out_len.is_null() {
            return Err(invalid("length: out_len is NULL"));
        }
        let len = session(ctx, handle)?.context_len()?;
        // SAFETY: checked non-NULL.
        unsafe { *out_len = len };
        Ok(())
    })
}

unsafe extern "C" fn host_tokens(
    host_data: *mut c_void,
    handle: GptrtSessionHandle,
    ids: *mut u32,
    capacity: usize,
    out_len: *mut usize,
) -> i32 {
    call(host_data, |ctx, _| {
        if out_len.is_null() {
            return Err(invalid("tokens: out_len is NULL"));
        }
        let tokens = session(ctx, handle)?.tokens()?;
        // SAFETY: checked non-NULL.
        unsafe { *out_len = tokens.len() };
        if capacity < tokens.len() || (ids.is_null() && !tokens.is_empty()) {
            return Err(Failure(
                GPTRT_PLUGIN_BUFFER_TOO_SMALL,
                format!("tokens: {} ids do not fit in {capacity}", tokens.len()),
            ));
        }
        // SAFETY: `ids` holds `capacity >= len` ids per the contract.
        unsafe { std::ptr::copy_nonoverlapping(tokens.as_ptr(), ids, tokens.len()) };
        Ok(())
    })
}

unsafe extern "C" fn host_set_tokens(
    host_data: *mut c_void,
    handle: GptrtSessionHandle,
    ids: *const u32,
    n_ids: usize,
) -> i32 {
    call(host_data, |ctx, _| {
        // SAFETY: host API contract.
        let ids =
            unsafe { arg_slice(ids, n_ids) }.ok_or_else(|| invalid("set_tokens: ids is NULL"))?;
        session(ctx, handle)?.set_tokens(ids)?;
        Ok(())
    })
}

unsafe extern "C" fn host_prefill(host_data: *mut c_void, handle: GptrtSessionHandle) -> i32 {
    call(host_data, |ctx, _| {
        session(ctx, handle)?.prefill()?;
        Ok(())
    })
}

unsafe extern "C" fn host_save(
    host_data: *mut c_void,
    handle: GptrtSessionHandle,
    fp16_kv: i32,
    data: *const u8,
    data_len: usize,
    out_bytes: *mut *mut u8,
    out_len: *mut usize,
) -> i32 {
    call(host_data, |ctx, _| {
        if out_bytes.is_null() || out_len.is_null() {
            return Err(invalid("save: out_bytes or out_len is NULL"));
        }
        // SAFETY: host API contract.
        let data =
            unsafe { arg_slice(data, data_len) }.ok_or_else(|| invalid("save: data is NULL"))?;
        let kv = if fp16_kv != 0 {
            SavedKv::F16
        } else {
            SavedKv::F32
        };
        let bytes = session(ctx, handle)?.save_with_data(kv, data)?;
        give_bytes(bytes, out_bytes, out_len);
        Ok(())
    })
}

unsafe extern "C" fn host_restore(
    host_data: *mut c_void,
    handle: GptrtSessionHandle,
    bytes: *const u8,
    len: usize,
    out_data: *mut *mut u8,
    out_len: *mut usize,
) -> i32 {
    call(host_data, |ctx, _| {
        if out_data.is_null() || out_len.is_null() {
            return Err(invalid("restore: out_data or out_len is NULL"));
        }
        // SAFETY: host API contract.
        let bytes =
            unsafe { arg_slice(bytes, len) }.ok_or_else(|| invalid("restore: bytes is NULL"))?;
        let data = session(ctx, handle)?.restore_with_data(bytes)?;
        give_bytes(data, out_data, out_len);
        Ok(())
    })
}

unsafe extern "C" fn host_free_bytes(_host_data: *mut c_void, bytes: *mut u8, len: usize) {
    if !bytes.is_null() {
        // SAFETY: made by `give_bytes` from a boxed slice of `len` bytes.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(bytes, len)) });
    }
}

unsafe extern "C" fn host_last_error(host_data: *mut c_void, out_text: *mut *mut c_char) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let Some(ctx) = (unsafe { context(host_data) }) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        if out_text.is_null() {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        }
        let message = ctx.sessions.last_error.lock().ok().and_then(|m| m.clone());
        let text = message.and_then(|m| CString::new(m.replace('\0', "")).ok());
        // SAFETY: checked non-NULL; released by the host API's free_string.
        unsafe { *out_text = text.map_or(std::ptr::null_mut(), CString::into_raw) };
        GPTRT_PLUGIN_OK
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gptrt_plugin_api::{Host, GPTRT_PLUGIN_INVALID_ARGUMENT};

    use super::super::host_api::HostApi;
    use crate::model::Model;

    fn tiny() -> Arc<Model> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/fixtures/tiny-random-gpt2/single");
        Arc::new(Model::load(dir).expect("the tiny fixture loads"))
    }

    #[test]
    fn sessions_check_their_arguments_and_die_with_the_instance_at_the_latest() {
        let model = tiny();
        let api = HostApi::new(Some(model.clone()));
        // SAFETY: a host API this module made, alive for the test.
        let host = unsafe { Host::from_raw(&api.api) };
        let sessions = host.sessions().expect("offered with a model");
        assert_eq!(sessions.context_window(), 128);
        let session = sessions.create().unwrap();
        assert_eq!(session.append_text("Hello world").unwrap(), 2);
        let report: serde_json::Value = serde_json::from_str(
            &session
                .generate_turn(
                    Some(r#"{"max_new_tokens": 3, "do_sample": false}"#),
                    &mut |_| true,
                )
                .unwrap(),
        )
        .unwrap();
        assert_eq!(report["token_ids"].as_array().unwrap().len(), 3, "{report}");
        assert_eq!(session.context_len().unwrap(), 5);
        session.rewind(2).unwrap();
        assert_eq!(
            session.tokens().unwrap(),
            model.tokenizer().encode("Hello world").unwrap()
        );

        // Past the end changes nothing (the SDK's rule).
        session.rewind(9).unwrap();
        assert_eq!(session.context_len().unwrap(), 2);
        let error = session
            .generate_turn(Some(r#"{"max_new_tokens": "many"}"#), &mut |_| true)
            .unwrap_err();
        assert!(error.contains("max_new_tokens"), "{error}");
        let error = session.set_tokens(&[70_000]).unwrap_err();
        assert!(error.contains("70000"), "{error}");
        let error = session.restore(b"not a state").unwrap_err();
        assert!(error.contains("restore"), "{error}");
        let destroy = sessions_table(&api).destroy.unwrap();
        // SAFETY: the host's own function on its own data; 12345 is no handle.
        let status = unsafe { destroy(api.api.host_data, 12345) };
        assert_eq!(status, GPTRT_PLUGIN_INVALID_ARGUMENT);
        let create = sessions_table(&api).create.unwrap();
        // SAFETY: as above; a NULL out pointer is refused, not written.
        let status = unsafe { create(api.api.host_data, std::ptr::null_mut()) };
        assert_eq!(status, GPTRT_PLUGIN_INVALID_ARGUMENT);

        // A plugin that never destroys its sessions: they go with the instance's host API.
        std::mem::forget(session);
        std::mem::forget(sessions.create().unwrap());
        assert_eq!(api.context.sessions.sessions.lock().unwrap().len(), 2);
        let before = Arc::strong_count(&model);
        drop(api);
        assert!(Arc::strong_count(&model) < before - 2);

        let bare = HostApi::new(None);
        // SAFETY: as above.
        assert!(unsafe { Host::from_raw(&bare.api) }.sessions().is_none());
    }

    fn sessions_table(api: &HostApi) -> gptrt_plugin_api::GptrtSessions {
        api.context.sessions_table.expect("offered with a model")
    }
}
