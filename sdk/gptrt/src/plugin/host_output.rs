//! Capability `org.gptrt.output`: text a task head writes during `run` goes to that run's caller
//! as it is made ([`super::TaskHead::run_streaming`]).

use std::ffi::{c_char, c_void};
use std::sync::Mutex;

use gptrt_plugin_api::{GptrtOutput, GPTRT_PLUGIN_ERROR};

use super::host_api::{arg_slice, context, guarded};

/// The caller's text sink while a run is under way, as a pointer whose lifetime the run bounds.
type SinkPtr = *mut (dyn FnMut(&str) -> bool + 'static);

/// Where an instance's written text goes: nowhere, or the current run's caller.
#[derive(Default)]
pub(super) struct Output {
    sink: Mutex<Option<SendPtr>>,
}

struct SendPtr(SinkPtr);

// SAFETY: the pointer is only followed under the mutex, and only while `Output::attach`'s caller
// keeps the sink alive on its stack (it waits for the run to end before detaching).
unsafe impl Send for SendPtr {}

impl Output {
    /// The capability's table.
    pub(super) fn table() -> GptrtOutput {
        GptrtOutput {
            struct_size: std::mem::size_of::<GptrtOutput>(),
            write_text: Some(host_write_text),
        }
    }

    /// Send written text to `sink` until the returned guard drops (at the end of the run).
    pub(super) fn attach<'a>(&'a self, sink: &'a mut dyn FnMut(&str) -> bool) -> Attached<'a> {
        let ptr: *mut (dyn FnMut(&str) -> bool + 'a) = sink;
        // SAFETY: only the lifetime is erased; `Attached` clears the pointer before `'a` ends.
        let ptr: SinkPtr = unsafe { std::mem::transmute(ptr) };
        if let Ok(mut slot) = self.sink.lock() {
            *slot = Some(SendPtr(ptr));
        }
        Attached { output: self }
    }

    fn write(&self, text: &str) -> bool {
        let Ok(slot) = self.sink.lock() else {
            return true;
        };
        match slot.as_ref() {
            // SAFETY: attached by a caller that is still inside the run (see `attach`); the
            // mutex keeps two writes from calling the sink at once.
            Some(SendPtr(sink)) => unsafe { (**sink)(text) },
            None => true,
        }
    }
}

/// Detaches the sink when dropped.
pub(super) struct Attached<'a> {
    output: &'a Output,
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.output.sink.lock() {
            *slot = None;
        }
    }
}

unsafe extern "C" fn host_write_text(
    host_data: *mut c_void,
    text: *const c_char,
    len: usize,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(bytes)) = (unsafe { context(host_data) }, unsafe {
            arg_slice(text.cast::<u8>(), len)
        }) else {
            return GPTRT_PLUGIN_ERROR;
        };
        // Invalid UTF-8 never reaches the caller, which is promised text.
        let Ok(text) = std::str::from_utf8(bytes) else {
            return GPTRT_PLUGIN_ERROR;
        };
        i32::from(!ctx.output.write(text))
    })
}
