//! `gptrt_session_t`: one sequence in flight with its own KV cache, driven synchronously with a
//! token callback or on a worker thread that the host polls without ever blocking. The session
//! itself is [`gptrt::Session`] (its worker, state machine and stream buffer); this module checks
//! handles, reads and writes C memory and maps states, stop reasons and errors to their codes.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use gptrt::{Generation, GenerationConfig, Model, SessionState, StopReason, TokenEvent};

use crate::batcher::gptrt_batcher_t;
use crate::error::{boundary, gptrt_status_t, status_of, Failure};
use crate::ffi::{check_out, read_str, write_array, write_out, write_text};
use crate::handles;
use crate::options::gptrt_generation_options_t;

/// One sequence in flight over a shared model: its tokens, KV cache and stop state, and the result
/// of its last generation. Opaque; made by `gptrt_session_new`, released by `gptrt_session_free`.
///
/// A session runs one generation at a time: starting another while one runs is
/// `GPTRT_ERROR_BUSY`. Each generation starts from its prompt with a fresh KV cache. Sessions are
/// cheap; make one per conversation, NPC or request, all over one model.
pub struct gptrt_session_t(());

/// Where a session's generation is (`gptrt_session_state`, and the state the poll functions
/// report).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum gptrt_session_state_t {
    /// No generation has been started.
    GPTRT_SESSION_IDLE = 0,
    /// A generation is running (or, from the poll functions: its output is not all taken yet).
    GPTRT_SESSION_RUNNING = 1,
    /// The generation ended (any stop reason, cancellation included); the result is readable.
    GPTRT_SESSION_FINISHED = 2,
    /// The generation failed; the result functions return its status and message.
    GPTRT_SESSION_FAILED = 3,
}

use gptrt_session_state_t::*;

/// Why a generation stopped (`gptrt_session_stop_reason`). The numbers never change.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum gptrt_stop_reason_t {
    /// An end token (`eos_token_id`) was generated; it is the last of the token ids.
    GPTRT_STOP_EOS = 1,
    /// `max_new_tokens` (or `max_length`) was reached.
    GPTRT_STOP_MAX_NEW_TOKENS = 2,
    /// The model's context window is full.
    GPTRT_STOP_CONTEXT_FULL = 3,
    /// The token callback returned `false`.
    GPTRT_STOP_CALLBACK = 4,
    /// A stop string appeared (left out of the text).
    GPTRT_STOP_STOP_STRING = 5,
    /// `max_time` ran out.
    GPTRT_STOP_MAX_TIME = 6,
    /// `gptrt_session_cancel` was called.
    GPTRT_STOP_CANCELLED = 7,
    /// A reason this version of the C API has no code for yet (see `gptrt_session_result_json`).
    GPTRT_STOP_OTHER = 255,
}

use gptrt_stop_reason_t::*;

fn stop_code(reason: StopReason) -> gptrt_stop_reason_t {
    match reason {
        StopReason::Eos => GPTRT_STOP_EOS,
        StopReason::MaxNewTokens => GPTRT_STOP_MAX_NEW_TOKENS,
        StopReason::ContextFull => GPTRT_STOP_CONTEXT_FULL,
        StopReason::Callback => GPTRT_STOP_CALLBACK,
        StopReason::StopString => GPTRT_STOP_STOP_STRING,
        StopReason::MaxTime => GPTRT_STOP_MAX_TIME,
        StopReason::Cancelled => GPTRT_STOP_CANCELLED,
        #[allow(unreachable_patterns)]
        _ => GPTRT_STOP_OTHER,
    }
}

/// One generated token, handed to a `gptrt_token_callback_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct gptrt_token_event_t {
    /// `sizeof(gptrt_token_event_t)` as gptrt was compiled: fields are only ever appended, so
    /// check it before reading a field newer than your header.
    pub struct_size: usize,
    /// The token id.
    pub token_id: u32,
    /// The text this token completed, NUL-terminated UTF-8, valid only during the callback. May be
    /// empty: part of a multi-byte character, a special token, or text held back because it may
    /// start a stop string. Concatenating every event's text gives the final text.
    pub text: *const c_char,
    /// Bytes in `text`, the NUL not included.
    pub text_len: usize,
    /// 0 for the first generated token, then 1, 2, ...
    pub index: usize,
}

/// Called for each generated token by `gptrt_session_generate`, on the calling thread.
/// `user_data` is the pointer given to `gptrt_session_generate`. Return `true` to continue,
/// `false` to stop (stop reason `GPTRT_STOP_CALLBACK`). The callback may call
/// `gptrt_session_cancel`, and any gptrt function on other objects; it must not unwind (no C++
/// exception may leave it, no `longjmp` out of it).
pub type gptrt_token_callback_t =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const gptrt_token_event_t) -> bool>;

/// The object behind a `gptrt_session_t`.
pub(crate) type Session = gptrt::Session;

fn state_code(state: SessionState) -> gptrt_session_state_t {
    match state {
        SessionState::Idle => GPTRT_SESSION_IDLE,
        SessionState::Running => GPTRT_SESSION_RUNNING,
        SessionState::Finished => GPTRT_SESSION_FINISHED,
        SessionState::Failed => GPTRT_SESSION_FAILED,
    }
}

/// A generation's own failure as the call that ran (or waited for) it returns it: its status and
/// its message as they were.
fn generation_failure(error: gptrt::Error) -> Failure {
    match error {
        gptrt::Error::GenerationFailed(failed) => {
            Failure::new(status_of(&failed), failed.to_string())
        }
        other => Failure::from(other),
    }
}

/// The config a generation runs with: the options, or the model's `generation_config.json`.
fn session_config(
    model: &Model,
    options: *const gptrt_generation_options_t,
) -> Result<GenerationConfig, Failure> {
    Ok(if options.is_null() {
        model.generation_config().clone()
    } else {
        handles::get(options, "options")?.lock().clone()
    })
}

/// Make a session over `model`. On success `*out_session` receives a new handle to release with
/// `gptrt_session_free`. The session keeps the model alive. Each session starts one worker thread
/// (idle until `gptrt_session_start`), so make sessions while loading, not in a frame.
///
/// [thread-safe]
///
/// # Safety
/// `out_session` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_new(
    model: *const crate::model::gptrt_model_t,
    out_session: *mut *mut gptrt_session_t,
) -> gptrt_status_t {
    boundary("gptrt_session_new", || {
        check_out(out_session, "out_session")?;
        let model = handles::get(model, "model")?;
        let handle = handles::insert::<gptrt_session_t>(Arc::new(gptrt::Session::new(model)?));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_session, handle) };
        Ok(())
    })
}

/// Make a session whose generations run in `batcher`'s batch: started with
/// `gptrt_session_start`, they step together with every other running generation of the batcher's
/// sessions, one forward pass for all (see `gptrt_batcher_new` for what they cannot do). Polling,
/// cancelling, waiting and reading results work as for `gptrt_session_new`;
/// `gptrt_session_generate` on such a session runs alone on the calling thread. The session keeps
/// the batcher and its model alive; it starts no thread.
///
/// [thread-safe]
///
/// # Safety
/// `out_session` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_new_batched(
    batcher: *const gptrt_batcher_t,
    out_session: *mut *mut gptrt_session_t,
) -> gptrt_status_t {
    boundary("gptrt_session_new_batched", || {
        check_out(out_session, "out_session")?;
        let batcher = handles::get(batcher, "batcher")?;
        let session = gptrt::Session::new_batched(&batcher);
        let handle = handles::insert::<gptrt_session_t>(Arc::new(session));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_session, handle) };
        Ok(())
    })
}

/// Release a session handle. A running generation is cancelled and this call waits for the
/// session's worker to stop (at most the forward pass in progress) and exit. NULL, or a handle
/// freed already, is ignored (set your variable to NULL after freeing).
///
/// A worker that stays inside one plugin call for half a second of this wait is detached instead (nothing can preempt a plugin's native code): this call returns, and the
/// worker thread, its plugin instances and its reference to the model stay alive until the plugin
/// returns; then the worker sees the cancel, frees them and exits. Until then the model's memory
/// is not released even after `gptrt_model_free`, and a process that exits meanwhile simply ends
/// the thread.
///
/// [thread-safe] Do not use the handle after this call. If another thread is inside a call on the
/// session, the session is released when that call returns.
#[no_mangle]
pub extern "C" fn gptrt_session_free(session: *mut gptrt_session_t) {
    crate::error::boundary_value((), || handles::remove(session));
}

/// Generate a continuation of `prompt` (UTF-8; empty starts from `<|endoftext|>`) on the calling
/// thread, calling `callback` (may be NULL) for each token. Returns when generation stops; then
/// read the result with `gptrt_session_text`, `gptrt_session_token_ids`,
/// `gptrt_session_stop_reason` or `gptrt_session_result_json`.
///
/// `options` may be NULL for the model's `generation_config.json`. A stop (end token, limits,
/// callback returning `false`, `gptrt_session_cancel` from another thread) is `GPTRT_OK`; the stop
/// reason says which. Errors: `GPTRT_ERROR_BUSY` (a generation is running on this session),
/// `GPTRT_ERROR_INVALID_OPTION`, `GPTRT_ERROR_CONTEXT_OVERFLOW`, `GPTRT_ERROR_ONNX_RUNTIME`...
///
/// [thread-safe; one generation at a time per session] Runs on the calling thread, which it
/// blocks; cancel it from any thread with `gptrt_session_cancel`.
///
/// # Safety
/// `prompt` is NULL or NUL-terminated; `callback`, when not NULL, is safe to call with
/// `user_data`.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_generate(
    session: *mut gptrt_session_t,
    prompt: *const c_char,
    options: *const gptrt_generation_options_t,
    callback: gptrt_token_callback_t,
    user_data: *mut c_void,
) -> gptrt_status_t {
    boundary("gptrt_session_generate", || {
        let session = handles::get(session, "session")?;
        // SAFETY: per this function's contract.
        let prompt = unsafe { read_str(prompt, "prompt")? };
        let config = session_config(session.model(), options)?;
        let mut on_token = token_forwarder(callback, user_data);
        session
            .generate(prompt, &config, &mut on_token)
            .map_err(generation_failure)
    })
}

/// Start generating a continuation of `prompt` on a worker thread and return at once: the poll
/// API for frame loops. Each frame, take what is ready with `gptrt_session_poll` (text) or
/// `gptrt_session_poll_tokens` (ids); neither ever blocks. When they report
/// `GPTRT_SESSION_FINISHED`, read the result as after `gptrt_session_generate`.
///
/// This call only checks the options (a bad one is `GPTRT_ERROR_INVALID_OPTION` here) and hands
/// the prompt to the session's worker: it costs microseconds whatever the prompt's length. The
/// worker tokenizes the prompt, so a prompt that does not fit the context window ends the
/// generation as `GPTRT_SESSION_FAILED`, and the result functions (or `gptrt_session_wait`) then
/// return `GPTRT_ERROR_CONTEXT_OVERFLOW`. `options` may be NULL for the model's
/// `generation_config.json`; they are copied. `GPTRT_ERROR_BUSY` when a generation is running on
/// this session.
///
/// [thread-safe; one generation at a time per session]
///
/// # Safety
/// `prompt` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_start(
    session: *mut gptrt_session_t,
    prompt: *const c_char,
    options: *const gptrt_generation_options_t,
) -> gptrt_status_t {
    boundary("gptrt_session_start", || {
        let session = handles::get(session, "session")?;
        // SAFETY: per this function's contract.
        let prompt = unsafe { read_str(prompt, "prompt")? };
        if session.state() == SessionState::Running {
            return Err(gptrt::Error::Busy.into());
        }
        let config = session_config(session.model(), options)?;
        Ok(session.start(prompt, &config)?)
    })
}

/// Take the text generated since the last poll, without waiting for the worker, whatever it
/// is doing. Copies at most `capacity - 1` bytes (whole UTF-8 characters only, so a capacity of 5
/// or more always makes progress) plus a NUL into `buffer`; `*out_len` receives the bytes copied
/// (0 when nothing is ready). Text that does not fit stays queued for the next call.
///
/// `*out_state`: `GPTRT_SESSION_RUNNING` while the generation runs or text is still queued;
/// `GPTRT_SESSION_FINISHED` (or `GPTRT_SESSION_FAILED`) once it has ended and this call took the
/// last of its text; `GPTRT_SESSION_IDLE` if nothing was started. `buffer` may be NULL with
/// `capacity` 0 to read the state only.
///
/// [thread-safe; never waits for the generation] Meant for one consumer: two threads polling the same session split
/// the text between them.
///
/// # Safety
/// `buffer` is NULL or valid for `capacity` bytes; `out_len` and `out_state` are NULL or valid for
/// writes.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_poll(
    session: *mut gptrt_session_t,
    buffer: *mut c_char,
    capacity: usize,
    out_len: *mut usize,
    out_state: *mut gptrt_session_state_t,
) -> gptrt_status_t {
    boundary("gptrt_session_poll", || {
        check_out(out_len, "out_len")?;
        check_out(out_state, "out_state")?;
        if buffer.is_null() && capacity > 0 {
            return Err(Failure::null("buffer"));
        }
        let session = handles::get(session, "session")?;
        if capacity > 0 {
            // SAFETY: `buffer` is valid for `capacity >= 1` bytes; nothing ready reads as "".
            unsafe { buffer.write(0) };
        }
        let mut len = 0;
        let state = session.poll_with(capacity.saturating_sub(1), |ready| {
            if capacity > 0 {
                len = ready.len();
                // SAFETY: `buffer` is valid for `capacity > len` bytes (checked non-NULL above).
                unsafe {
                    std::ptr::copy_nonoverlapping(ready.as_ptr(), buffer.cast::<u8>(), len);
                    buffer.add(len).write(0);
                }
            }
        });
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(out_len, len);
            write_out(out_state, state_code(state));
        }
        Ok(())
    })
}

/// Take the token ids generated since the last `gptrt_session_poll_tokens`, without waiting (as
/// `gptrt_session_poll`, on a separate queue: use either or both). Copies at most `capacity` ids
/// into `ids`; `*out_count` receives how many (0 when none is ready); the rest stay queued.
/// `*out_state` as in `gptrt_session_poll`, for this queue.
///
/// [thread-safe; never waits for the generation]
///
/// # Safety
/// `ids` is NULL or valid for `capacity` ids; `out_count` and `out_state` are NULL or valid for
/// writes.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_poll_tokens(
    session: *mut gptrt_session_t,
    ids: *mut u32,
    capacity: usize,
    out_count: *mut usize,
    out_state: *mut gptrt_session_state_t,
) -> gptrt_status_t {
    boundary("gptrt_session_poll_tokens", || {
        check_out(out_count, "out_count")?;
        check_out(out_state, "out_state")?;
        if ids.is_null() && capacity > 0 {
            return Err(Failure::null("ids"));
        }
        let session = handles::get(session, "session")?;
        let mut count = 0;
        let state = session.poll_tokens_with(capacity, |ready| {
            count = ready.len();
            if count > 0 {
                // SAFETY: `ids` is valid for `capacity >= count` ids.
                unsafe { std::ptr::copy_nonoverlapping(ready.as_ptr(), ids, count) };
            }
        });
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(out_count, count);
            write_out(out_state, state_code(state));
        }
        Ok(())
    })
}

/// The session's generation state, ignoring what is still queued for the poll functions.
///
/// [thread-safe; never waits for the generation]
///
/// # Safety
/// `out_state` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_state(
    session: *const gptrt_session_t,
    out_state: *mut gptrt_session_state_t,
) -> gptrt_status_t {
    boundary("gptrt_session_state", || {
        check_out(out_state, "out_state")?;
        let session = handles::get(session, "session")?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_state, state_code(session.state())) };
        Ok(())
    })
}

/// Ask the running generation to stop: it produces at most one more token (the one being
/// computed) and ends with stop reason `GPTRT_STOP_CANCELLED`. Does nothing (and returns `GPTRT_OK`) when no generation is running,
/// including after it finished.
///
/// [thread-safe: any thread, any time; never waits for the generation]
#[no_mangle]
pub extern "C" fn gptrt_session_cancel(session: *const gptrt_session_t) -> gptrt_status_t {
    boundary("gptrt_session_cancel", || {
        handles::get(session, "session")?.cancel();
        Ok(())
    })
}

/// Block until the session's generation ends (returns at once when none is running). Returns
/// `GPTRT_OK` when it finished (or none ever ran), else the generation's error status and message.
///
/// [thread-safe] Blocks the calling thread: not for frame loops.
#[no_mangle]
pub extern "C" fn gptrt_session_wait(session: *const gptrt_session_t) -> gptrt_status_t {
    boundary("gptrt_session_wait", || {
        handles::get(session, "session")?
            .wait()
            .map_err(generation_failure)
    })
}

/// Run `read` on the finished generation, or say why there is none.
fn with_result(
    session: *const gptrt_session_t,
    read: impl FnOnce(&Generation, &Model) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let session = handles::get(session, "session")?;
    session.with_result(|generation| read(generation, session.model()))?
}

/// The generated text of the last generation (special tokens left out), copied into `buffer` with
/// a terminating NUL. `*out_size` receives the size needed (the NUL included), also when the status
/// is `GPTRT_ERROR_BUFFER_TOO_SMALL`; pass `buffer = NULL, capacity = 0` to ask for it.
/// `GPTRT_ERROR_BUSY` while a generation runs, `GPTRT_ERROR_INVALID_STATE` before the first one,
/// the generation's own error if it failed.
///
/// [thread-safe]
///
/// # Safety
/// `buffer` is NULL or valid for `capacity` bytes; `out_size` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_text(
    session: *const gptrt_session_t,
    buffer: *mut c_char,
    capacity: usize,
    out_size: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_session_text", || {
        check_out(out_size, "out_size")?;
        with_result(session, |generation, _| {
            // SAFETY: per this function's contract.
            unsafe { write_text(&generation.text, buffer, capacity, out_size, "buffer") }
        })
    })
}

/// The generated token ids of the last generation (an end token that stopped it is included, as in
/// Hugging Face). `*out_count` receives the number of ids, also when the status is
/// `GPTRT_ERROR_BUFFER_TOO_SMALL`; pass `ids = NULL, capacity = 0` to ask for it. Errors as
/// `gptrt_session_text`.
///
/// [thread-safe]
///
/// # Safety
/// `ids` is NULL or valid for `capacity` ids; `out_count` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_token_ids(
    session: *const gptrt_session_t,
    ids: *mut u32,
    capacity: usize,
    out_count: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_session_token_ids", || {
        check_out(out_count, "out_count")?;
        with_result(session, |generation, _| {
            // SAFETY: per this function's contract.
            unsafe { write_array(&generation.token_ids, ids, capacity, out_count, "ids") }
        })
    })
}

/// The prompt's token ids as fed to the model (after truncation; `<|endoftext|>` for an empty
/// prompt). Buffer rules and errors as `gptrt_session_token_ids`.
///
/// [thread-safe]
///
/// # Safety
/// `ids` is NULL or valid for `capacity` ids; `out_count` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_prompt_token_ids(
    session: *const gptrt_session_t,
    ids: *mut u32,
    capacity: usize,
    out_count: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_session_prompt_token_ids", || {
        check_out(out_count, "out_count")?;
        with_result(session, |generation, _| {
            // SAFETY: per this function's contract.
            unsafe {
                write_array(
                    &generation.prompt_token_ids,
                    ids,
                    capacity,
                    out_count,
                    "ids",
                )
            }
        })
    })
}

/// Why the last generation stopped. Errors as `gptrt_session_text`.
///
/// [thread-safe]
///
/// # Safety
/// `out_reason` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_stop_reason(
    session: *const gptrt_session_t,
    out_reason: *mut gptrt_stop_reason_t,
) -> gptrt_status_t {
    boundary("gptrt_session_stop_reason", || {
        check_out(out_reason, "out_reason")?;
        with_result(session, |generation, _| {
            // SAFETY: checked non-NULL.
            unsafe { write_out(out_reason, stop_code(generation.stop_reason)) };
            Ok(())
        })
    })
}

/// Everything about the last generation as one JSON object: `text`, `prompt_token_ids`,
/// `token_ids`, `stop_reason` (`"eos"`, `"max_new_tokens"`, `"context_full"`, `"callback"`,
/// `"stop_string"`, `"max_time"`, `"cancelled"`), `stop_string`, `seed` (when sampling), `score`
/// (beam search), `logprobs` (when asked for), and the timing (`prompt_tokens`, `prompt_seconds`,
/// `decode_tokens`, `decode_seconds`, `prompt_tokens_per_second`, `decode_tokens_per_second`),
/// copied into `buffer` with a terminating NUL. Buffer rules and errors as `gptrt_session_text`.
///
/// [thread-safe]
///
/// # Safety
/// `buffer` is NULL or valid for `capacity` bytes; `out_size` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_result_json(
    session: *const gptrt_session_t,
    buffer: *mut c_char,
    capacity: usize,
    out_size: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_session_result_json", || {
        check_out(out_size, "out_size")?;
        with_result(session, |generation, model| {
            let text = result_json(generation, model).to_string();
            // SAFETY: per this function's contract.
            unsafe { write_text(&text, buffer, capacity, out_size, "buffer") }
        })
    })
}

fn result_json(result: &Generation, model: &Model) -> serde_json::Value {
    result.to_json(model.tokenizer())
}

/// The SDK's token events passed on to a host's C callback (with its `user_data`) as
/// `gptrt_token_event_t`s numbered from 0; no callback accepts every token.
///
/// The callback must be safe to call with `user_data`, as the calling entry point's contract says.
pub(crate) fn token_forwarder(
    callback: gptrt_token_callback_t,
    user_data: *mut c_void,
) -> impl FnMut(&TokenEvent<'_>) -> bool {
    let mut text = Vec::new();
    let mut index = 0usize;
    move |event: &TokenEvent<'_>| -> bool {
        let Some(callback) = callback else {
            return true;
        };
        text.clear();
        text.extend_from_slice(event.text.as_bytes());
        text.push(0);
        let c_event = gptrt_token_event_t {
            struct_size: std::mem::size_of::<gptrt_token_event_t>(),
            token_id: event.token_id,
            text: text.as_ptr().cast(),
            text_len: event.text.len(),
            index,
        };
        index += 1;
        // SAFETY: the host's callback with its own user_data, per the calling entry point's
        // contract; the event and its text outlive the call.
        unsafe { callback(user_data, &c_event) }
    }
}
