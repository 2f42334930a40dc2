//! A session's own worker thread and the one function that runs a session's generation (on that
//! worker, or on the caller's thread for [`super::Session::generate`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::generate::{CancelToken, Generation, Generator, TokenEvent};
use crate::model::Model;
use crate::plugin::{add_samplers, PluginCallWatch};
use crate::worker::{panicked, yield_to_host_threads};

use super::shared::{ExitSignal, FinishGuard, JobInput, Shared};
use super::turns::run_turn;
use super::SessionSampler;

/// The session's worker: waits for a job, runs it, stores the outcome; exits on shutdown.
pub(super) fn worker_main(model: Arc<Model>, shared: Arc<Shared>, calls: PluginCallWatch) {
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
                crate::batch::Member::push_token(&*shared, event);
                true
            };
            match &job.input {
                JobInput::Prompt(prompt) => {
                    let ids = model.tokenizer().encode(prompt)?;
                    run(
                        &model,
                        ids,
                        &job.config,
                        &job.samplers,
                        job.cancel,
                        &mut on_token,
                    )
                }
                JobInput::Turn => run_turn(
                    &model,
                    &mut shared.lock_context(),
                    &job.config,
                    &job.samplers,
                    job.cancel,
                    &mut on_token,
                ),
            }
        }))
        .unwrap_or_else(|payload| Err(panicked("the generation", payload.as_ref())));
        guard.armed = false;
        match outcome {
            Ok((generation, streamed)) => shared.finish_with(Ok(generation), !streamed),
            Err(error) => shared.finish_with(Err(Arc::new(error)), false),
        }
    }
}

/// Run one generation. Returns the result and whether its tokens went through `on_token` (beam
/// search does not stream).
pub(super) fn run(
    model: &Arc<Model>,
    ids: Vec<u32>,
    config: &GenerationConfig,
    samplers: &[SessionSampler],
    cancel: CancelToken,
    on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool,
) -> Result<(Generation, bool)> {
    if config.num_beams > 1 && !samplers.is_empty() {
        return Err(Error::InvalidOption {
            field: "num_beams",
            message: "plugin samplers cannot run in beam search (num_beams > 1)".to_string(),
        });
    }
    if config.num_beams > 1 {
        let mut results = model.generate_ids(vec![ids], config, &mut |_| true)?;
        return Ok((take_first(&mut results)?, false));
    }
    let mut generator = Generator::new(model, vec![ids], config)?;
    add_session_samplers(model, samplers, &mut generator)?;
    generator.set_cancel_token(cancel);
    generator.run(on_token)?;
    let mut results = generator.into_generations();
    Ok((take_first(&mut results)?, true))
}

/// Put the session's plugin samplers in the generator's chain.
pub(super) fn add_session_samplers(
    model: &Arc<Model>,
    samplers: &[SessionSampler],
    generator: &mut Generator<'_>,
) -> Result<()> {
    for sampler in samplers {
        let host = sampler
            .host
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        add_samplers(&host, std::slice::from_ref(&sampler.spec), model, generator)?;
    }
    Ok(())
}

pub(super) fn take_first(results: &mut Vec<Generation>) -> Result<Generation> {
    if results.is_empty() {
        return Err(Error::Internal {
            context: "a session",
            message: "the generation returned no sequence".to_string(),
        });
    }
    Ok(results.swap_remove(0))
}
