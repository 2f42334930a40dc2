//! `gptrt_batcher_t`: many sessions, one forward pass per step, over [`gptrt::Batcher`]. Sessions
//! made with `gptrt_session_new_batched` hand their generations to the batcher's single worker
//! thread, which steps every running generation in one continuously batched forward pass. The host
//! side is unchanged: start, poll, cancel, wait and read results exactly as with
//! `gptrt_session_new`.

use std::sync::Arc;

use crate::error::{boundary, gptrt_status_t};
use crate::ffi::{check_out, write_out, write_text};
use crate::handles;

/// A shared stepping engine over one model: the sessions made from it
/// (`gptrt_session_new_batched`) generate together, one forward pass per step for all of them.
/// Opaque; made by `gptrt_batcher_new`, released by `gptrt_batcher_free` (its sessions keep it
/// alive until they are freed too).
pub struct gptrt_batcher_t(());

/// The object behind a `gptrt_batcher_t`.
pub(crate) type Batcher = gptrt::Batcher;

/// Make a batcher over `model`. On success `*out_batcher` receives a new handle to release with
/// `gptrt_batcher_free`. It starts one worker thread, idle until a batched session starts a
/// generation; make batchers while loading, not in a frame.
///
/// Batched sessions run greedy or sampled generations with any processor, stop string, `max_time`
/// and `logprobs`, each generation with its own (one out of time stops with `GPTRT_STOP_MAX_TIME`
/// while its batch mates go on) and with the session's plugin samplers; beam search is
/// `GPTRT_ERROR_INVALID_OPTION` at `gptrt_session_start` (use a session of its own for it). A
/// plugin call that never returns stalls the whole batch. Each sequence's tokens are those
/// it would get alone, bit for bit (the rows are padded and masked, never mixed, and padded by
/// multiples of 8 positions so ONNX Runtime sums each row's attention in the same groups; a
/// joining generation may take up to 7 decode steps alone before it steps with the others).
///
/// [thread-safe]
///
/// # Safety
/// `out_batcher` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_batcher_new(
    model: *const crate::model::gptrt_model_t,
    out_batcher: *mut *mut gptrt_batcher_t,
) -> gptrt_status_t {
    boundary("gptrt_batcher_new", || {
        check_out(out_batcher, "out_batcher")?;
        let model = handles::get(model, "model")?;
        let batcher = gptrt::Batcher::new(model)?;
        let handle = handles::insert::<gptrt_batcher_t>(Arc::new(batcher));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_batcher, handle) };
        Ok(())
    })
}

/// Release a batcher handle. Its sessions keep it running until they are freed; then its worker
/// stops. NULL, or a handle freed already, is ignored.
///
/// [thread-safe] Do not use the handle after this call.
#[no_mangle]
pub extern "C" fn gptrt_batcher_free(batcher: *mut gptrt_batcher_t) {
    crate::error::boundary_value((), || handles::remove(batcher));
}

/// What the batcher has done so far, as a JSON object copied into `buffer` (NUL-terminated):
/// `forward_passes` (steps of the batch, a joining prompt's own pass included), `tokens`
/// (generated, all sessions), `generations` (started), `max_rows` (the most rows one pass
/// advanced) and `mean_rows_per_pass`. `*out_size` receives the size needed (the NUL included),
/// also when the status is `GPTRT_ERROR_BUFFER_TOO_SMALL`.
///
/// [thread-safe; never waits for a forward pass]
///
/// # Safety
/// `buffer` is NULL or valid for `capacity` bytes; `out_size` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_batcher_stats_json(
    batcher: *const gptrt_batcher_t,
    buffer: *mut std::ffi::c_char,
    capacity: usize,
    out_size: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_batcher_stats_json", || {
        check_out(out_size, "out_size")?;
        let batcher = handles::get(batcher, "batcher")?;
        let json = batcher.stats().to_json();
        // SAFETY: per this function's contract.
        unsafe { write_text(&json.to_string(), buffer, capacity, out_size, "buffer") }
    })
}
