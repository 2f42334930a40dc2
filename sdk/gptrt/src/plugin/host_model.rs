//! Host API 1.1 functions over the attached model: scoring many continuations of one context, and
//! the model's config.

use std::ffi::{c_char, c_void, CString};

use gptrt_plugin_api::{
    GPTRT_PLUGIN_ERROR, GPTRT_PLUGIN_INVALID_ARGUMENT, GPTRT_PLUGIN_OK, GPTRT_PLUGIN_UNSUPPORTED,
};

use super::host_api::{arg_slice, context, guarded};

/// `GptrtHostApi::score_continuations`.
pub(super) unsafe extern "C" fn host_score_continuations(
    host_data: *mut c_void,
    context_ids: *const u32,
    n_context: usize,
    ids: *const u32,
    lengths: *const usize,
    n_continuations: usize,
    out_logprobs: *mut f64,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(context_ids), Some(lengths)) = (
            unsafe { context(host_data) },
            unsafe { arg_slice(context_ids, n_context) },
            unsafe { arg_slice(lengths, n_continuations) },
        ) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(total) = lengths
            .iter()
            .try_fold(0usize, |sum, &n| sum.checked_add(n))
        else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        // SAFETY: host API contract: `ids` holds the sum of `lengths`.
        let (Some(ids), false) = (unsafe { arg_slice(ids, total) }, out_logprobs.is_null()) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(model) = &ctx.model else {
            return GPTRT_PLUGIN_UNSUPPORTED;
        };
        let mut rest = ids;
        let continuations: Vec<Vec<u32>> = lengths
            .iter()
            .map(|&n| {
                let (head, tail) = rest.split_at(n);
                rest = tail;
                head.to_vec()
            })
            .collect();
        match model.score_continuations(context_ids, &continuations) {
            Ok(scores) => {
                // SAFETY: checked non-NULL; the caller gave room for `n_continuations` values.
                unsafe {
                    std::ptr::copy_nonoverlapping(scores.as_ptr(), out_logprobs, scores.len())
                };
                GPTRT_PLUGIN_OK
            }
            // The caller's ids or lengths at fault, or the host's own failure.
            Err(
                crate::Error::InvalidToken { .. }
                | crate::Error::ContextOverflow { .. }
                | crate::Error::InvalidArgument { .. },
            ) => GPTRT_PLUGIN_INVALID_ARGUMENT,
            Err(_) => GPTRT_PLUGIN_ERROR,
        }
    })
}

/// `GptrtHostApi::model_config_json`.
pub(super) unsafe extern "C" fn host_model_config_json(
    host_data: *mut c_void,
    out_text: *mut *mut c_char,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let Some(ctx) = (unsafe { context(host_data) }) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(model) = &ctx.model else {
            return GPTRT_PLUGIN_UNSUPPORTED;
        };
        if out_text.is_null() {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        }
        match serde_json::to_string(model.config()).map(CString::new) {
            Ok(Ok(text)) => {
                // SAFETY: checked non-NULL; released by host_free_string.
                unsafe { *out_text = text.into_raw() };
                GPTRT_PLUGIN_OK
            }
            _ => GPTRT_PLUGIN_ERROR,
        }
    })
}
