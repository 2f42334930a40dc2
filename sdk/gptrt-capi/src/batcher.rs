//! `gptrt_batcher_t`: many sessions, one forward pass per step. Sessions made with
//! `gptrt_session_new_batched` hand their generations to the batcher's single worker thread, which
//! runs them as rows of one continuously batched [`Generator`]: a generation that starts joins the
//! running batch (its prompt runs alone, then its KV cache joins the others), one that stops leaves
//! it, and every step advances all of them in one forward pass. On a CPU a step of 8 rows costs
//! little more than a step of one (decode reads the weights once per step), so 8 NPCs talk nearly 8
//! times as fast as 8 sessions taking turns. The host side is unchanged: start, poll, cancel, wait
//! and read results exactly as with `gptrt_session_new`.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use gptrt::{Generator, Model, StopReason, TokenEvent};

use crate::error::{
    boundary, gptrt_status_t, panic_message, Failure, GPTRT_ERROR_INTERNAL,
    GPTRT_ERROR_INVALID_OPTION, GPTRT_ERROR_PANIC,
};
use crate::ffi::{check_out, write_out, write_text};
use crate::handles;
use crate::session::{spawn_worker, yield_to_host_threads, Job, Shared};

/// A shared stepping engine over one model: the sessions made from it
/// (`gptrt_session_new_batched`) generate together, one forward pass per step for all of them.
/// Opaque; made by `gptrt_batcher_new`, released by `gptrt_batcher_free` (its sessions keep it
/// alive until they are freed too).
pub struct gptrt_batcher_t(());

/// The object behind a `gptrt_batcher_t`.
pub(crate) struct Batcher {
    model: Arc<Model>,
    inner: Arc<Inner>,
    worker: Option<JoinHandle<()>>,
}

struct Inner {
    queue: Mutex<Queue>,
    /// Signalled when a generation is queued or the batcher is being freed.
    wake: Condvar,
    stats: Mutex<Stats>,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<(Arc<Shared>, Job)>,
    shutdown: bool,
}

/// What the worker did, for `gptrt_batcher_stats_json`.
#[derive(Default, Clone, Copy)]
struct Stats {
    forward_passes: u64,
    /// Sum over forward passes of the rows they advanced.
    rows_stepped: u64,
    max_rows: usize,
    tokens: u64,
    generations: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change under these locks is a whole-field store or a push: consistent after a panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Batcher {
    pub(crate) fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Queue a generation; the session is already marked running with `job.cancel` as its token.
    pub(crate) fn submit(&self, shared: Arc<Shared>, job: Job) {
        lock(&self.inner.queue).pending.push_back((shared, job));
        self.inner.wake.notify_one();
    }
}

impl Drop for Batcher {
    /// The last session and the handle are gone: stop the worker (it ends any generation still in
    /// flight as cancelled) and wait for it.
    fn drop(&mut self) {
        lock(&self.inner.queue).shutdown = true;
        self.inner.wake.notify_all();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// What a batched generation cannot do, checked when it starts. Beam search keeps its own beams,
/// plugin samplers must see the first token (which a joining row picks before it joins), and
/// `max_time` and `logprobs` are settings of the whole batch.
pub(crate) fn check_batchable(
    config: &gptrt::GenerationConfig,
    has_samplers: bool,
) -> Result<(), Failure> {
    let refuse = |what: &str| {
        Err(Failure::new(
            GPTRT_ERROR_INVALID_OPTION,
            format!(
                "a batched session cannot run {what}: use a session of its own \
                 (gptrt_session_new) for this generation"
            ),
        ))
    };
    if config.num_beams > 1 {
        return refuse("beam search (num_beams > 1)");
    }
    if has_samplers {
        return refuse("plugin samplers");
    }
    if config.max_time.is_some() {
        return refuse("`max_time`");
    }
    if config.logprobs.is_some() {
        return refuse("`logprobs`");
    }
    Ok(())
}

/// A row of the batch: whose it is and how to stop it.
struct Member {
    shared: Arc<Shared>,
    job_cancel: gptrt::CancelToken,
}

/// Route a token to its session; `false` stops a row whose session was cancelled or freed.
fn deliver(member: &Member, event: &TokenEvent<'_>, stats: &mut Stats) -> bool {
    stats.tokens += 1;
    member.shared.push_token(event);
    !member.job_cancel.is_cancelled()
}

fn batcher_main(model: Arc<Model>, inner: Arc<Inner>) {
    yield_to_host_threads();
    let mut generator: Option<Generator<'_>> = None;
    let mut members: HashMap<usize, Member> = HashMap::new();
    loop {
        let (jobs, shutdown) = {
            let mut queue = lock(&inner.queue);
            while !queue.shutdown && queue.pending.is_empty() && members.is_empty() {
                queue = inner
                    .wake
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            (std::mem::take(&mut queue.pending), queue.shutdown)
        };
        if shutdown {
            for (shared, job) in jobs {
                job.cancel.cancel();
                shared.finish(Err(freed()), false);
            }
            for member in members.into_values() {
                member.shared.finish(Err(freed()), false);
            }
            return;
        }
        let mut stats = *lock(&inner.stats);
        for (shared, job) in jobs {
            admit(
                &model,
                &mut generator,
                &mut members,
                shared,
                job,
                &mut stats,
            );
        }
        if let Some(batch) = generator.as_mut().filter(|g| !g.is_empty()) {
            let rows = batch.len();
            let stepped = catch_unwind(AssertUnwindSafe(|| {
                batch.step(&mut |event| match members.get(&event.row) {
                    Some(member) => deliver(member, event, &mut stats),
                    None => false,
                })
            }));
            stats.forward_passes += 1;
            stats.rows_stepped += rows as u64;
            stats.max_rows = stats.max_rows.max(rows);
            let failure = match stepped {
                Ok(Ok(_)) => None,
                Ok(Err(error)) => Some(Failure::from(error)),
                Err(payload) => Some(Failure::new(
                    GPTRT_ERROR_PANIC,
                    format!(
                        "the batched generation panicked (a gptrt bug; please report it): {}",
                        panic_message(payload.as_ref())
                    ),
                )),
            };
            match failure {
                Some(failure) => fail_batch(&mut generator, &mut members, &failure),
                None => retire(&mut generator, &mut members),
            }
        }
        if generator.as_ref().is_some_and(Generator::is_empty) {
            // Empty: the next generation starts a fresh batch (with its own batch-wide settings).
            generator = None;
        }
        *lock(&inner.stats) = stats;
    }
}

fn freed() -> Failure {
    Failure::new(
        GPTRT_ERROR_INTERNAL,
        "the batcher was freed while this generation was queued or running",
    )
}

/// Put a queued generation into the batch: the first one makes the batch, later ones join it.
fn admit<'m>(
    model: &'m Arc<Model>,
    generator: &mut Option<Generator<'m>>,
    members: &mut HashMap<usize, Member>,
    shared: Arc<Shared>,
    job: Job,
    stats: &mut Stats,
) {
    let member = Member {
        shared,
        job_cancel: job.cancel.clone(),
    };
    let tokens_before = stats.tokens;
    let admitted = catch_unwind(AssertUnwindSafe(|| -> Result<usize, Failure> {
        let ids = model.tokenizer().encode(&job.prompt)?;
        match generator {
            None => {
                let batch = Generator::new(model, vec![ids], &job.config)?;
                let row = batch.row_ids().first().copied().ok_or_else(|| {
                    Failure::new(GPTRT_ERROR_INTERNAL, "a new batch came without its row")
                })?;
                *generator = Some(batch);
                Ok(row)
            }
            // A running batch: the newcomer's prompt runs alone and its first token arrives
            // before `join` returns its row id, so every token of that pass is the newcomer's.
            Some(batch) => Ok(batch.join(ids, &job.config, &mut |event| {
                deliver(&member, event, stats)
            })?),
        }
    }))
    .unwrap_or_else(|payload| {
        Err(Failure::new(
            GPTRT_ERROR_PANIC,
            format!(
                "starting the batched generation panicked (a gptrt bug; please report it): {}",
                panic_message(payload.as_ref())
            ),
        ))
    });
    stats.generations += 1;
    if stats.tokens > tokens_before {
        // The newcomer's prompt had a forward pass of its own.
        stats.forward_passes += 1;
        stats.rows_stepped += 1;
        stats.max_rows = stats.max_rows.max(1);
    }
    match admitted {
        Ok(row) => {
            members.insert(row, member);
        }
        Err(failure) => member.shared.finish(Err(failure), false),
    }
}

/// Hand the stopped rows' results to their sessions.
fn retire(generator: &mut Option<Generator<'_>>, members: &mut HashMap<usize, Member>) {
    let Some(batch) = generator.as_mut() else {
        return;
    };
    match batch.retire() {
        Ok(done) => {
            for (row, mut generation) in done {
                let Some(member) = members.remove(&row) else {
                    continue;
                };
                if generation.stop_reason == StopReason::Callback
                    && member.job_cancel.is_cancelled()
                {
                    generation.stop_reason = StopReason::Cancelled;
                }
                member.shared.finish(Ok(generation), false);
            }
        }
        Err(error) => fail_batch(generator, members, &Failure::from(error)),
    }
}

/// A failed forward pass (or retirement) fails every row of the batch; the next generation
/// starts a fresh one.
fn fail_batch(
    generator: &mut Option<Generator<'_>>,
    members: &mut HashMap<usize, Member>,
    failure: &Failure,
) {
    *generator = None;
    for member in std::mem::take(members).into_values() {
        member.shared.finish(Err(failure.clone()), false);
    }
}

/// Make a batcher over `model`. On success `*out_batcher` receives a new handle to release with
/// `gptrt_batcher_free`. It starts one worker thread, idle until a batched session starts a
/// generation; make batchers while loading, not in a frame.
///
/// Batched sessions run greedy or sampled generations with any processor and stop string; beam
/// search, plugin samplers, `max_time` and `logprobs` are `GPTRT_ERROR_INVALID_OPTION` at
/// `gptrt_session_start` (use a session of its own for those). Each sequence's tokens are those it
/// would get alone (the rows are padded and masked, never mixed), up to float rounding.
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
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            stats: Mutex::new(Stats::default()),
        });
        let worker = {
            let (model, inner) = (model.clone(), inner.clone());
            spawn_worker("batcher", move || batcher_main(model, inner))?
        };
        let batcher = Batcher {
            model,
            inner,
            worker: Some(worker),
        };
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
        let stats = *lock(&batcher.inner.stats);
        let mean = if stats.forward_passes == 0 {
            0.0
        } else {
            stats.rows_stepped as f64 / stats.forward_passes as f64
        };
        let json = serde_json::json!({
            "forward_passes": stats.forward_passes,
            "tokens": stats.tokens,
            "generations": stats.generations,
            "max_rows": stats.max_rows,
            "mean_rows_per_pass": mean,
        });
        // SAFETY: per this function's contract.
        unsafe { write_text(&json.to_string(), buffer, capacity, out_size, "buffer") }
    })
}
