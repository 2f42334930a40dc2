//! `gptrt_tokenizer_t`: GPT-2's byte-level BPE, from a model or a folder.

use std::ffi::c_char;
use std::path::Path;
use std::sync::Arc;

use gptrt::Tokenizer;

use crate::error::{boundary, gptrt_status_t};
use crate::ffi::{check_out, read_slice, read_str, write_array, write_out, write_text};
use crate::handles;

/// GPT-2's byte-level BPE tokenizer. Opaque; made by `gptrt_model_tokenizer` or
/// `gptrt_tokenizer_load`, released by `gptrt_tokenizer_free`. Immutable: every function on it is
/// thread-safe.
pub struct gptrt_tokenizer_t(());

/// The object behind a `gptrt_tokenizer_t`: a model's tokenizer (keeping the model alive) or one
/// loaded on its own.
pub(crate) enum TokenizerObject {
    Model(Arc<gptrt::Model>),
    Own(Box<Tokenizer>),
}

impl TokenizerObject {
    fn get(&self) -> &Tokenizer {
        match self {
            TokenizerObject::Model(model) => model.tokenizer(),
            TokenizerObject::Own(tokenizer) => tokenizer,
        }
    }
}

fn new_handle(object: TokenizerObject, out_tokenizer: *mut *mut gptrt_tokenizer_t) {
    let handle = handles::insert::<gptrt_tokenizer_t>(Arc::new(object));
    // SAFETY: every caller checked `out_tokenizer` non-NULL before doing any work.
    unsafe { write_out(out_tokenizer, handle) };
}

/// The model's tokenizer. The handle keeps the model alive; release it with
/// `gptrt_tokenizer_free`.
///
/// [thread-safe]
///
/// # Safety
/// `out_tokenizer` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_model_tokenizer(
    model: *const crate::model::gptrt_model_t,
    out_tokenizer: *mut *mut gptrt_tokenizer_t,
) -> gptrt_status_t {
    boundary("gptrt_model_tokenizer", || {
        check_out(out_tokenizer, "out_tokenizer")?;
        let model = handles::get(model, "model")?;
        new_handle(TokenizerObject::Model(model), out_tokenizer);
        Ok(())
    })
}

/// Load a tokenizer alone from a folder (`tokenizer.json`, or `vocab.json` + `merges.txt`),
/// without ONNX Runtime. Errors: `GPTRT_ERROR_MODEL_FILES`, `GPTRT_ERROR_TOKENIZER`.
///
/// [thread-safe]
///
/// # Safety
/// `dir` is NULL or NUL-terminated; `out_tokenizer` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_tokenizer_load(
    dir: *const c_char,
    out_tokenizer: *mut *mut gptrt_tokenizer_t,
) -> gptrt_status_t {
    boundary("gptrt_tokenizer_load", || {
        check_out(out_tokenizer, "out_tokenizer")?;
        // SAFETY: per this function's contract.
        let dir = unsafe { read_str(dir, "dir")? };
        let tokenizer = Tokenizer::from_dir(Path::new(dir))?;
        new_handle(TokenizerObject::Own(Box::new(tokenizer)), out_tokenizer);
        Ok(())
    })
}

/// Release a tokenizer handle. NULL, or a handle freed already, is ignored (set your variable to
/// NULL after freeing).
///
/// [thread-safe] Do not use the handle after this call.
#[no_mangle]
pub extern "C" fn gptrt_tokenizer_free(tokenizer: *mut gptrt_tokenizer_t) {
    crate::error::boundary_value((), || handles::remove(tokenizer));
}

/// Number of token ids, special tokens included.
///
/// [thread-safe]
///
/// # Safety
/// `out_size` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_tokenizer_vocab_size(
    tokenizer: *const gptrt_tokenizer_t,
    out_size: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_tokenizer_vocab_size", || {
        check_out(out_size, "out_size")?;
        let object = handles::get(tokenizer, "tokenizer")?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_size, object.get().vocab_size()) };
        Ok(())
    })
}

/// Encode UTF-8 text into token ids (`<|endoftext|>` in the text becomes its special id, as in
/// GPT-2). The ids are copied into `ids` (room for `capacity`); `*out_count` receives the number
/// of ids, also when the status is `GPTRT_ERROR_BUFFER_TOO_SMALL` (then nothing is copied); pass
/// `ids = NULL, capacity = 0` to ask for it.
///
/// [thread-safe]
///
/// # Safety
/// `text` is NULL or NUL-terminated; `ids` is NULL or valid for `capacity` ids; `out_count` is
/// NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_tokenizer_encode(
    tokenizer: *const gptrt_tokenizer_t,
    text: *const c_char,
    ids: *mut u32,
    capacity: usize,
    out_count: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_tokenizer_encode", || {
        check_out(out_count, "out_count")?;
        let object = handles::get(tokenizer, "tokenizer")?;
        // SAFETY: per this function's contract.
        let text = unsafe { read_str(text, "text")? };
        let encoded = object.get().encode(text)?;
        // SAFETY: per this function's contract.
        unsafe { write_array(&encoded, ids, capacity, out_count, "ids") }
    })
}

/// Decode token ids into UTF-8 text (bytes that are not valid UTF-8 become U+FFFD, as in Hugging
/// Face), copied into `buffer` with a terminating NUL. With `skip_special_tokens`, special tokens
/// such as `<|endoftext|>` are left out. `*out_size` receives the size needed (the NUL included),
/// also when the status is `GPTRT_ERROR_BUFFER_TOO_SMALL` (then nothing is copied); pass
/// `buffer = NULL, capacity = 0` to ask for it. An id outside the vocabulary is
/// `GPTRT_ERROR_INVALID_TOKEN`.
///
/// [thread-safe]
///
/// # Safety
/// `ids` is NULL (count 0) or points to `count` ids; `buffer` is NULL or valid for `capacity`
/// bytes; `out_size` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_tokenizer_decode(
    tokenizer: *const gptrt_tokenizer_t,
    ids: *const u32,
    count: usize,
    skip_special_tokens: bool,
    buffer: *mut c_char,
    capacity: usize,
    out_size: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_tokenizer_decode", || {
        check_out(out_size, "out_size")?;
        let object = handles::get(tokenizer, "tokenizer")?;
        // SAFETY: per this function's contract.
        let ids = unsafe { read_slice(ids, count, "ids")? };
        let text = object.get().decode(ids, skip_special_tokens)?;
        // SAFETY: per this function's contract.
        unsafe { write_text(&text, buffer, capacity, out_size, "buffer") }
    })
}
