//! `gptrt_model_t`: a loaded model, shared by any number of sessions and threads.

use std::ffi::c_char;
use std::sync::Arc;

use crate::error::{boundary, gptrt_status_t, Failure};
use crate::ffi::{check_out, read_slice, read_str, static_cstr, write_out, write_text};
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

/// A model's files as bytes in memory, for `gptrt_model_load_from_memory` (files packed in a game's
/// archive, embedded in an executable...). Zero-initialise it, set `struct_size`, then point at
/// each file. The bytes are read during the call only: free them as soon as it returns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct gptrt_model_files_t {
    /// `sizeof(gptrt_model_files_t)` as the caller compiled it. Required.
    pub struct_size: usize,
    /// `config.json`. Required.
    pub config_json: *const u8,
    /// Bytes in `config_json`.
    pub config_json_size: usize,
    /// `tokenizer.json`. Required.
    pub tokenizer_json: *const u8,
    /// Bytes in `tokenizer_json`.
    pub tokenizer_json_size: usize,
    /// `generation_config.json`, or NULL for Hugging Face's defaults.
    pub generation_config_json: *const u8,
    /// Bytes in `generation_config_json`.
    pub generation_config_json_size: usize,
    /// The ONNX graph: `decoder_model_merged.onnx`, `model.onnx`, or the `decoder_model.onnx` of
    /// a split export. Required.
    pub graph: *const u8,
    /// Bytes in `graph`.
    pub graph_size: usize,
    /// The `decoder_with_past_model.onnx` of a split export, else NULL.
    pub with_past_graph: *const u8,
    /// Bytes in `with_past_graph`.
    pub with_past_graph_size: usize,
}

/// Read a required or optional file of `gptrt_model_files_t`.
///
/// # Safety
/// `ptr` is NULL or valid for `size` bytes.
unsafe fn file_bytes<'a>(
    ptr: *const u8,
    size: usize,
    what: &str,
    required: bool,
) -> Result<Option<&'a [u8]>, Failure> {
    if ptr.is_null() {
        return if required {
            Err(Failure::null(what))
        } else {
            Ok(None)
        };
    }
    if size == 0 {
        return Err(Failure::invalid(format!(
            "`{what}` is empty (its size is 0)"
        )));
    }
    // SAFETY: per this function's contract.
    Ok(Some(unsafe { read_slice(ptr, size, what)? }))
}

/// Load a model from its files' bytes in memory (see `gptrt_model_files_t`); otherwise as
/// `gptrt_model_load`. The model's folder is reported as `<memory>`. The graph must hold its
/// weights: one that keeps them in a separate `.data` file is refused with
/// `GPTRT_ERROR_MODEL_FILES`, the message naming the initializer and the file.
///
/// [thread-safe]
///
/// # Safety
/// `files` is NULL or a valid `gptrt_model_files_t` whose pointers are NULL or valid for their
/// sizes; `out_model` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_model_load_from_memory(
    runtime: *const crate::runtime::gptrt_runtime_t,
    files: *const gptrt_model_files_t,
    out_model: *mut *mut gptrt_model_t,
) -> gptrt_status_t {
    boundary("gptrt_model_load_from_memory", || {
        check_out(out_model, "out_model")?;
        let runtime = handles::get(runtime, "runtime")?;
        if files.is_null() {
            return Err(Failure::null("files"));
        }
        // SAFETY: a valid struct per the contract; its first field is its size.
        let declared = unsafe { std::ptr::addr_of!((*files).struct_size).read_unaligned() };
        // The first version of the struct is today's whole struct: when fields are appended, keep
        // accepting this size (and default the new fields).
        if declared < std::mem::size_of::<gptrt_model_files_t>() {
            return Err(Failure::invalid(format!(
                "files->struct_size is {declared}; expected sizeof(gptrt_model_files_t)"
            )));
        }
        // SAFETY: at least our size is readable (checked above); fields appended by a newer
        // header are ignored.
        let f = unsafe { files.read_unaligned() };
        // SAFETY: each pointer is NULL or valid for its size, per the contract.
        let (config, tokenizer, generation, graph, with_past) = unsafe {
            (
                file_bytes(
                    f.config_json,
                    f.config_json_size,
                    "files->config_json",
                    true,
                )?,
                file_bytes(
                    f.tokenizer_json,
                    f.tokenizer_json_size,
                    "files->tokenizer_json",
                    true,
                )?,
                file_bytes(
                    f.generation_config_json,
                    f.generation_config_json_size,
                    "files->generation_config_json",
                    false,
                )?,
                file_bytes(f.graph, f.graph_size, "files->graph", true)?,
                file_bytes(
                    f.with_past_graph,
                    f.with_past_graph_size,
                    "files->with_past_graph",
                    false,
                )?,
            )
        };
        let (Some(config_json), Some(tokenizer_json), Some(graph)) = (config, tokenizer, graph)
        else {
            return Err(Failure::null("files"));
        };
        let bytes = gptrt::ModelBytes {
            config_json,
            tokenizer_json,
            generation_config_json: generation,
            graph,
            with_past_graph: with_past,
        };
        let model = gptrt::Model::load_from_memory(&runtime.runtime, &bytes)?;
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
    crate::error::boundary_value((), || handles::remove(model));
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
/// provider of the runtime's list that was skipped, with the reason), `kv_cache` (where the KV cache
/// stays between steps: `host memory`, or a GPU's memory), `batch_invariant` (false when the graph
/// computes over the whole batch at once, as dynamic int8 quantization does: then a session of a
/// `gptrt_batcher_t` can get other tokens than alone), `batch_dependent_ops` (the operators that do
/// it, e.g. `DynamicQuantizeLinear`), `batching` (the same in a sentence), `config` (the `config.json`
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
            "kv_cache": model.provider_choice().kv_cache_location(),
            "batch_invariant": model.is_batch_invariant(),
            "batch_dependent_ops": model.batch_dependent_ops(),
            "batching": model.batching_note(),
            "config": model.config(),
            "generation_config": model.generation_config(),
            "graphs": graphs,
        });
        // SAFETY: per this function's contract.
        unsafe { write_text(&info.to_string(), buffer, capacity, out_size, "buffer") }
    })
}
