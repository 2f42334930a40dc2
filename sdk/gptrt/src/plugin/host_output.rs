//! Capability `org.gptrt.output`: text a task head writes during `run` goes to that run's caller
//! as it is made ([`super::TaskHead::run_streaming`]).

use std::any::Any;
use std::ffi::{c_char, c_void};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;

use gptrt_plugin_api::GptrtOutput;

use super::host_api::{arg_slice, context};

/// The caller's text sink while a run is under way, as a pointer whose lifetime the run bounds.
type SinkPtr = *mut (dyn FnMut(&str) -> bool + 'static);

/// Where an instance's written text goes: nowhere, or the current run's caller.
#[derive(Default)]
pub(super) struct Output {
    sink: Mutex<Option<Sink>>,
}

struct Sink {
    ptr: SinkPtr,
    /// The caller's thread: the sink need not be `Send`, so only that thread may call it.
    thread: ThreadId,
    /// A panic of the sink, carried back to the caller once the plugin's `run` has returned.
    panic: Option<Box<dyn Any + Send>>,
}

// SAFETY: the pointer is followed only on the thread that attached it (checked in `write`), under
// the mutex, while `Output::attach`'s caller keeps the sink alive (it detaches before returning).
unsafe impl Send for Sink {}

impl Output {
    /// The capability's table.
    pub(super) fn table() -> GptrtOutput {
        GptrtOutput {
            struct_size: std::mem::size_of::<GptrtOutput>(),
            write_text: Some(host_write_text),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Option<Sink>> {
        // A poisoned lock only means a sink panicked, which `write` already recorded.
        self.sink.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Send text written on this thread to `sink` until [`Attached::detach`] (or its drop).
    pub(super) fn attach<'a>(&'a self, sink: &'a mut dyn FnMut(&str) -> bool) -> Attached<'a> {
        let ptr: *mut (dyn FnMut(&str) -> bool + 'a) = sink;
        // SAFETY: only the lifetime is erased; `Attached` clears the pointer before `'a` ends.
        let ptr: SinkPtr = unsafe { std::mem::transmute(ptr) };
        *self.slot() = Some(Sink {
            ptr,
            thread: std::thread::current().id(),
            panic: None,
        });
        Attached { output: self }
    }

    /// Pass `text` to the sink: whether the run should go on. Text from another thread than the
    /// caller's, or with no caller listening, is dropped.
    fn write(&self, text: &str) -> bool {
        let mut slot = self.slot();
        let Some(sink) = slot.as_mut() else {
            return true;
        };
        if sink.panic.is_some() {
            return false;
        }
        if sink.thread != std::thread::current().id() {
            return true;
        }
        let ptr = sink.ptr;
        // SAFETY: attached on this thread by a caller still inside the run (see `attach`).
        let called =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { (*ptr)(text) }));
        match called {
            Ok(go_on) => go_on,
            Err(payload) => {
                sink.panic = Some(payload);
                false
            }
        }
    }
}

/// Detaches the sink when dropped.
pub(super) struct Attached<'a> {
    output: &'a Output,
}

impl Attached<'_> {
    /// Stop sending text to the sink; a panic it raised meanwhile comes back to be resumed.
    pub(super) fn detach(self) -> Option<Box<dyn Any + Send>> {
        self.output.slot().take().and_then(|sink| sink.panic)
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        self.output.slot().take();
    }
}

unsafe extern "C" fn host_write_text(
    host_data: *mut c_void,
    text: *const c_char,
    len: usize,
) -> i32 {
    let written = std::panic::catch_unwind(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(bytes)) = (unsafe { context(host_data) }, unsafe {
            arg_slice(text.cast::<u8>(), len)
        }) else {
            return true;
        };
        // Invalid UTF-8 never reaches the caller, who is promised text; the run goes on (only the
        // caller's answer may stop it).
        match std::str::from_utf8(bytes) {
            Ok(text) => ctx.output.write(text),
            Err(_) => true,
        }
    });
    i32::from(!written.unwrap_or(true))
}
