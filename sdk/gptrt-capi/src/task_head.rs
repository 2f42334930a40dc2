//! Task-head instances from C: made once (the plugin's `create` runs, reading its config and any
//! files such as a trained head, once), then run on many inputs, alongside the one-shot
//! `gptrt_task_head_run`.

use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;

use crate::error::{boundary, gptrt_status_t, Failure, GPTRT_ERROR_BUSY};
use crate::ffi::{check_out, read_str, write_out};
use crate::handles;

/// A task-head plugin instance over a model. Opaque; made by `gptrt_task_head_new`, run with
/// `gptrt_task_head_call`, released by `gptrt_task_head_free`.
pub struct gptrt_task_head_t(());

/// The object behind a `gptrt_task_head_t`: the instance runs one call at a time (calls from
/// several threads wait for each other).
pub(crate) struct TaskHeadObject {
    head: Mutex<gptrt::TaskHead>,
    /// The thread inside a call, so that a streaming callback calling the same instance again
    /// gets `GPTRT_ERROR_BUSY` instead of waiting for itself forever.
    running_on: Mutex<Option<ThreadId>>,
}

/// Marks the calling thread as inside a call until dropped.
struct Running<'a>(&'a Mutex<Option<ThreadId>>);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Make an instance of task-head plugin `id` (loaded into `host`) over `model`, configured by
/// `config_json` (NULL: the plugin's defaults). On success `*out_head` receives a new handle to
/// release with `gptrt_task_head_free`. The plugin's configuration (e.g. a classification head's
/// files) is read here, once; a bad one fails here, naming the plugin.
///
/// [thread-safe]
///
/// # Safety
/// `id` is a NUL-terminated string, `config_json` NULL or one; `out_head` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_task_head_new(
    host: *const crate::plugin::gptrt_plugin_host_t,
    model: *const crate::model::gptrt_model_t,
    id: *const c_char,
    config_json: *const c_char,
    out_head: *mut *mut gptrt_task_head_t,
) -> gptrt_status_t {
    boundary("gptrt_task_head_new", || {
        check_out(out_head, "out_head")?;
        let host = handles::get(host, "host")?;
        let model = handles::get(model, "model")?;
        // SAFETY: caller contract.
        let id = unsafe { read_str(id, "id") }?;
        let config = if config_json.is_null() {
            None
        } else {
            // SAFETY: caller contract.
            Some(unsafe { read_str(config_json, "config_json") }?)
        };
        let head = host.lock().task_head(id, config, model)?;
        let handle = handles::insert::<gptrt_task_head_t>(Arc::new(TaskHeadObject {
            head: Mutex::new(head),
            running_on: Mutex::new(None),
        }));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_head, handle) };
        Ok(())
    })
}

/// Run a task-head instance: `input_json` in, JSON out. On success `*out_json` receives a
/// NUL-terminated string owned by gptrt, to release with `gptrt_string_free`. A failed call
/// (bad input) leaves the instance usable.
///
/// [thread-safe; calls on one instance run one at a time, on the calling thread]
///
/// # Safety
/// `input_json` is a NUL-terminated string; `out_json` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_task_head_call(
    head: *const gptrt_task_head_t,
    input_json: *const c_char,
    out_json: *mut *mut c_char,
) -> gptrt_status_t {
    boundary("gptrt_task_head_call", || {
        // SAFETY: caller contract.
        unsafe { call(head, input_json, out_json, &mut |_| true) }
    })
}

/// Receives text a task head writes while it runs (`gptrt_task_head_call_streaming`): `len` bytes
/// of UTF-8 at `text` (NUL-terminated too), valid during the call. Return `true` to go on, `false`
/// to ask the task head to stop early (it still returns its result).
pub type gptrt_text_callback_t =
    Option<unsafe extern "C" fn(user_data: *mut c_void, text: *const c_char, len: usize) -> bool>;

/// `gptrt_task_head_call`, with the text the task head writes as it works passed to `callback`
/// (with `user_data`) on the calling thread before the call returns: `plugins/dialogue` writes its
/// reply piece by piece, so a host shows it as it is made; other task heads may write nothing. A
/// NULL callback is `gptrt_task_head_call`. The callback must not call the same instance again
/// (`GPTRT_ERROR_BUSY`); other instances and other gptrt calls are fine.
///
/// [thread-safe; calls on one instance run one at a time, on the calling thread]
///
/// # Safety
/// As `gptrt_task_head_call`; `callback`, when not NULL, is safe to call with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn gptrt_task_head_call_streaming(
    head: *const gptrt_task_head_t,
    input_json: *const c_char,
    callback: gptrt_text_callback_t,
    user_data: *mut c_void,
    out_json: *mut *mut c_char,
) -> gptrt_status_t {
    boundary("gptrt_task_head_call_streaming", || {
        let mut piece = Vec::new();
        let mut on_text = |text: &str| -> bool {
            let Some(callback) = callback else {
                return true;
            };
            piece.clear();
            piece.extend_from_slice(text.as_bytes());
            piece.push(0);
            // SAFETY: the host's callback with its own user_data, per this function's contract;
            // the text outlives the call.
            unsafe { callback(user_data, piece.as_ptr().cast(), text.len()) }
        };
        // SAFETY: caller contract.
        unsafe { call(head, input_json, out_json, &mut on_text) }
    })
}

/// # Safety
/// As `gptrt_task_head_call`.
unsafe fn call(
    head: *const gptrt_task_head_t,
    input_json: *const c_char,
    out_json: *mut *mut c_char,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<(), Failure> {
    check_out(out_json, "out_json")?;
    let object = handles::get(head, "head")?;
    // SAFETY: caller contract.
    let input = unsafe { read_str(input_json, "input_json") }?;
    let this_thread = std::thread::current().id();
    let running_on = || {
        object
            .running_on
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    };
    if *running_on() == Some(this_thread) {
        return Err(Failure::new(
            GPTRT_ERROR_BUSY,
            "the task head is running a call on this thread: its streaming callback cannot call \
             it again (call it after gptrt_task_head_call_streaming returns)",
        ));
    }
    // A plugin panic is caught inside `run`: the instance is intact after a poisoned lock.
    let mut head = object.head.lock().unwrap_or_else(PoisonError::into_inner);
    *running_on() = Some(this_thread);
    let _running = Running(&object.running_on);
    let output = head.run_streaming(input, on_text)?;
    let text = CString::new(output)
        .map_err(|_| Failure::invalid("the task head's output contains NUL"))?;
    // SAFETY: checked non-NULL above; released by gptrt_string_free.
    unsafe { write_out(out_json, text.into_raw()) };
    Ok(())
}

/// Release a task-head instance (the plugin's `destroy` runs). NULL, or a handle freed already, is
/// ignored.
///
/// [thread-safe] Do not use the handle after this call.
#[no_mangle]
pub extern "C" fn gptrt_task_head_free(head: *mut gptrt_task_head_t) {
    crate::error::boundary_value((), || handles::remove(head));
}
