//! Status codes, the per-thread last-error message and the panic boundary every entry point runs
//! behind.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a gptrt call returns: `GPTRT_OK` (0) or the reason it failed. The message of the last
/// failure on the calling thread is `gptrt_last_error_message()`.
///
/// The numbers are part of the ABI: a code keeps its number forever, and a number is never reused
/// for another meaning. New codes are only ever appended.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types, clippy::enum_variant_names)]
pub enum gptrt_status_t {
    /// Success.
    GPTRT_OK = 0,
    /// An argument has a value the function does not accept (an unknown execution provider, a
    /// zero capacity where one is needed...).
    GPTRT_ERROR_INVALID_ARGUMENT = 1,
    /// A required pointer (handle, string, out-parameter) is NULL.
    GPTRT_ERROR_NULL_POINTER = 2,
    /// A string is not valid UTF-8.
    GPTRT_ERROR_INVALID_UTF8 = 3,
    /// The caller's buffer is too small; the size out-parameter holds the size needed.
    GPTRT_ERROR_BUFFER_TOO_SMALL = 4,
    /// A handle is not a live object of the expected type (freed already, never made by gptrt,
    /// or a handle of another type).
    GPTRT_ERROR_INVALID_HANDLE = 5,
    /// The ONNX Runtime shared library could not be found or loaded.
    GPTRT_ERROR_RUNTIME_LIBRARY = 6,
    /// An execution provider requested as `strict` cannot be used (not compiled in, no GPU build of
    /// ONNX Runtime, no device).
    GPTRT_ERROR_EXECUTION_PROVIDER = 7,
    /// ONNX Runtime reported an error while loading or running a graph.
    GPTRT_ERROR_ONNX_RUNTIME = 8,
    /// A model folder or file is missing or unreadable.
    GPTRT_ERROR_MODEL_FILES = 9,
    /// The model's `config.json` (or `generation_config.json`) is invalid.
    GPTRT_ERROR_MODEL_CONFIG = 10,
    /// The graph is not a GPT-2 decoder layout gptrt can run.
    GPTRT_ERROR_LAYOUT = 11,
    /// The tokenizer could not be loaded or failed on an input.
    GPTRT_ERROR_TOKENIZER = 12,
    /// A token id is outside the vocabulary.
    GPTRT_ERROR_INVALID_TOKEN = 13,
    /// The prompt does not fit the model's context window.
    GPTRT_ERROR_CONTEXT_OVERFLOW = 14,
    /// A generation option has a value that cannot be honoured (the message names the option).
    GPTRT_ERROR_INVALID_OPTION = 15,
    /// A generation option name that gptrt does not know.
    GPTRT_ERROR_UNKNOWN_OPTION = 16,
    /// The graph returned something gptrt did not expect.
    GPTRT_ERROR_UNEXPECTED_OUTPUT = 17,
    /// A sampler failed or misbehaved.
    GPTRT_ERROR_SAMPLER = 18,
    /// A file could not be read.
    GPTRT_ERROR_IO = 19,
    /// The session is running a generation; wait for it, poll it to the end, or cancel it.
    GPTRT_ERROR_BUSY = 20,
    /// The call does not fit the object's state (asking a session for a result before any
    /// generation has run).
    GPTRT_ERROR_INVALID_STATE = 21,
    /// A bug in gptrt: a Rust panic was caught at the API boundary. The object involved may be
    /// unusable; the process is not.
    GPTRT_ERROR_PANIC = 22,
    /// An internal error with no more specific code (also: an SDK error this version of the C API
    /// does not know yet).
    GPTRT_ERROR_INTERNAL = 23,
    /// A plugin could not be loaded (wrong ABI, missing symbol, allowlist) or misbehaved.
    GPTRT_ERROR_PLUGIN = 24,
    /// A saved session state that cannot be restored: damaged (checksum), truncated, of another
    /// format version, or saved for another model (the message names both fingerprints).
    GPTRT_ERROR_SAVED_STATE = 25,
}

pub(crate) use gptrt_status_t::*;

/// Every status with its stable name, in number order.
pub(crate) const STATUSES: [(gptrt_status_t, &str); 26] = [
    (GPTRT_OK, "GPTRT_OK\0"),
    (
        GPTRT_ERROR_INVALID_ARGUMENT,
        "GPTRT_ERROR_INVALID_ARGUMENT\0",
    ),
    (GPTRT_ERROR_NULL_POINTER, "GPTRT_ERROR_NULL_POINTER\0"),
    (GPTRT_ERROR_INVALID_UTF8, "GPTRT_ERROR_INVALID_UTF8\0"),
    (
        GPTRT_ERROR_BUFFER_TOO_SMALL,
        "GPTRT_ERROR_BUFFER_TOO_SMALL\0",
    ),
    (GPTRT_ERROR_INVALID_HANDLE, "GPTRT_ERROR_INVALID_HANDLE\0"),
    (GPTRT_ERROR_RUNTIME_LIBRARY, "GPTRT_ERROR_RUNTIME_LIBRARY\0"),
    (
        GPTRT_ERROR_EXECUTION_PROVIDER,
        "GPTRT_ERROR_EXECUTION_PROVIDER\0",
    ),
    (GPTRT_ERROR_ONNX_RUNTIME, "GPTRT_ERROR_ONNX_RUNTIME\0"),
    (GPTRT_ERROR_MODEL_FILES, "GPTRT_ERROR_MODEL_FILES\0"),
    (GPTRT_ERROR_MODEL_CONFIG, "GPTRT_ERROR_MODEL_CONFIG\0"),
    (GPTRT_ERROR_LAYOUT, "GPTRT_ERROR_LAYOUT\0"),
    (GPTRT_ERROR_TOKENIZER, "GPTRT_ERROR_TOKENIZER\0"),
    (GPTRT_ERROR_INVALID_TOKEN, "GPTRT_ERROR_INVALID_TOKEN\0"),
    (
        GPTRT_ERROR_CONTEXT_OVERFLOW,
        "GPTRT_ERROR_CONTEXT_OVERFLOW\0",
    ),
    (GPTRT_ERROR_INVALID_OPTION, "GPTRT_ERROR_INVALID_OPTION\0"),
    (GPTRT_ERROR_UNKNOWN_OPTION, "GPTRT_ERROR_UNKNOWN_OPTION\0"),
    (
        GPTRT_ERROR_UNEXPECTED_OUTPUT,
        "GPTRT_ERROR_UNEXPECTED_OUTPUT\0",
    ),
    (GPTRT_ERROR_SAMPLER, "GPTRT_ERROR_SAMPLER\0"),
    (GPTRT_ERROR_IO, "GPTRT_ERROR_IO\0"),
    (GPTRT_ERROR_BUSY, "GPTRT_ERROR_BUSY\0"),
    (GPTRT_ERROR_INVALID_STATE, "GPTRT_ERROR_INVALID_STATE\0"),
    (GPTRT_ERROR_PANIC, "GPTRT_ERROR_PANIC\0"),
    (GPTRT_ERROR_INTERNAL, "GPTRT_ERROR_INTERNAL\0"),
    (GPTRT_ERROR_PLUGIN, "GPTRT_ERROR_PLUGIN\0"),
    (GPTRT_ERROR_SAVED_STATE, "GPTRT_ERROR_SAVED_STATE\0"),
];

/// A failed call: the status to return and the message `gptrt_last_error_message` gives.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub status: gptrt_status_t,
    pub message: String,
}

impl Failure {
    pub fn new(status: gptrt_status_t, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(GPTRT_ERROR_INVALID_ARGUMENT, message)
    }
    pub fn null(what: &str) -> Failure {
        Failure::new(GPTRT_ERROR_NULL_POINTER, format!("`{what}` is NULL"))
    }
}

/// The status of each SDK error. `gptrt::Error` is `#[non_exhaustive]`: a variant added later maps
/// to `GPTRT_ERROR_INTERNAL` until it gets its own code.
pub(crate) fn status_of(error: &gptrt::Error) -> gptrt_status_t {
    use gptrt::Error as E;
    match error {
        E::RuntimeLibrary { .. } | E::RuntimeLibraryConflict { .. } => GPTRT_ERROR_RUNTIME_LIBRARY,
        E::Provider { .. } => GPTRT_ERROR_EXECUTION_PROVIDER,
        E::InvalidArgument { .. } => GPTRT_ERROR_INVALID_ARGUMENT,
        E::SavedState { .. } => GPTRT_ERROR_SAVED_STATE,
        E::Ort { .. } => GPTRT_ERROR_ONNX_RUNTIME,
        E::ModelFiles { .. } => GPTRT_ERROR_MODEL_FILES,
        E::Config { .. } => GPTRT_ERROR_MODEL_CONFIG,
        E::Layout { .. } => GPTRT_ERROR_LAYOUT,
        E::Tokenizer(_) => GPTRT_ERROR_TOKENIZER,
        E::InvalidToken { .. } => GPTRT_ERROR_INVALID_TOKEN,
        E::ContextOverflow { .. } => GPTRT_ERROR_CONTEXT_OVERFLOW,
        E::InvalidOption { .. } => GPTRT_ERROR_INVALID_OPTION,
        E::UnexpectedOutput { .. } => GPTRT_ERROR_UNEXPECTED_OUTPUT,
        E::Sampler { .. } => GPTRT_ERROR_SAMPLER,
        E::Io { .. } => GPTRT_ERROR_IO,
        E::Plugin { .. } => GPTRT_ERROR_PLUGIN,
        E::Busy => GPTRT_ERROR_BUSY,
        E::InvalidState { .. } => GPTRT_ERROR_INVALID_STATE,
        E::GenerationFailed(failed) => status_of(failed),
        E::Panic { .. } => GPTRT_ERROR_PANIC,
        E::Internal { .. } => GPTRT_ERROR_INTERNAL,
        #[allow(unreachable_patterns)]
        _ => GPTRT_ERROR_INTERNAL,
    }
}

impl From<gptrt::Error> for Failure {
    fn from(error: gptrt::Error) -> Failure {
        Failure::new(status_of(&error), error.to_string())
    }
}

thread_local! {
    /// The last failure's message on this thread, NUL-terminated; `[0]` when the last call
    /// succeeded. Cleared without freeing so that successful calls never allocate.
    static LAST_ERROR: RefCell<Vec<u8>> = RefCell::new(vec![0]);
}

fn set_last_error(function: &str, message: &str) {
    let _ = LAST_ERROR.try_with(|cell| {
        if let Ok(mut buf) = cell.try_borrow_mut() {
            buf.clear();
            buf.extend_from_slice(function.as_bytes());
            buf.extend_from_slice(b": ");
            // An interior NUL would cut the message short: show it as U+2400 instead.
            for &byte in message.as_bytes() {
                if byte == 0 {
                    buf.extend_from_slice("\u{2400}".as_bytes());
                } else {
                    buf.push(byte);
                }
            }
            buf.push(0);
        }
    });
}

fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|cell| {
        if let Ok(mut buf) = cell.try_borrow_mut() {
            if buf.len() > 1 {
                buf.clear();
                buf.push(0);
            }
        }
    });
}

/// The calling thread's last-error message (never NULL; empty after a successful call).
pub(crate) fn last_error_ptr() -> *const c_char {
    static EMPTY: &[u8] = b"\0";
    LAST_ERROR
        .try_with(|cell| match cell.try_borrow() {
            // The buffer lives as long as the thread and is only changed by the next gptrt call on
            // this thread, which is the documented lifetime of the returned pointer.
            Ok(buf) => buf.as_ptr().cast::<c_char>(),
            Err(_) => EMPTY.as_ptr().cast::<c_char>(),
        })
        .unwrap_or(EMPTY.as_ptr().cast::<c_char>())
}

/// Text of a caught panic's payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// The panic boundary: run an entry point's body, turn its failure (or a panic) into a status and
/// the thread's last-error message. A success clears the message.
pub(crate) fn boundary(
    function: &str,
    body: impl FnOnce() -> Result<(), Failure>,
) -> gptrt_status_t {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            clear_last_error();
            GPTRT_OK
        }
        Ok(Err(failure)) => {
            set_last_error(function, &failure.message);
            failure.status
        }
        Err(payload) => {
            set_last_error(
                function,
                &format!(
                    "internal panic (a gptrt bug; please report it): {}",
                    panic_message(payload.as_ref())
                ),
            );
            GPTRT_ERROR_PANIC
        }
    }
}

/// The panic boundary for the few functions that return a value instead of a status: a panic
/// gives `fallback`.
pub(crate) fn boundary_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}
