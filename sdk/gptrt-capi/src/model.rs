//! `gptrt_model_t`: a loaded model, shared by any number of sessions and threads.

use std::ffi::c_char;
use std::sync::Arc;

use crate::error::{boundary, gptrt_status_t};
use crate::ffi::{check_out, read_str, static_cstr, write_out, write_text};
use crate::handles;

/// A GPT-2 model loaded from an export folder: its graph(s), layout, `config.json`, generation
/// defaults and tokenizer. Opaque; made by `gptrt_model_load`, released by `gptrt_model_free`.
/// One model serves any number of sessions on any number of threads.
pub struct gptrt_model_t(());

/// Load a model from an export folder (or one `.onnx` file inside it), UTF-8 path.
///
/// The layout (`single`, `merged`, `split`, `no-past`) is detected from the graphs. On success
/// `*out_model` receives a new handle to release with `gptrt_model_free`. Errors:
/// `GPTRT_ERROR_MODEL_FILES`, `GPTRT_ERROR_MODEL_CONFIG`, `GPTRT_ERROR_LAYOUT`,
/// `GPTRT_ERROR_TOKENIZER`, `GPTRT_ERROR_ONNX_RUNTIME`, `GPTRT_ERROR_IO`.
///
/// [thread-safe]
///
/// # Safety
/// `path` is NULL or NUL-terminated; `out_model` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_model_load(
    runtime: *const crate::runtime::gptrt_runtime_t,
    path: *const c_char,
    out_model: *mut *mut gptrt_model_t,
) -> gptrt_status_t {
    boundary("gptrt_model_load", || {
        check_out(out_model, "out_model")?;
        let runtime = handles::get(runtime, "runtime")?;
        // SAFETY: per this function's contract.
        let path = unsafe { read_str(path, "path")? };
        let model = gptrt::Model::load_with(&runtime.runtime, path)?;
        // The tokenizer builds caches on first use (a few milliseconds): pay that here, while
        // loading, rather than in the first frame that starts a generation.
        model.tokenizer().encode("warm up")?;
        let handle = handles::insert::<gptrt_model_t>(Arc::new(model));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_model, handle) };
        Ok(())
    })
}

/// Release a model handle. NULL, or a handle freed already, is ignored (set your variable to NULL
/// after freeing). Sessions, tokenizers and options made from it keep the model alive, so they may
/// be freed before or after it.
///
/// [thread-safe] Do not use the handle after this call.
#[no_mangle]
pub extern "C" fn gptrt_model_free(model: *mut gptrt_model_t) {
    let _ = boundary("gptrt_model_free", || {
        handles::remove(model);
        Ok(())
    });
}

/// The model's context window (`n_positions`): prompt plus generated tokens never exceed it.
///
/// [thread-safe]
///
/// # Safety
/// `out_tokens` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_model_context_length(
    model: *const gptrt_model_t,
    out_tokens: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_model_context_length", || {
        check_out(out_tokens, "out_tokens")?;
        let model = handles::get(model, "model")?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_tokens, model.config().n_positions) };
        Ok(())
    })
}

/// The model's vocabulary size (`vocab_size`, 50257 for GPT-2).
///
/// [thread-safe]
///
/// # Safety
/// `out_size` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_model_vocab_size(
    model: *const gptrt_model_t,
    out_size: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_model_vocab_size", || {
        check_out(out_size, "out_size")?;
        let model = handles::get(model, "model")?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_size, model.config().vocab_size) };
        Ok(())
    })
}

/// The detected export layout: `"single"`, `"merged"`, `"split"` or `"no-past"`. `*out_layout`
/// receives a static string (never freed).
///
/// [thread-safe]
///
/// # Safety
/// `out_layout` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_model_layout(
    model: *const gptrt_model_t,
    out_layout: *mut *const c_char,
) -> gptrt_status_t {
    boundary("gptrt_model_layout", || {
        check_out(out_layout, "out_layout")?;
        let model = handles::get(model, "model")?;
        let name = match model.layout().name() {
            "single" => "single\0",
            "merged" => "merged\0",
            "split" => "split\0",
            "no-past" => "no-past\0",
            _ => "unknown\0",
        };
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_layout, static_cstr(name)) };
        Ok(())
    })
}

/// The execution provider the model's graphs run on, ONNX Runtime's name
/// (`"CPUExecutionProvider"`, `"CUDAExecutionProvider"`...): the first usable entry of the
/// runtime's list. `*out_name` receives a static string (never freed). Why earlier entries were
/// skipped is in `gptrt_model_info_json` (`provider_skipped`).
///
/// [thread-safe]
///
/// # Safety
/// `out_name` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_model_execution_provider(
    model: *const gptrt_model_t,
    out_name: *mut *const c_char,
) -> gptrt_status_t {
    boundary("gptrt_model_execution_provider", || {
        check_out(out_name, "out_name")?;
        let model = handles::get(model, "model")?;
        let name = crate::runtime::provider_cstr(model.provider_choice().provider);
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_name, name) };
        Ok(())
    })
}

/// A JSON object describing the model: `dir`, `layout`, `provider`, `provider_skipped` (each
/// provider of the runtime's list that was skipped, with the reason), `config` (the `config.json`
/// fields gptrt uses), `generation_config` (the folder's defaults) and `graphs` (each file with its
/// inputs and outputs), copied into `buffer` (NUL-terminated). `*out_size` receives the size
/// needed (the NUL included), also when the status is `GPTRT_ERROR_BUFFER_TOO_SMALL`; pass
/// `buffer = NULL, capacity = 0` to ask for it.
///
/// [thread-safe]
///
/// # Safety
/// `buffer` is NULL or valid for `capacity` bytes; `out_size` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_model_info_json(
    model: *const gptrt_model_t,
    buffer: *mut c_char,
    capacity: usize,
    out_size: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_model_info_json", || {
        check_out(out_size, "out_size")?;
        let model = handles::get(model, "model")?;
        let tensors = |list: &[gptrt::TensorInfo]| -> Vec<serde_json::Value> {
            list.iter()
                .map(|t| serde_json::json!({"name": t.name, "type": t.element_type, "shape": t.shape}))
                .collect()
        };
        let graphs: Vec<serde_json::Value> = model
            .graphs()
            .into_iter()
            .map(|(path, signature)| {
                serde_json::json!({
                    "file": path.to_string_lossy(),
                    "inputs": tensors(&signature.inputs),
                    "outputs": tensors(&signature.outputs),
                })
            })
            .collect();
        let info = serde_json::json!({
            "dir": model.dir().to_string_lossy(),
            "layout": model.layout().name(),
            "provider": model.provider(),
            "provider_skipped": model
                .provider_choice()
                .skipped
                .iter()
                .map(|(provider, reason)| serde_json::json!({"provider": provider.name(), "reason": reason}))
                .collect::<Vec<_>>(),
            "config": model.config(),
            "generation_config": model.generation_config(),
            "graphs": graphs,
        });
        // SAFETY: per this function's contract.
        unsafe { write_text(&info.to_string(), buffer, capacity, out_size, "buffer") }
    })
}
