//! The continuous batcher: many sessions, one forward pass per step.
//!
//! Sessions made with [`crate::Session::new_batched`] hand their generations to the batcher's
//! single worker thread, which runs them as rows of one continuously batched [`crate::Generator`]: a
//! generation that starts joins the running batch (its prompt runs alone, then its KV cache joins
//! the others), one that stops leaves it, and every step advances all of them in one forward
//! pass. On a CPU a step of 8 rows costs little more than a step of one (decode reads the weights
//! once per step), so 8 NPCs talk nearly 8 times as fast as 8 sessions taking turns. The sessions
//! are used exactly as sessions of their own: start, poll, cancel, wait, results.

mod worker;

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::generate::{CancelToken, Generation, TokenEvent};
use crate::model::Model;
use crate::worker::spawn_worker;

/// Where a batched generation's tokens and outcome go (a session's shared state).
pub(crate) trait Member: Send + Sync {
    /// Queue a streamed token's text and id.
    fn push_token(&self, event: &TokenEvent<'_>);
    /// Store the generation's outcome.
    fn finish(&self, outcome: std::result::Result<Generation, Arc<Error>>);
    /// Store a session turn's outcome with the sequence and cache it leaves (`None` when the
    /// turn failed: the session keeps its tokens and runs them all again next time).
    fn finish_turn(
        &self,
        outcome: std::result::Result<Generation, Arc<Error>>,
        state: Option<TurnState>,
    ) {
        drop(state);
        self.finish(outcome);
    }
}

/// A session's sequence going into a batch (and coming back out): its tokens, and the cache of
/// their first `cached` positions.
pub(crate) struct TurnState {
    pub tokens: Vec<u32>,
    pub cache: crate::kv::KvCache,
    pub cached: usize,
    /// Positions the model ran for this turn (set when it comes back out).
    pub ran: usize,
}

/// A generation handed to the batcher; its session is already marked running with `cancel` as
/// its token.
pub(crate) struct BatchJob {
    pub prompt: String,
    /// A session's turn: generate after this sequence (`prompt` is then unused).
    pub turn: Option<TurnState>,
    pub config: GenerationConfig,
    /// The session's plugin samplers, instantiated for this generation's row by the worker.
    pub samplers: Vec<crate::session::SessionSampler>,
    pub cancel: CancelToken,
    pub member: Arc<dyn Member>,
}

/// What a batcher's worker did so far ([`Batcher::stats`]).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct BatcherStats {
    /// Steps of the batch, a joining prompt's own pass included.
    pub forward_passes: u64,
    /// Sum over forward passes of the rows they advanced.
    pub rows_stepped: u64,
    /// The most rows one pass advanced.
    pub max_rows: usize,
    /// Tokens generated, all sessions.
    pub tokens: u64,
    /// Generations started.
    pub generations: u64,
}

impl BatcherStats {
    /// Rows advanced per forward pass on average (0 before the first pass).
    pub fn mean_rows_per_pass(&self) -> f64 {
        if self.forward_passes == 0 {
            0.0
        } else {
            self.rows_stepped as f64 / self.forward_passes as f64
        }
    }

    /// The statistics as a JSON object: `forward_passes`, `tokens`, `generations`, `max_rows`,
    /// `mean_rows_per_pass`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "forward_passes": self.forward_passes,
            "tokens": self.tokens,
            "generations": self.generations,
            "max_rows": self.max_rows,
            "mean_rows_per_pass": self.mean_rows_per_pass(),
        })
    }
}

/// A shared stepping engine over one model: the sessions made from it
/// ([`crate::Session::new_batched`]) generate together, one forward pass per step for all of them.
///
/// Cloning is cheap and gives another handle to the same batcher; its worker stops when the last
/// handle and the last of its sessions are gone (ending any generation still in flight as
/// failed). Batched sessions run greedy or sampled generations with any processor, stop string,
/// `max_time` and `logprobs`, each generation with its own (a row out of time stops with
/// [`crate::StopReason::MaxTime`] while its batch mates go on) and with the session's plugin
/// samplers (a plugin call that never returns stalls the whole batch, which a session of its own
/// can detach); beam search is refused at [`crate::Session::start`]. Each sequence's tokens are
/// those it would get alone, bit for bit (the rows are padded and masked, never mixed, and each
/// row's padding is a multiple of [`crate::ROW_ALIGNMENT`], which may cost a joining generation
/// up to 7 decode steps alone before it steps with the others).
#[derive(Clone)]
pub struct Batcher(Arc<Engine>);

/// The worker and what it shares with the sessions; dropped with the last [`Batcher`] handle.
struct Engine {
    model: Arc<Model>,
    inner: Arc<Inner>,
    worker: Option<JoinHandle<()>>,
}

struct Inner {
    queue: Mutex<Queue>,
    /// Signalled when a generation is queued or the batcher is being dropped.
    wake: Condvar,
    stats: Mutex<BatcherStats>,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<BatchJob>,
    shutdown: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change under these locks is a whole-field store or a push: consistent after a panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Batcher {
    /// A batcher over `model`. It starts one worker thread, idle until a batched session starts a
    /// generation: make batchers while loading, not in a frame.
    pub fn new(model: Arc<Model>) -> Result<Batcher> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            stats: Mutex::new(BatcherStats::default()),
        });
        let worker = {
            let (model, inner) = (model.clone(), inner.clone());
            spawn_worker("batcher", move || worker::batcher_main(model, inner))?
        };
        Ok(Batcher(Arc::new(Engine {
            model,
            inner,
            worker: Some(worker),
        })))
    }

    /// The model the batcher's sessions generate with.
    pub fn model(&self) -> &Arc<Model> {
        &self.0.model
    }

    /// What the batcher has done so far. Never waits for a forward pass.
    pub fn stats(&self) -> BatcherStats {
        *lock(&self.0.inner.stats)
    }

    /// Queue a generation.
    pub(crate) fn submit(&self, job: BatchJob) {
        lock(&self.0.inner.queue).pending.push_back(job);
        self.0.inner.wake.notify_one();
    }
}

impl Drop for Engine {
    /// The last handle is gone: stop the worker (it ends any generation still in flight) and wait
    /// for it.
    fn drop(&mut self) {
        lock(&self.inner.queue).shutdown = true;
        self.inner.wake.notify_all();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// What a batched generation cannot do, checked when it starts: beam search keeps its own beams.
/// Plugin samplers join with their row (its chain sees its first token: [`Generator::join_with`]).
pub(crate) fn check_batchable(config: &GenerationConfig) -> Result<()> {
    let refuse = |field: &'static str, what: &str| {
        Err(Error::InvalidOption {
            field,
            message: format!(
                "a batched session cannot run {what}: use a session of its own for this \
                 generation"
            ),
        })
    };
    if config.num_beams > 1 {
        return refuse("num_beams", "beam search (num_beams > 1)");
    }
    Ok(())
}
