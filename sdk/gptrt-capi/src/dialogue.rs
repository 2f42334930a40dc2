//! Dialogue on a `gptrt_session_t`: the session keeps its sequence and KV cache across
//! generations. Append text or tokens, generate a turn (synchronously or through the poll API),
//! rewind, fork, hand in a whole transcript (only the tail after the common prefix runs), save to
//! a buffer and restore. The session is [`gptrt::Session`]; this module checks handles and reads
//! and writes C memory.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use gptrt::{SavedKv, SessionState};

use crate::error::{boundary, gptrt_status_t, Failure};
use crate::ffi::{check_out, read_slice, read_str, write_array, write_out};
use crate::handles;
use crate::options::gptrt_generation_options_t;
use crate::session::{gptrt_session_t, gptrt_token_callback_t, token_forwarder};

/// Whether a saved session holds its KV cache (`gptrt_session_save`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum gptrt_saved_kv_t {
    /// Tokens only (4 bytes a token): the next turn after restoring runs them again.
    GPTRT_SAVED_KV_NONE = 0,
    /// The cache's filled positions as fp32: restored exactly, nothing runs again.
    GPTRT_SAVED_KV_F32 = 1,
    /// As fp16: half the bytes, the restored cache rounded to fp16.
    GPTRT_SAVED_KV_F16 = 2,
}

fn session_config(
    session: &gptrt::Session,
    options: *const gptrt_generation_options_t,
) -> Result<gptrt::GenerationConfig, Failure> {
    Ok(if options.is_null() {
        session.model().generation_config().clone()
    } else {
        handles::get(options, "options")?.lock().clone()
    })
}

/// Append `text` (UTF-8, tokenized on its own) to the session's sequence. Nothing runs through
/// the model until the next turn or `gptrt_session_prefill`. `*out_count` (may be NULL) receives
/// the number of tokens added. `GPTRT_ERROR_BUSY` while a generation runs.
///
/// [thread-safe; fails with BUSY while a generation runs]
///
/// # Safety
/// `text` is NULL or NUL-terminated; `out_count` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_append_text(
    session: *mut gptrt_session_t,
    text: *const c_char,
    out_count: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_session_append_text", || {
        let session = handles::get(session, "session")?;
        // SAFETY: per this function's contract.
        let text = unsafe { read_str(text, "text")? };
        let count = session.append_text(text)?;
        // SAFETY: NULL or valid per the contract; write_out skips NULL.
        unsafe { write_out(out_count, count) };
        Ok(())
    })
}

/// Append `count` token ids (checked against the vocabulary) to the session's sequence.
///
/// [thread-safe; fails with BUSY while a generation runs]
///
/// # Safety
/// `ids` is NULL (with `count` 0) or valid for `count` ids.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_append_tokens(
    session: *mut gptrt_session_t,
    ids: *const u32,
    count: usize,
) -> gptrt_status_t {
    boundary("gptrt_session_append_tokens", || {
        let session = handles::get(session, "session")?;
        // SAFETY: per this function's contract.
        let ids = unsafe { read_slice(ids, count, "ids")? };
        Ok(session.append_tokens(ids)?)
    })
}

/// Run the tokens appended since the last pass through the model now, on the calling thread
/// (e.g. a persona while loading, before forking NPCs from it). `*out_count` (may be NULL)
/// receives how many ran. `GPTRT_ERROR_CONTEXT_OVERFLOW` when the sequence does not fit the
/// window (the tokens stay: rewind them).
///
/// [thread-safe; blocks for the forward pass; BUSY while a generation runs]
///
/// # Safety
/// `out_count` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_prefill(
    session: *mut gptrt_session_t,
    out_count: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_session_prefill", || {
        let session = handles::get(session, "session")?;
        let count = session.prefill()?;
        // SAFETY: NULL or valid per the contract.
        unsafe { write_out(out_count, count) };
        Ok(())
    })
}

/// Start a turn: generate after the session's sequence on its worker (or in its batcher's batch)
/// and return at once; poll it with `gptrt_session_poll` / `gptrt_session_poll_tokens` and read
/// the result as after `gptrt_session_start`. Only the tokens not yet in the KV cache run (what
/// was appended since the last turn, and the last token of the previous reply). The turn's tokens
/// join the sequence (stop-string tokens included). A sampled turn whose options set no seed
/// draws one from the session's random state. Beam search runs without the cache and leaves none.
/// `options` may be NULL for the model's `generation_config.json`.
///
/// [thread-safe; one generation at a time per session]
#[no_mangle]
pub extern "C" fn gptrt_session_start_turn(
    session: *mut gptrt_session_t,
    options: *const gptrt_generation_options_t,
) -> gptrt_status_t {
    boundary("gptrt_session_start_turn", || {
        let session = handles::get(session, "session")?;
        if session.state() == SessionState::Running {
            return Err(gptrt::Error::Busy.into());
        }
        let config = session_config(&session, options)?;
        Ok(session.start_turn(&config)?)
    })
}

/// `gptrt_session_start_turn` on the calling thread, calling `callback` (may be NULL) for each
/// token as `gptrt_session_generate` does.
///
/// [thread-safe; one generation at a time per session; blocks the calling thread]
///
/// # Safety
/// `callback`, when not NULL, is safe to call with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_generate_turn(
    session: *mut gptrt_session_t,
    options: *const gptrt_generation_options_t,
    callback: gptrt_token_callback_t,
    user_data: *mut c_void,
) -> gptrt_status_t {
    boundary("gptrt_session_generate_turn", || {
        let session = handles::get(session, "session")?;
        let config = session_config(&session, options)?;
        let mut on_token = token_forwarder(callback, user_data);
        session
            .generate_turn(&config, &mut on_token)
            .map_err(|error| match error {
                gptrt::Error::GenerationFailed(failed) => {
                    Failure::new(crate::error::status_of(&failed), failed.to_string())
                }
                other => Failure::from(other),
            })
    })
}

/// Cut the session's sequence back to its first `length` tokens (a length past its end changes
/// nothing); the KV cache keeps its first `length` positions, so nothing runs again.
///
/// [thread-safe; BUSY while a generation runs]
#[no_mangle]
pub extern "C" fn gptrt_session_rewind(
    session: *mut gptrt_session_t,
    length: usize,
) -> gptrt_status_t {
    boundary("gptrt_session_rewind", || {
        Ok(handles::get(session, "session")?.rewind(length)?)
    })
}

/// Make the sequence `ids` (a whole transcript a stateless host sends again): the longest prefix
/// it shares with what the session holds is kept with its cache, the rest appended.
/// `*out_kept` (may be NULL) receives the length of the prefix kept.
///
/// [thread-safe; BUSY while a generation runs]
///
/// # Safety
/// `ids` is NULL (with `count` 0) or valid for `count` ids; `out_kept` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_set_tokens(
    session: *mut gptrt_session_t,
    ids: *const u32,
    count: usize,
    out_kept: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_session_set_tokens", || {
        let session = handles::get(session, "session")?;
        // SAFETY: per this function's contract.
        let ids = unsafe { read_slice(ids, count, "ids")? };
        let kept = session.set_tokens(ids)?;
        // SAFETY: NULL or valid per the contract.
        unsafe { write_out(out_kept, kept) };
        Ok(())
    })
}

/// The session's whole sequence (appended and generated tokens). `*out_count` receives its
/// length, also with `GPTRT_ERROR_BUFFER_TOO_SMALL`; pass `ids = NULL, capacity = 0` to ask.
///
/// [thread-safe; BUSY while a generation runs]
///
/// # Safety
/// `ids` is NULL or valid for `capacity` ids; `out_count` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_context_tokens(
    session: *const gptrt_session_t,
    ids: *mut u32,
    capacity: usize,
    out_count: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_session_context_tokens", || {
        check_out(out_count, "out_count")?;
        let tokens = handles::get(session, "session")?.tokens()?;
        // SAFETY: per this function's contract.
        unsafe { write_array(&tokens, ids, capacity, out_count, "ids") }
    })
}

/// Counts of the session's sequence: `*out_length` tokens, of which the first `*out_cached` are
/// in the KV cache; `*out_tokens_run` positions the model ran for the sequence so far (every
/// prefill, turn and decode step). Any out-parameter may be NULL.
///
/// [thread-safe; BUSY while a generation runs]
///
/// # Safety
/// Each out-parameter is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_context_counts(
    session: *const gptrt_session_t,
    out_length: *mut usize,
    out_cached: *mut usize,
    out_tokens_run: *mut u64,
) -> gptrt_status_t {
    boundary("gptrt_session_context_counts", || {
        let session = handles::get(session, "session")?;
        let (length, cached, run) = (
            session.context_len()?,
            session.cached_len()?,
            session.tokens_run()?,
        );
        // SAFETY: NULL or valid per the contract.
        unsafe {
            write_out(out_length, length);
            write_out(out_cached, cached);
            write_out(out_tokens_run, run);
        }
        Ok(())
    })
}

/// A new session holding a copy of this one's sequence, KV cache and random state (over the same
/// model, or in the same batcher): an NPC forked from a persona starts without running it again.
/// Release it with `gptrt_session_free`.
///
/// [thread-safe; BUSY while a generation runs]
///
/// # Safety
/// `out_session` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_fork(
    session: *const gptrt_session_t,
    out_session: *mut *mut gptrt_session_t,
) -> gptrt_status_t {
    boundary("gptrt_session_fork", || {
        check_out(out_session, "out_session")?;
        let fork = handles::get(session, "session")?.fork()?;
        let handle = handles::insert::<gptrt_session_t>(Arc::new(fork));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_session, handle) };
        Ok(())
    })
}

/// Seed the random state that sampled turns without a seed of their own draw from (forked NPCs
/// share their parent's until reseeded).
///
/// [thread-safe; BUSY while a generation runs]
#[no_mangle]
pub extern "C" fn gptrt_session_reseed(session: *mut gptrt_session_t, seed: u64) -> gptrt_status_t {
    boundary("gptrt_session_reseed", || {
        Ok(handles::get(session, "session")?.reseed(seed)?)
    })
}

/// Save the session's sequence (docs/saved-sessions.md: tokens, random state, last turn's
/// settings, and with `kv`, a `gptrt_saved_kv_t`, the KV cache) into `buffer`. `*out_size` receives the bytes needed,
/// also with `GPTRT_ERROR_BUFFER_TOO_SMALL`; pass `buffer = NULL, capacity = 0` to ask.
///
/// [thread-safe; BUSY while a generation runs]
///
/// # Safety
/// `buffer` is NULL or valid for `capacity` bytes; `out_size` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_save(
    session: *const gptrt_session_t,
    kv: i32,
    buffer: *mut u8,
    capacity: usize,
    out_size: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_session_save", || {
        check_out(out_size, "out_size")?;
        // An int, not the enum: a C caller can pass any value, which a Rust enum must never hold.
        let kv = match kv {
            0 => SavedKv::None,
            1 => SavedKv::F32,
            2 => SavedKv::F16,
            other => {
                return Err(Failure::invalid(format!(
                    "`kv` is {other}; GPTRT_SAVED_KV_NONE, _F32 or _F16"
                )))
            }
        };
        let bytes = handles::get(session, "session")?.save(kv)?;
        // SAFETY: per this function's contract.
        unsafe { write_array(&bytes, buffer, capacity, out_size, "buffer") }
    })
}

/// Replace the session's sequence with a saved one (`gptrt_session_save`). A state saved for
/// another model, or damaged or truncated, is `GPTRT_ERROR_SAVED_STATE` with a message that
/// names the problem (both fingerprints for another model); the session then keeps what it held.
///
/// [thread-safe; BUSY while a generation runs]
///
/// # Safety
/// `data` is NULL (with `size` 0) or valid for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_restore(
    session: *mut gptrt_session_t,
    data: *const u8,
    size: usize,
) -> gptrt_status_t {
    boundary("gptrt_session_restore", || {
        // SAFETY: per this function's contract.
        let bytes = unsafe { read_slice(data, size, "data")? };
        Ok(handles::get(session, "session")?.restore(bytes)?)
    })
}
