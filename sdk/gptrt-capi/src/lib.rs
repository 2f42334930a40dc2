//! # The gptrt C API
//!
//! `include/gptrt.h` is generated from this crate by cbindgen (`sdk/gptrt-capi/cbindgen.toml`);
//! `include/gptrt.hpp` wraps it in RAII classes for C++. Built as `libgptrt.so` (cdylib) and
//! `libgptrt.a` (staticlib).
//!
//! Conventions (see `shared/DESIGN.md` §3):
//! - Objects are opaque handles: runtime, model, generation options, session, tokenizer. Every
//!   constructor has a `_free` that accepts NULL. A handle is an id looked up in a table
//!   ([`handles`]), so a freed, forged or wrongly typed handle is `GPTRT_ERROR_INVALID_HANDLE`,
//!   never a use-after-free.
//! - Every function returns a [`gptrt_status_t`] (except the few that cannot fail), takes its
//!   out-parameters last and writes them only on success; the message of a failure is
//!   `gptrt_last_error_message()`, per thread.
//! - Every body runs behind a panic boundary ([`error::boundary`]).
//! - Strings are NUL-terminated UTF-8 in; out, they are copied into caller buffers that report the
//!   size needed when too small, or are static.
//! - Each function's doc says its threading.
//!
//! Plugins and task heads will be added as new functions and handle types (and new status codes
//! appended after the last one): nothing here changes for them.

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_camel_case_types)]

use std::ffi::c_char;

// The order of these modules is the order of the header's sections.
pub mod batcher;
pub mod constrain;
pub mod dialogue;
pub mod error;
mod ffi;
pub mod handles;
pub mod model;
pub mod options;
pub mod plugin;
pub mod runtime;
pub mod session;
pub mod task_head;
pub mod tokenizer;

pub use batcher::gptrt_batcher_t;
pub use dialogue::gptrt_saved_kv_t;
pub use error::gptrt_status_t;
use error::STATUSES;
pub use model::gptrt_model_t;
pub use options::gptrt_generation_options_t;
pub use runtime::{gptrt_runtime_options_t, gptrt_runtime_t};
pub use session::{
    gptrt_session_state_t, gptrt_session_t, gptrt_stop_reason_t, gptrt_token_callback_t,
    gptrt_token_event_t,
};
pub use task_head::{gptrt_task_head_t, gptrt_text_callback_t};
pub use tokenizer::gptrt_tokenizer_t;

// Every kind of object the C API hands out. Declared here, where every module is known, so that
// `handles` itself depends on none of them.
handles::handle_types! {
    runtime::gptrt_runtime_t => runtime::RuntimeObject,
    model::gptrt_model_t => gptrt::Model,
    options::gptrt_generation_options_t => options::OptionsObject,
    session::gptrt_session_t => session::Session,
    tokenizer::gptrt_tokenizer_t => tokenizer::TokenizerObject,
    plugin::gptrt_plugin_host_t => plugin::PluginHostObject,
    batcher::gptrt_batcher_t => batcher::Batcher,
    task_head::gptrt_task_head_t => task_head::TaskHeadObject,
}

/// Major version of the gptrt C API this header describes. Compare with `gptrt_version()` at run
/// time when linking dynamically.
pub const GPTRT_VERSION_MAJOR: u32 = 0;
/// Minor version.
pub const GPTRT_VERSION_MINOR: u32 = 1;
/// Patch version.
pub const GPTRT_VERSION_PATCH: u32 = 0;
/// The version as one number: `major * 10000 + minor * 100 + patch`.
pub const GPTRT_VERSION_NUMBER: u32 = 100;

/// 1: the CPU execution provider is compiled in (always).
pub const GPTRT_FEATURE_CPU: u32 = 1;
/// 1 when the CUDA execution provider is compiled in (not yet in any build).
pub const GPTRT_FEATURE_CUDA: u32 = 0;
/// 1 when the TensorRT execution provider is compiled in (not yet in any build).
pub const GPTRT_FEATURE_TENSORRT: u32 = 0;
/// 1 when the DirectML execution provider is compiled in (not yet in any build).
pub const GPTRT_FEATURE_DIRECTML: u32 = 0;

const fn parse_u32(text: &str) -> u32 {
    let bytes = text.as_bytes();
    let mut value = 0;
    let mut i = 0;
    while i < bytes.len() {
        value = value * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    value
}

// The header's version macros are literals (cbindgen copies them); keep them equal to Cargo's.
const _: () = {
    assert!(GPTRT_VERSION_MAJOR == parse_u32(env!("CARGO_PKG_VERSION_MAJOR")));
    assert!(GPTRT_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR")));
    assert!(GPTRT_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")));
    assert!(
        GPTRT_VERSION_NUMBER
            == GPTRT_VERSION_MAJOR * 10000 + GPTRT_VERSION_MINOR * 100 + GPTRT_VERSION_PATCH
    );
};

/// The library's version, `"MAJOR.MINOR.PATCH"` (static string).
///
/// [thread-safe] Never fails.
#[no_mangle]
pub extern "C" fn gptrt_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The message of the last failed gptrt call on the calling thread (`""` when the last call
/// succeeded). Never NULL. The text is valid until the next gptrt call on this thread; copy it to
/// keep it. This function, `gptrt_status_name`, `gptrt_stop_reason_name`, `gptrt_version`,
/// `gptrt_runtime_options_default` and every `_free` function leave it unchanged, so cleaning up
/// before reporting a failure keeps its message.
///
/// [thread-safe: each thread has its own message]
#[no_mangle]
pub extern "C" fn gptrt_last_error_message() -> *const c_char {
    error::boundary_value(c"".as_ptr(), error::last_error_ptr)
}

/// The name of a status (`"GPTRT_ERROR_NULL_POINTER"`), static; `"GPTRT_STATUS_UNKNOWN"` for a
/// number that is not a status. Takes an integer so that any value is safe to pass.
///
/// [thread-safe] Never fails.
#[no_mangle]
pub extern "C" fn gptrt_status_name(status: i32) -> *const c_char {
    error::boundary_value(c"GPTRT_STATUS_UNKNOWN".as_ptr(), || {
        STATUSES
            .iter()
            .find(|(code, _)| *code as i32 == status)
            .map_or(c"GPTRT_STATUS_UNKNOWN".as_ptr(), |(_, name)| {
                name.as_ptr().cast()
            })
    })
}

/// The name of a stop reason as in `gptrt_session_result_json` (`"eos"`, `"max_new_tokens"`,
/// `"context_full"`, `"callback"`, `"stop_string"`, `"max_time"`, `"cancelled"`), static;
/// `"other"` for any other number.
///
/// [thread-safe] Never fails.
#[no_mangle]
pub extern "C" fn gptrt_stop_reason_name(reason: i32) -> *const c_char {
    use session::gptrt_stop_reason_t::*;
    error::boundary_value(c"other".as_ptr(), || {
        let name = match reason {
            r if r == GPTRT_STOP_EOS as i32 => c"eos",
            r if r == GPTRT_STOP_MAX_NEW_TOKENS as i32 => c"max_new_tokens",
            r if r == GPTRT_STOP_CONTEXT_FULL as i32 => c"context_full",
            r if r == GPTRT_STOP_CALLBACK as i32 => c"callback",
            r if r == GPTRT_STOP_STOP_STRING as i32 => c"stop_string",
            r if r == GPTRT_STOP_MAX_TIME as i32 => c"max_time",
            r if r == GPTRT_STOP_CANCELLED as i32 => c"cancelled",
            _ => c"other",
        };
        name.as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_in_number_order_and_nul_terminated() {
        for (index, (status, name)) in STATUSES.iter().enumerate() {
            assert_eq!(*status as usize, index);
            assert!(name.ends_with('\0') && name.starts_with("GPTRT_"));
            // SAFETY: static NUL-terminated string.
            let back = unsafe { std::ffi::CStr::from_ptr(gptrt_status_name(index as i32)) };
            assert_eq!(back.to_bytes(), name.trim_end_matches('\0').as_bytes());
        }
        // SAFETY: static NUL-terminated string.
        let unknown = unsafe { std::ffi::CStr::from_ptr(gptrt_status_name(-7)) };
        assert_eq!(unknown.to_bytes(), b"GPTRT_STATUS_UNKNOWN");
    }

    /// Handle messages name the C type ("`x` is a gptrt_model_t, not a gptrt_session_t").
    #[test]
    fn handle_types_carry_their_c_names() {
        use handles::Handle;
        assert_eq!(<gptrt_runtime_t as Handle>::NAME, "gptrt_runtime_t");
        assert_eq!(<gptrt_model_t as Handle>::NAME, "gptrt_model_t");
        assert_eq!(
            <gptrt_generation_options_t as Handle>::NAME,
            "gptrt_generation_options_t"
        );
        assert_eq!(<gptrt_session_t as Handle>::NAME, "gptrt_session_t");
        assert_eq!(<gptrt_tokenizer_t as Handle>::NAME, "gptrt_tokenizer_t");
        assert_eq!(
            <plugin::gptrt_plugin_host_t as Handle>::NAME,
            "gptrt_plugin_host_t"
        );
        assert_eq!(<gptrt_batcher_t as Handle>::NAME, "gptrt_batcher_t");
    }

    /// The header's feature macros are literals (cbindgen copies them): they must say what this
    /// build really has.
    #[test]
    fn feature_macros_match_the_build() {
        use gptrt::ExecutionProvider as P;
        assert_eq!(GPTRT_FEATURE_CPU == 1, P::Cpu.compiled_in());
        assert_eq!(GPTRT_FEATURE_CUDA == 1, P::Cuda.compiled_in());
        assert_eq!(GPTRT_FEATURE_TENSORRT == 1, P::TensorRt.compiled_in());
        assert_eq!(GPTRT_FEATURE_DIRECTML == 1, P::DirectMl.compiled_in());
    }
}
