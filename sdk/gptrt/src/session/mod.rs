//! Sessions: one sequence in flight with its own KV cache, run on a worker thread that the host
//! polls without ever waiting for a forward pass (or synchronously, on the caller's thread).
//!
//! A [`Session`] made with [`Session::new`] owns one worker thread, started with the session and
//! idle until [`Session::start`] hands it a job, so starting a generation costs no thread creation
//! and no tokenization on the caller's thread. The worker pushes each token into the session's
//! queue under a mutex held only for that push; [`Session::poll`] and [`Session::poll_tokens`]
//! take the queue with `try_lock`, so a frame never waits for a forward pass. A session made with
//! [`Session::new_batched`] hands its generations to a [`crate::Batcher`] instead, which steps
//! every running generation of its sessions in one forward pass.
//!
//! ```no_run
//! use std::sync::Arc;
//! use gptrt::{GenerationConfig, Model, Session, SessionState};
//!
//! # fn main() -> gptrt::Result<()> {
//! let model = Arc::new(Model::load("models/fixtures/tiny-random-gpt2/single")?);
//! let session = Session::new(model.clone())?;
//! let config = GenerationConfig { max_new_tokens: Some(16), ..model.generation_config().clone() };
//! session.start("Once upon a time", &config)?;
//! let mut text = String::new();
//! while session.poll(&mut text) == SessionState::Running {
//!     // ... draw a frame ...
//! }
//! println!("{text} ({})", session.result()?.stop_reason);
//! # Ok(())
//! # }
//! ```

mod context;
mod saved;
mod shared;
mod turns;
mod worker;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::batch::{BatchJob, Batcher};
use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::generate::{Generation, Generator, TokenEvent};
use crate::model::Model;
use crate::plugin::{PluginCallWatch, SamplerSpec, SharedPluginHost};
use crate::worker::spawn_worker;

pub use saved::SavedKv;
use shared::{char_prefix, poll_state, FinishGuard, Shared};

/// Where a session's generation is ([`Session::state`], and the state polling reports).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// No generation has been started.
    Idle = 0,
    /// A generation is running (or, from polling: its output is not all taken yet).
    Running = 1,
    /// The generation ended (any stop reason, cancellation included); the result is readable.
    Finished = 2,
    /// The generation failed; the result functions return its error.
    Failed = 3,
}

/// A plugin sampler a session puts in its chain at every generation, with the host it comes from.
#[derive(Clone)]
pub(crate) struct SessionSampler {
    pub host: SharedPluginHost,
    pub spec: SamplerSpec,
}

/// How long dropping a session waits for a plugin call in progress to return before it detaches
/// the worker. Ordinary calls take microseconds; one this long may never return.
const PLUGIN_CALL_GRACE: Duration = Duration::from_millis(500);

/// One sequence in flight over a shared model: its tokens, KV cache and stop state, and the result
/// of its last generation.
///
/// A session runs one generation at a time: starting another while one runs is [`Error::Busy`].
/// A generation from [`Session::start`] starts from its prompt with a fresh KV cache; a turn
/// ([`Session::start_turn`], [`Session::generate_turn`]) continues the session's own sequence,
/// whose tokens and cache it keeps across turns (append, rewind, fork, save and restore it: see
/// `turns.rs` and `saved.rs`). Sessions are cheap; make one per
/// conversation, NPC or request, all over one model. Every method takes `&self`: share a session
/// between threads in an `Arc`.
pub struct Session {
    model: Arc<Model>,
    shared: Arc<Shared>,
    /// The session's own worker; `None` for a batched session, whose generations run on its
    /// batcher's.
    worker: Option<JoinHandle<()>>,
    /// Whether the worker is inside a plugin's code.
    calls: PluginCallWatch,
    batcher: Option<Batcher>,
    /// Plugin samplers put in the chain of every generation.
    samplers: Mutex<Vec<SessionSampler>>,
}

impl Session {
    /// A session over `model` with its own worker thread (idle until [`Session::start`]): make
    /// sessions while loading, not in a frame.
    pub fn new(model: Arc<Model>) -> Result<Session> {
        let shared = Shared::new();
        let calls = PluginCallWatch::new();
        let worker = {
            let (model, shared, calls) = (model.clone(), shared.clone(), calls.clone());
            spawn_worker("session", move || worker::worker_main(model, shared, calls))?
        };
        Ok(Session {
            model,
            shared,
            worker: Some(worker),
            calls,
            batcher: None,
            samplers: Mutex::new(Vec::new()),
        })
    }

    /// A session whose generations run in `batcher`'s batch: started with [`Session::start`],
    /// they step together with every other running generation of the batcher's sessions, one
    /// forward pass for all (see [`Batcher`] for what they cannot do). Polling, cancelling,
    /// waiting and results work as for [`Session::new`]; [`Session::generate`] runs alone on the
    /// calling thread. The session keeps the batcher and its model alive; it starts no thread.
    pub fn new_batched(batcher: &Batcher) -> Session {
        Session {
            model: batcher.model().clone(),
            shared: Shared::new(),
            worker: None,
            calls: PluginCallWatch::new(),
            batcher: Some(batcher.clone()),
            samplers: Mutex::new(Vec::new()),
        }
    }

    /// The model this session generates with.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Whether the session's generations run in a [`Batcher`].
    pub fn is_batched(&self) -> bool {
        self.batcher.is_some()
    }

    fn samplers(&self) -> Vec<SessionSampler> {
        self.samplers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn change_samplers(&self, change: impl FnOnce(&mut Vec<SessionSampler>)) -> Result<()> {
        if self.shared.phase() == SessionState::Running {
            return Err(Error::Busy);
        }
        change(
            &mut self
                .samplers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        Ok(())
    }

    /// Put sampler plugin `spec` from `host` in the chain of every later generation, after the
    /// samplers added before it and just before the selector. One instance is made now to check
    /// it, so a bad id or configuration fails here. [`Error::Busy`] while a generation runs.
    pub fn add_sampler(&self, host: SharedPluginHost, spec: SamplerSpec) -> Result<()> {
        drop(spec.instantiate(
            &host.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
            &self.model,
        )?);
        self.change_samplers(|list| list.push(SessionSampler { host, spec }))
    }

    /// Remove every plugin sampler from the session's chain. [`Error::Busy`] while a generation
    /// runs.
    pub fn clear_samplers(&self) -> Result<()> {
        self.change_samplers(Vec::clear)
    }

    /// The configuration a generation runs with, checked for what a session cannot do.
    fn check_config(&self, config: &GenerationConfig) -> Result<()> {
        check_one_sequence(config)?;
        if self.batcher.is_some() {
            crate::batch::check_batchable(config)?;
        }
        Ok(())
    }

    /// Start generating a continuation of `prompt` on the worker (or in the batcher) and return at
    /// once. Take what is ready with [`Session::poll`] (text) or [`Session::poll_tokens`] (ids);
    /// neither ever waits. When they report [`SessionState::Finished`], read the result.
    ///
    /// This only checks the options (a bad one is an error here) and hands the prompt over: it
    /// costs microseconds whatever the prompt's length. The worker tokenizes the prompt, so a
    /// prompt that does not fit the context window ends the generation as
    /// [`SessionState::Failed`]. [`Error::Busy`] when a generation is running.
    pub fn start(&self, prompt: &str, config: &GenerationConfig) -> Result<()> {
        if self.shared.phase() == SessionState::Running {
            return Err(Error::Busy);
        }
        let samplers = self.samplers();
        self.check_config(config)?;
        // Check the options (and the token ids they name) here; the prompt is tokenized by the
        // worker, so a long prompt costs the caller nothing.
        if config.num_beams > 1 {
            config.validate()?;
        } else {
            drop(Generator::new(&self.model, vec![Vec::new()], config)?);
        }
        match &self.batcher {
            Some(batcher) => {
                let cancel = self.shared.begin(None)?;
                batcher.submit(BatchJob {
                    prompt: prompt.to_string(),
                    turn: None,
                    config: config.clone(),
                    samplers,
                    cancel,
                    member: self.shared.clone(),
                });
            }
            None => {
                self.shared.begin(Some((
                    shared::JobInput::Prompt(prompt.to_string()),
                    config.clone(),
                    samplers,
                )))?;
            }
        }
        Ok(())
    }

    /// Generate a continuation of `prompt` on the calling thread, calling `on_token` for each
    /// token (return `false` to stop: [`crate::StopReason::Callback`]). Returns when the generation
    /// stops; its result is then readable as after [`Session::start`]. A failure is returned and
    /// also kept as the session's result. [`Error::Busy`] when a generation is running.
    pub fn generate(
        &self,
        prompt: &str,
        config: &GenerationConfig,
        on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<()> {
        check_one_sequence(config)?;
        let shared = &*self.shared;
        let cancel = shared.begin(None)?;
        let samplers = self.samplers();
        let mut guard = FinishGuard {
            shared,
            armed: true,
        };
        let outcome = self
            .model
            .tokenizer()
            .encode(prompt)
            .and_then(|ids| worker::run(&self.model, ids, config, &samplers, cancel, on_token));
        guard.armed = false;
        match outcome {
            Ok((generation, _)) => {
                shared.finish_with(Ok(generation), false);
                Ok(())
            }
            Err(error) => {
                let error = Arc::new(error);
                shared.finish_with(Err(error.clone()), false);
                Err(Error::GenerationFailed(error))
            }
        }
    }

    /// Append the text generated since the last poll to `out`, without waiting for the worker,
    /// whatever it is doing. Returns [`SessionState::Running`] while the generation runs or text
    /// is still queued; [`SessionState::Finished`] (or `Failed`) once it has ended and this call
    /// took the last of its text; [`SessionState::Idle`] if nothing was started.
    ///
    /// Meant for one consumer: two threads polling the same session split the text between them.
    pub fn poll(&self, out: &mut String) -> SessionState {
        self.poll_with(usize::MAX, |text| out.push_str(text))
    }

    /// [`Session::poll`] taking at most `max_bytes` of text (whole UTF-8 characters only, so 4
    /// or more always makes progress) and handing it to `take` (not called when nothing could be
    /// taken this instant); the rest stays queued for the next call.
    pub fn poll_with(&self, max_bytes: usize, take: impl FnOnce(&str)) -> SessionState {
        // The worker pushing a token this very moment: it will be there next frame.
        let Some(mut stream) = self.shared.try_lock() else {
            return poll_state(self.shared.phase(), false);
        };
        // Read under the lock: the worker stores the outcome under it, after the last text.
        let phase = self.shared.phase();
        let stream = &mut *stream;
        let ready = char_prefix(&stream.text[stream.text_read..], max_bytes);
        let len = ready.len();
        take(ready);
        stream.text_read += len;
        if stream.text_read == stream.text.len() {
            // Keep the allocation for the next tokens.
            stream.text.clear();
            stream.text_read = 0;
        }
        poll_state(phase, stream.text_read == stream.text.len())
    }

    /// Append the token ids generated since the last poll of ids to `out`, without waiting (as
    /// [`Session::poll`], on a separate queue: use either or both).
    pub fn poll_tokens(&self, out: &mut Vec<u32>) -> SessionState {
        self.poll_tokens_with(usize::MAX, |ids| out.extend_from_slice(ids))
    }

    /// [`Session::poll_tokens`] taking at most `max` ids and handing them to `take`.
    pub fn poll_tokens_with(&self, max: usize, take: impl FnOnce(&[u32])) -> SessionState {
        let Some(mut stream) = self.shared.try_lock() else {
            return poll_state(self.shared.phase(), false);
        };
        let phase = self.shared.phase();
        let stream = &mut *stream;
        let ready = &stream.ids[stream.ids_read..];
        let count = ready.len().min(max);
        take(&ready[..count]);
        stream.ids_read += count;
        if stream.ids_read == stream.ids.len() {
            stream.ids.clear();
            stream.ids_read = 0;
        }
        poll_state(phase, stream.ids_read == stream.ids.len())
    }

    /// The generation's state, ignoring what is still queued for polling. Never waits.
    pub fn state(&self) -> SessionState {
        self.shared.phase()
    }

    /// Ask the running generation to stop: it produces at most one more token (the one being
    /// computed) and ends with [`crate::StopReason::Cancelled`]. Does nothing when no generation runs.
    /// Any thread, any time; never waits for the generation.
    pub fn cancel(&self) {
        self.shared.lock().cancel.cancel();
    }

    /// Block until the generation ends (at once when none is running): `Ok` when it finished (or
    /// none ever ran), else [`Error::GenerationFailed`]. Blocks the calling thread: not for frame
    /// loops.
    pub fn wait(&self) -> Result<()> {
        let shared = &*self.shared;
        let mut stream = shared.lock();
        while shared.phase() == SessionState::Running {
            stream = shared
                .finished
                .wait(stream)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        match &stream.outcome {
            Some(Err(error)) => Err(Error::GenerationFailed(error.clone())),
            _ => Ok(()),
        }
    }

    /// Run `read` on the last generation's result: [`Error::Busy`] while one runs,
    /// [`Error::InvalidState`] before the first, [`Error::GenerationFailed`] if it failed.
    pub fn with_result<R>(&self, read: impl FnOnce(&Generation) -> R) -> Result<R> {
        let stream = self.shared.lock();
        match (self.shared.phase(), &stream.outcome) {
            (SessionState::Running, _) => Err(Error::Busy),
            (_, Some(Ok(generation))) => Ok(read(generation)),
            (_, Some(Err(error))) => Err(Error::GenerationFailed(error.clone())),
            (_, None) => Err(Error::InvalidState {
                message: "no generation has run on this session yet".to_string(),
            }),
        }
    }

    /// A copy of the last generation's result (errors as [`Session::with_result`]).
    pub fn result(&self) -> Result<Generation> {
        self.with_result(Generation::clone)
    }
}

/// A session generates one sequence.
fn check_one_sequence(config: &GenerationConfig) -> Result<()> {
    if config.num_return_sequences > 1 {
        return Err(Error::InvalidOption {
            field: "num_return_sequences",
            message: format!(
                "a session generates one sequence, {} were asked for (use one session per \
                 sequence)",
                config.num_return_sequences
            ),
        });
    }
    Ok(())
}

impl Drop for Session {
    /// Dropping a session cancels its generation and waits for the worker to see it (at most the
    /// forward pass in progress) and exit, unless the worker is stuck in a plugin call: a worker
    /// that stays inside one plugin call for half a second of this wait is detached instead
    /// (nothing can preempt a plugin's native code). The worker thread, its plugin instances and
    /// its reference to the model then stay alive until the plugin returns; then it sees the
    /// cancel, frees them and exits.
    fn drop(&mut self) {
        let mut stream = self.shared.lock();
        stream.shutdown = true;
        stream.cancel.cancel();
        self.shared.wake.notify_all();
        let Some(worker) = self.worker.take() else {
            return;
        };
        let mut in_call_since: Option<Instant> = None;
        while !stream.worker_exited {
            if self.calls.in_call() {
                let since = *in_call_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= PLUGIN_CALL_GRACE {
                    // Detached: the worker owns what it uses (model, shared state, plugin
                    // instances) and frees it when the plugin returns and it exits.
                    return;
                }
            } else {
                in_call_since = None;
            }
            // The worker signals its exit; the timeout only lets this loop see a plugin call.
            stream = self
                .shared
                .finished
                .wait_timeout(stream, Duration::from_millis(10))
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        drop(stream);
        // The worker catches its own panics; a join error cannot carry anything new.
        let _ = worker.join();
    }
}
