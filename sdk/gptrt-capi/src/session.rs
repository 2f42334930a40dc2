//! `gptrt_session_t`: one sequence in flight with its own KV cache, driven synchronously with a
//! token callback or on a worker thread that the host polls without ever blocking.
//!
//! Each session owns one worker thread, started with the session and idle until
//! `gptrt_session_start` hands it a job, so starting a generation costs no thread creation and no
//! tokenization on the caller's thread. The worker pushes each token into the session's queue under
//! a mutex held only for that push; the poll functions take the queue with `try_lock`, so a frame
//! never waits for a forward pass.

use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gptrt::plugin::PluginCallWatch;
use gptrt::{CancelToken, Generation, GenerationConfig, Generator, Model, StopReason, TokenEvent};

use crate::batcher::{check_batchable, gptrt_batcher_t, Batcher};
use crate::error::{
    boundary, gptrt_status_t, panic_message, Failure, GPTRT_ERROR_BUSY, GPTRT_ERROR_INTERNAL,
    GPTRT_ERROR_INVALID_OPTION, GPTRT_ERROR_INVALID_STATE, GPTRT_ERROR_PANIC,
};
use crate::ffi::{char_prefix, check_out, read_str, write_array, write_out, write_text};
use crate::handles;
use crate::options::gptrt_generation_options_t;
use crate::plugin::SamplerSpec;

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

/// The generation state a session's worker and the host share.
#[derive(Default)]
struct Stream {
    /// Text generated and not yet taken by `gptrt_session_poll`, from `text_read` on.
    text: String,
    text_read: usize,
    /// Ids generated and not yet taken by `gptrt_session_poll_tokens`, from `ids_read` on.
    ids: Vec<u32>,
    ids_read: usize,
    /// The finished generation (or why it failed).
    outcome: Option<Result<Generation, Failure>>,
    /// Cancels the generation in flight.
    cancel: CancelToken,
    /// The generation the worker is to run next.
    job: Option<Job>,
    /// The session is being freed: the worker exits.
    shutdown: bool,
    /// The worker has returned (it signals `finished` too).
    worker_exited: bool,
}

/// A generation handed to the session's worker (or its batcher's).
pub(crate) struct Job {
    pub(crate) prompt: String,
    pub(crate) config: GenerationConfig,
    pub(crate) samplers: Vec<SamplerSpec>,
    pub(crate) cancel: CancelToken,
}

/// The state a session shares with the thread that runs its generations.
pub(crate) struct Shared {
    stream: Mutex<Stream>,
    /// `gptrt_session_state_t` as an integer, changed only while `stream` is locked; readable
    /// without the lock.
    phase: AtomicI32,
    /// Signalled when a generation ends (for `gptrt_session_wait`).
    finished: Condvar,
    /// Signalled when the worker has a job or must exit.
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Stream> {
        // Every change to the stream is a push or a whole-field store: consistent after a panic.
        self.stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn phase(&self) -> gptrt_session_state_t {
        match self.phase.load(Ordering::Acquire) {
            0 => GPTRT_SESSION_IDLE,
            1 => GPTRT_SESSION_RUNNING,
            2 => GPTRT_SESSION_FINISHED,
            _ => GPTRT_SESSION_FAILED,
        }
    }

    /// Mark a generation as running (`GPTRT_ERROR_BUSY` when one is) and return its cancel token.
    /// With `job`, hand it to the worker in the same step.
    fn begin(
        &self,
        job: Option<(String, GenerationConfig, Vec<SamplerSpec>)>,
    ) -> Result<CancelToken, Failure> {
        let mut stream = self.lock();
        if self.phase() == GPTRT_SESSION_RUNNING {
            return Err(busy());
        }
        stream.text.clear();
        stream.text_read = 0;
        stream.ids.clear();
        stream.ids_read = 0;
        stream.outcome = None;
        stream.cancel = CancelToken::new();
        let cancel = stream.cancel.clone();
        if let Some((prompt, config, samplers)) = job {
            stream.job = Some(Job {
                prompt,
                config,
                samplers,
                cancel: cancel.clone(),
            });
            self.wake.notify_one();
        }
        self.phase
            .store(GPTRT_SESSION_RUNNING as i32, Ordering::Release);
        Ok(cancel)
    }

    /// Queue a streamed token's text and id for the poll functions.
    pub(crate) fn push_token(&self, event: &TokenEvent<'_>) {
        let mut stream = self.lock();
        stream.text.push_str(event.text);
        stream.ids.push(event.token_id);
    }

    /// Store a generation's outcome. `queue`: also queue its text and ids for the poll functions
    /// (when they were not streamed token by token).
    pub(crate) fn finish(&self, outcome: Result<Generation, Failure>, queue: bool) {
        let mut stream = self.lock();
        let phase = match &outcome {
            Ok(generation) => {
                if queue {
                    stream.text.push_str(&generation.text);
                    stream.ids.extend_from_slice(&generation.token_ids);
                }
                GPTRT_SESSION_FINISHED
            }
            Err(_) => GPTRT_SESSION_FAILED,
        };
        stream.outcome = Some(outcome);
        self.phase.store(phase as i32, Ordering::Release);
        drop(stream);
        self.finished.notify_all();
    }
}

/// Marks the generation failed if the code running it unwinds before storing an outcome, so a
/// session never stays "running" forever.
struct FinishGuard<'a> {
    shared: &'a Shared,
    armed: bool,
}

impl Drop for FinishGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.finish(
                Err(Failure::new(
                    GPTRT_ERROR_PANIC,
                    "the generation panicked (a gptrt bug; please report it)",
                )),
                false,
            );
        }
    }
}

fn busy() -> Failure {
    Failure::new(
        GPTRT_ERROR_BUSY,
        "a generation is running on this session: poll it to the end, wait for it, or cancel it",
    )
}

/// The object behind a `gptrt_session_t`.
pub(crate) struct Session {
    model: Arc<Model>,
    shared: Arc<Shared>,
    /// The session's own worker; `None` for a batched session, whose generations run on its
    /// batcher's.
    worker: Option<JoinHandle<()>>,
    /// Whether the worker is inside a plugin's code.
    calls: PluginCallWatch,
    batcher: Option<Arc<Batcher>>,
    /// Plugin samplers put in the chain of every generation.
    samplers: Mutex<Vec<SamplerSpec>>,
}

impl Session {
    pub(crate) fn model(&self) -> &Arc<Model> {
        &self.model
    }

    fn samplers(&self) -> Vec<SamplerSpec> {
        self.samplers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn change_samplers(&self, change: impl FnOnce(&mut Vec<SamplerSpec>)) -> Result<(), Failure> {
        if self.shared.phase() == GPTRT_SESSION_RUNNING {
            return Err(busy());
        }
        change(
            &mut self
                .samplers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        Ok(())
    }

    pub(crate) fn add_sampler(&self, spec: SamplerSpec) -> Result<(), Failure> {
        self.change_samplers(|list| list.push(spec))
    }

    pub(crate) fn clear_samplers(&self) -> Result<(), Failure> {
        self.change_samplers(Vec::clear)
    }
}

/// How long `gptrt_session_free` waits for a plugin call in progress to return before it
/// detaches the worker. Ordinary calls take microseconds; one this long may never return.
const PLUGIN_CALL_GRACE: Duration = Duration::from_millis(500);

impl Drop for Session {
    /// Freeing a session cancels its generation and waits for the worker to see it (at most the
    /// forward pass in progress) and exit, unless the worker is stuck in a plugin call: then it
    /// is detached (see `gptrt_session_free`).
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

/// Tells a session's owner that its worker has returned, however it returns.
struct ExitSignal(Arc<Shared>);

impl Drop for ExitSignal {
    fn drop(&mut self) {
        self.0.lock().worker_exited = true;
        self.0.finished.notify_all();
    }
}

/// Make the calling (worker) thread yield to the host's threads: on Linux, `SCHED_BATCH`, the
/// normal time-sharing policy minus wake-up preemption, so a worker that wakes up (a new job, the
/// model free again) never interrupts the host's frame thread in the middle of its frame; it still
/// gets its fair share of the CPU.
pub(crate) fn yield_to_host_threads() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain system call on the calling thread (pid 0) with a valid parameter struct;
        // failure leaves the policy unchanged, which is harmless.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    }
}

/// Start a worker thread named `gptrt-{owner}` (a session's or a batcher's).
pub(crate) fn spawn_worker(
    owner: &str,
    body: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, Failure> {
    std::thread::Builder::new()
        .name(format!("gptrt-{owner}"))
        .spawn(body)
        .map_err(|e| {
            Failure::new(
                GPTRT_ERROR_INTERNAL,
                format!("could not start the {owner}'s worker thread: {e}"),
            )
        })
}

/// The session's worker: waits for a job, runs it, stores the outcome; exits on shutdown.
fn worker_main(model: Arc<Model>, shared: Arc<Shared>, calls: PluginCallWatch) {
    let _exit = ExitSignal(shared.clone());
    calls.watch_this_thread();
    yield_to_host_threads();
    loop {
        let job = {
            let mut stream = shared.lock();
            loop {
                if stream.shutdown {
                    return;
                }
                if let Some(job) = stream.job.take() {
                    break job;
                }
                stream = shared
                    .wake
                    .wait(stream)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        let mut guard = FinishGuard {
            shared: &shared,
            armed: true,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut on_token = |event: &TokenEvent<'_>| -> bool {
                shared.push_token(event);
                true
            };
            let ids = model.tokenizer().encode(&job.prompt)?;
            run(
                &model,
                ids,
                &job.config,
                &job.samplers,
                job.cancel,
                &mut on_token,
            )
        }))
        .unwrap_or_else(|payload| {
            Err(Failure::new(
                GPTRT_ERROR_PANIC,
                format!(
                    "the generation panicked (a gptrt bug; please report it): {}",
                    panic_message(payload.as_ref())
                ),
            ))
        });
        guard.armed = false;
        match outcome {
            Ok((generation, streamed)) => shared.finish(Ok(generation), !streamed),
            Err(failure) => shared.finish(Err(failure), false),
        }
    }
}

/// The config a generation runs with, checked for what a session cannot do.
fn session_config(
    model: &Model,
    options: *const gptrt_generation_options_t,
) -> Result<GenerationConfig, Failure> {
    let config = if options.is_null() {
        model.generation_config().clone()
    } else {
        handles::get(options, "options")?.lock().clone()
    };
    if config.num_return_sequences > 1 {
        return Err(Failure::new(
            GPTRT_ERROR_INVALID_OPTION,
            format!(
                "invalid generation option `num_return_sequences`: a session generates one \
                 sequence, {} were asked for (use one session per sequence)",
                config.num_return_sequences
            ),
        ));
    }
    Ok(config)
}

/// Run one generation. Returns the result and whether its tokens went through `on_token` (beam
/// search does not stream).
fn run(
    model: &Arc<Model>,
    ids: Vec<u32>,
    config: &GenerationConfig,
    samplers: &[SamplerSpec],
    cancel: CancelToken,
    on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool,
) -> Result<(Generation, bool), Failure> {
    if config.num_beams > 1 && !samplers.is_empty() {
        return Err(Failure::new(
            GPTRT_ERROR_INVALID_OPTION,
            "plugin samplers cannot run in beam search (num_beams > 1)",
        ));
    }
    if config.num_beams > 1 {
        let mut results = model.generate_ids(vec![ids], config, &mut |_| true)?;
        return Ok((take_first(&mut results)?, false));
    }
    let mut generator = Generator::new(model, vec![ids], config)?;
    for row in generator.row_ids() {
        for spec in samplers {
            generator.add_sampler(row, Box::new(spec.instantiate(model)?))?;
        }
    }
    generator.set_cancel_token(cancel);
    generator.run(on_token)?;
    let mut results = generator.into_generations();
    Ok((take_first(&mut results)?, true))
}

fn take_first(results: &mut Vec<Generation>) -> Result<Generation, Failure> {
    if results.is_empty() {
        return Err(Failure::new(
            GPTRT_ERROR_INTERNAL,
            "the generation returned no sequence",
        ));
    }
    Ok(results.swap_remove(0))
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
        let shared = new_shared();
        let calls = PluginCallWatch::new();
        let worker = {
            let (model, shared, calls) = (model.clone(), shared.clone(), calls.clone());
            spawn_worker("session", move || worker_main(model, shared, calls))?
        };
        let session = Session {
            model,
            shared,
            worker: Some(worker),
            calls,
            batcher: None,
            samplers: Mutex::new(Vec::new()),
        };
        let handle = handles::insert::<gptrt_session_t>(Arc::new(session));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_session, handle) };
        Ok(())
    })
}

fn new_shared() -> Arc<Shared> {
    Arc::new(Shared {
        stream: Mutex::new(Stream::default()),
        phase: AtomicI32::new(GPTRT_SESSION_IDLE as i32),
        finished: Condvar::new(),
        wake: Condvar::new(),
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
        let session = Session {
            model: batcher.model().clone(),
            shared: new_shared(),
            worker: None,
            calls: PluginCallWatch::new(),
            batcher: Some(batcher),
            samplers: Mutex::new(Vec::new()),
        };
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
        let config = session_config(&session.model, options)?;
        let shared = &session.shared;
        let cancel = shared.begin(None)?;
        let samplers = session.samplers();
        let mut guard = FinishGuard {
            shared,
            armed: true,
        };
        let mut text = Vec::new();
        let mut index = 0usize;
        let mut on_token = |event: &TokenEvent<'_>| -> bool {
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
            // SAFETY: the host's callback with its own user_data, per this function's contract;
            // the event and its text outlive the call.
            unsafe { callback(user_data, &c_event) }
        };
        let outcome = session
            .model
            .tokenizer()
            .encode(prompt)
            .map_err(Failure::from)
            .and_then(|ids| {
                run(
                    &session.model,
                    ids,
                    &config,
                    &samplers,
                    cancel,
                    &mut on_token,
                )
            });
        guard.armed = false;
        let status = outcome.as_ref().map(|_| ()).map_err(Failure::clone);
        shared.finish(outcome.map(|(generation, _)| generation), false);
        status
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
        if session.shared.phase() == GPTRT_SESSION_RUNNING {
            return Err(busy());
        }
        let config = session_config(&session.model, options)?;
        let samplers = session.samplers();
        if session.batcher.is_some() {
            check_batchable(&config, !samplers.is_empty())?;
        }
        // Check the options (and the token ids they name) here; the prompt is tokenized by the
        // worker, so a long prompt costs the caller nothing.
        if config.num_beams > 1 {
            config.validate()?;
        } else {
            drop(Generator::new(&session.model, vec![Vec::new()], &config)?);
        }
        match &session.batcher {
            Some(batcher) => {
                let cancel = session.shared.begin(None)?;
                let job = Job {
                    prompt: prompt.to_string(),
                    config,
                    samplers,
                    cancel,
                };
                batcher.submit(session.shared.clone(), job);
            }
            None => {
                session
                    .shared
                    .begin(Some((prompt.to_string(), config, samplers)))?;
            }
        }
        Ok(())
    })
}

/// What the poll functions report: RUNNING until the generation has ended and its last output was
/// taken from this queue.
fn poll_state(phase: gptrt_session_state_t, drained: bool) -> gptrt_session_state_t {
    match phase {
        GPTRT_SESSION_FINISHED | GPTRT_SESSION_FAILED if !drained => GPTRT_SESSION_RUNNING,
        other => other,
    }
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
        let shared = &session.shared;
        let (len, state) = match shared.stream.try_lock() {
            Ok(mut stream) => take_text(&mut stream, shared.phase(), buffer, capacity),
            Err(TryLockError::Poisoned(poisoned)) => {
                take_text(&mut poisoned.into_inner(), shared.phase(), buffer, capacity)
            }
            // The worker is pushing a token this very moment: it will be there next frame.
            Err(TryLockError::WouldBlock) => {
                if capacity > 0 {
                    // SAFETY: `buffer` is valid for `capacity >= 1` bytes.
                    unsafe { buffer.write(0) };
                }
                (0, poll_state(shared.phase(), false))
            }
        };
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(out_len, len);
            write_out(out_state, state);
        }
        Ok(())
    })
}

fn take_text(
    stream: &mut Stream,
    phase: gptrt_session_state_t,
    buffer: *mut c_char,
    capacity: usize,
) -> (usize, gptrt_session_state_t) {
    let mut len = 0;
    if capacity > 0 {
        let ready = char_prefix(&stream.text[stream.text_read..], capacity - 1);
        len = ready.len();
        // SAFETY: `buffer` is valid for `capacity > len` bytes (checked non-NULL by the caller).
        unsafe {
            std::ptr::copy_nonoverlapping(ready.as_ptr(), buffer.cast::<u8>(), len);
            buffer.add(len).write(0);
        }
        stream.text_read += len;
        if stream.text_read == stream.text.len() {
            // Keep the allocation for the next tokens.
            stream.text.clear();
            stream.text_read = 0;
        }
    }
    let drained = stream.text_read == stream.text.len();
    (len, poll_state(phase, drained))
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
        let shared = &session.shared;
        let take = |stream: &mut Stream| {
            let ready = &stream.ids[stream.ids_read..];
            let count = ready.len().min(capacity);
            if count > 0 {
                // SAFETY: `ids` is valid for `capacity >= count` ids.
                unsafe { std::ptr::copy_nonoverlapping(ready.as_ptr(), ids, count) };
            }
            stream.ids_read += count;
            if stream.ids_read == stream.ids.len() {
                stream.ids.clear();
                stream.ids_read = 0;
            }
            let drained = stream.ids_read == stream.ids.len();
            (count, poll_state(shared.phase(), drained))
        };
        let (count, state) = match shared.stream.try_lock() {
            Ok(mut stream) => take(&mut stream),
            Err(TryLockError::Poisoned(poisoned)) => take(&mut poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => (0, poll_state(shared.phase(), false)),
        };
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(out_count, count);
            write_out(out_state, state);
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
        unsafe { write_out(out_state, session.shared.phase()) };
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
        let session = handles::get(session, "session")?;
        session.shared.lock().cancel.cancel();
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
        let session = handles::get(session, "session")?;
        let shared = &session.shared;
        let mut stream = shared.lock();
        while shared.phase() == GPTRT_SESSION_RUNNING {
            stream = shared
                .finished
                .wait(stream)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let outcome = match &stream.outcome {
            Some(Err(failure)) => Err(failure.clone()),
            _ => Ok(()),
        };
        drop(stream);
        outcome
    })
}

/// Run `read` on the finished generation, or say why there is none.
fn with_result(
    session: *const gptrt_session_t,
    read: impl FnOnce(&Generation, &Model) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let session = handles::get(session, "session")?;
    let stream = session.shared.lock();
    match (session.shared.phase(), &stream.outcome) {
        (GPTRT_SESSION_RUNNING, _) => Err(busy()),
        (_, Some(Ok(generation))) => read(generation, &session.model),
        (_, Some(Err(failure))) => Err(Failure::new(
            failure.status,
            format!("the generation failed: {}", failure.message),
        )),
        (_, None) => Err(Failure::new(
            GPTRT_ERROR_INVALID_STATE,
            "no generation has run on this session yet",
        )),
    }
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
