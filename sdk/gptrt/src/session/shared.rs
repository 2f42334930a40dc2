//! The state a session shares with the thread that runs its generations: the stream of tokens not
//! yet polled, the outcome, and the phase the host reads without a lock.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};

use crate::batch::{Member, TurnState};
use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::generate::{CancelToken, Generation, TokenEvent};

use super::context::Context;
use super::{SessionSampler, SessionState};

/// The generation state a session's worker and the host share.
#[derive(Default)]
pub(super) struct Stream {
    /// Text generated and not yet polled, from `text_read` on.
    pub text: String,
    pub text_read: usize,
    /// Ids generated and not yet polled, from `ids_read` on.
    pub ids: Vec<u32>,
    pub ids_read: usize,
    /// The finished generation (or why it failed).
    pub outcome: Option<std::result::Result<Generation, Arc<Error>>>,
    /// Cancels the generation in flight.
    pub cancel: CancelToken,
    /// The generation the worker is to run next.
    pub job: Option<Job>,
    /// The session is being dropped: the worker exits.
    pub shutdown: bool,
    /// The worker has returned (it signals `finished` too).
    pub worker_exited: bool,
}

/// What a job generates from.
pub(super) enum JobInput {
    /// A fresh sequence from this prompt ([`super::Session::start`]).
    Prompt(String),
    /// The session's own sequence, continued with its cache ([`super::Session::start_turn`]).
    Turn,
}

/// A generation handed to the session's own worker.
pub(super) struct Job {
    pub input: JobInput,
    pub config: GenerationConfig,
    pub samplers: Vec<SessionSampler>,
    pub cancel: CancelToken,
}

/// The state a session shares with the thread that runs its generations.
pub(super) struct Shared {
    stream: Mutex<Stream>,
    /// The session's sequence and cache, kept across generations. A turn holds this lock while it
    /// runs; the session's methods check the phase first, so they answer [`Error::Busy`] instead
    /// of waiting for it.
    pub context: Mutex<Context>,
    /// [`SessionState`] as an integer, changed only while `stream` is locked; readable without
    /// the lock.
    phase: AtomicI32,
    /// Signalled when a generation ends (for [`super::Session::wait`]) and when the worker exits.
    pub finished: Condvar,
    /// Signalled when the worker has a job or must exit.
    pub wake: Condvar,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            stream: Mutex::new(Stream::default()),
            context: Mutex::new(Context::new()),
            phase: AtomicI32::new(SessionState::Idle as i32),
            finished: Condvar::new(),
            wake: Condvar::new(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Stream> {
        // Every change to the stream is a push or a whole-field store: consistent after a panic.
        self.stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The session's sequence and cache. A turn that panicked left it as it was when the panic
    /// came, which may be mid-update: [`Context::check`] repairs what a reader relies on.
    pub fn lock_context(&self) -> MutexGuard<'_, Context> {
        let mut context = self
            .context
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        context.check();
        context
    }

    /// The stream if nobody holds it this instant (the worker pushing a token): never waits.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, Stream>> {
        match self.stream.try_lock() {
            Ok(stream) => Some(stream),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    pub fn phase(&self) -> SessionState {
        match self.phase.load(Ordering::Acquire) {
            0 => SessionState::Idle,
            1 => SessionState::Running,
            2 => SessionState::Finished,
            _ => SessionState::Failed,
        }
    }

    /// Mark a generation as running ([`Error::Busy`] when one is) and return its cancel token.
    /// With `job`, hand it to the worker in the same step.
    pub fn begin(
        &self,
        job: Option<(JobInput, GenerationConfig, Vec<SessionSampler>)>,
    ) -> Result<CancelToken> {
        let mut stream = self.lock();
        if self.phase() == SessionState::Running {
            return Err(Error::Busy);
        }
        stream.text.clear();
        stream.text_read = 0;
        stream.ids.clear();
        stream.ids_read = 0;
        stream.outcome = None;
        stream.cancel = CancelToken::new();
        let cancel = stream.cancel.clone();
        if let Some((input, config, samplers)) = job {
            stream.job = Some(Job {
                input,
                config,
                samplers,
                cancel: cancel.clone(),
            });
            self.wake.notify_one();
        }
        self.phase
            .store(SessionState::Running as i32, Ordering::Release);
        Ok(cancel)
    }

    /// Store a generation's outcome. `queue`: also queue its text and ids for polling (when they
    /// were not streamed token by token).
    pub fn finish_with(&self, outcome: std::result::Result<Generation, Arc<Error>>, queue: bool) {
        let mut stream = self.lock();
        let phase = match &outcome {
            Ok(generation) => {
                if queue {
                    stream.text.push_str(&generation.text);
                    stream.ids.extend_from_slice(&generation.token_ids);
                }
                SessionState::Finished
            }
            Err(_) => SessionState::Failed,
        };
        stream.outcome = Some(outcome);
        self.phase.store(phase as i32, Ordering::Release);
        drop(stream);
        self.finished.notify_all();
    }
}

impl Member for Shared {
    fn push_token(&self, event: &TokenEvent<'_>) {
        let mut stream = self.lock();
        stream.text.push_str(event.text);
        stream.ids.push(event.token_id);
    }

    fn finish(&self, outcome: std::result::Result<Generation, Arc<Error>>) {
        self.finish_with(outcome, false);
    }

    fn finish_turn(
        &self,
        outcome: std::result::Result<Generation, Arc<Error>>,
        state: Option<TurnState>,
    ) {
        {
            let mut context = self.lock_context();
            if let (Some(state), Ok(_)) = (state, &outcome) {
                context.tokens = state.tokens;
                context.cache = state.cache;
                context.cached = state.cached;
                context.tokens_run += state.ran as u64;
            }
        }
        self.finish_with(outcome, false);
    }
}

/// Marks the generation failed if the code running it unwinds before storing an outcome, so a
/// session never stays running forever.
pub(super) struct FinishGuard<'a> {
    pub shared: &'a Shared,
    pub armed: bool,
}

impl Drop for FinishGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.finish_with(
                Err(Arc::new(Error::Panic {
                    message: "the generation panicked (a gptrt bug; please report it)".to_string(),
                })),
                false,
            );
        }
    }
}

/// Tells a session's owner that its worker has returned, however it returns.
pub(super) struct ExitSignal(pub Arc<Shared>);

impl Drop for ExitSignal {
    fn drop(&mut self) {
        self.0.lock().worker_exited = true;
        self.0.finished.notify_all();
    }
}

/// What polling reports: running until the generation has ended and its last output was taken.
pub(super) fn poll_state(phase: SessionState, drained: bool) -> SessionState {
    match phase {
        SessionState::Finished | SessionState::Failed if !drained => SessionState::Running,
        other => other,
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub(super) fn char_prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
