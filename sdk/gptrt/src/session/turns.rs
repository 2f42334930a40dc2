//! Dialogue on a session: the sequence and its KV cache kept across generations. Append text or
//! tokens (only what is new runs through the model), generate a turn, rewind, fork, and hand in a
//! whole transcript (only the part after the longest common prefix runs).

use std::sync::Arc;

use crate::batch::{BatchJob, TurnState};
use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::generate::{prefill, CancelToken, Generation, Generator, TokenEvent};
use crate::kv::KvCache;
use crate::model::Model;

use super::context::Context;
use super::shared::{FinishGuard, JobInput};
use super::worker::{add_session_samplers, take_first};
use super::{Session, SessionSampler, SessionState};

impl Session {
    /// The session's sequence for a change, or [`Error::Busy`] while a generation runs.
    pub(super) fn context(&self) -> Result<std::sync::MutexGuard<'_, Context>> {
        if self.shared.phase() == SessionState::Running {
            return Err(Error::Busy);
        }
        Ok(self.shared.lock_context())
    }

    /// Append `text` (tokenized on its own) to the session's sequence and return how many tokens
    /// it added. Nothing runs through the model until the next turn or [`Session::prefill`].
    /// [`Error::Busy`] while a generation runs.
    pub fn append_text(&self, text: &str) -> Result<usize> {
        let ids = self.model.tokenizer().encode(text)?;
        self.append_tokens(&ids)?;
        Ok(ids.len())
    }

    /// Append token ids to the session's sequence (checked against the vocabulary; nothing runs
    /// yet). [`Error::Busy`] while a generation runs.
    pub fn append_tokens(&self, ids: &[u32]) -> Result<()> {
        self.model.check_ids(ids)?;
        self.context()?.tokens.extend_from_slice(ids);
        Ok(())
    }

    /// Run the tokens appended since the last pass through the model now, on the calling thread,
    /// so the next turn (or a [`Session::fork`]) starts from their cache. Returns how many tokens
    /// ran. A sequence longer than the context window is [`Error::ContextOverflow`], and the
    /// session keeps its tokens (rewind them). Layouts without a cache run nothing here.
    pub fn prefill(&self) -> Result<usize> {
        let mut context = self.context()?;
        let context = &mut *context;
        let before = context.cached;
        let mut cache = std::mem::take(&mut context.cache);
        match prefill(&self.model, &context.tokens, &mut cache, before) {
            Ok(cached) => {
                let ran = cached.saturating_sub(before);
                context.cache = cache;
                context.cached = cached;
                context.tokens_run += ran as u64;
                Ok(ran)
            }
            Err(error) => {
                // The cache was handed to the graph; what it holds now is not known.
                context.cached = 0;
                Err(error)
            }
        }
    }

    /// Cut the sequence back to its first `len` tokens (a count past its end changes nothing).
    /// The cache keeps its first `len` positions: nothing runs again. [`Error::Busy`] while a
    /// generation runs.
    pub fn rewind(&self, len: usize) -> Result<()> {
        self.context()?.rewind(len)
    }

    /// Make the sequence `ids`, a whole transcript a stateless host sends again: the session keeps
    /// the longest prefix it shares with what it holds (and that prefix's cache) and appends the
    /// rest. Returns the length of the prefix kept; only the rest will run through the model.
    pub fn set_tokens(&self, ids: &[u32]) -> Result<usize> {
        self.model.check_ids(ids)?;
        let mut context = self.context()?;
        let common = context
            .tokens
            .iter()
            .zip(ids)
            .take_while(|(a, b)| a == b)
            .count();
        context.rewind(common)?;
        context.tokens.extend_from_slice(&ids[common..]);
        Ok(common)
    }

    /// [`Session::set_tokens`] with the transcript as text (tokenized whole).
    pub fn set_text(&self, text: &str) -> Result<usize> {
        let ids = self.model.tokenizer().encode(text)?;
        self.set_tokens(&ids)
    }

    /// Empty the sequence and its cache (the random state stays).
    pub fn reset(&self) -> Result<()> {
        self.rewind(0)
    }

    /// The session's sequence: every appended and generated token. [`Error::Busy`] while a
    /// generation runs.
    pub fn tokens(&self) -> Result<Vec<u32>> {
        Ok(self.context()?.tokens.clone())
    }

    /// How many tokens the sequence holds. [`Error::Busy`] while a generation runs.
    pub fn context_len(&self) -> Result<usize> {
        Ok(self.context()?.tokens.len())
    }

    /// How many of the sequence's first tokens are in the KV cache (the rest runs at the next
    /// turn). [`Error::Busy`] while a generation runs.
    pub fn cached_len(&self) -> Result<usize> {
        Ok(self.context()?.cached)
    }

    /// Positions the model ran for this session's sequence so far: prefills, each turn's first
    /// pass and its decode steps (a layout without a cache runs the whole sequence each step).
    /// Generations from [`Session::start`] do not count. [`Error::Busy`] while a generation runs.
    pub fn tokens_run(&self) -> Result<u64> {
        Ok(self.context()?.tokens_run)
    }

    /// The settings the last turn ran with (as given: a seed drawn from the session is not in
    /// them), restored with a saved session. [`Error::Busy`] while a generation runs.
    pub fn last_turn_config(&self) -> Result<Option<GenerationConfig>> {
        Ok(self.context()?.last_config.clone())
    }

    /// Seed the random state that turns without a `seed` of their own draw from.
    pub fn reseed(&self, seed: u64) -> Result<()> {
        self.context()?.next_seed = seed;
        Ok(())
    }

    /// A new session holding a copy of this one's sequence, cache and random state, over the same
    /// model (and batcher, for a batched session): the shared prefix is copied, never run again.
    /// Plugin samplers are not copied. [`Error::Busy`] while a generation runs.
    pub fn fork(&self) -> Result<Session> {
        let copy = self.context()?.duplicate()?;
        let session = match &self.batcher {
            Some(batcher) => Session::new_batched(batcher),
            None => Session::new(self.model.clone())?,
        };
        *session.shared.lock_context() = copy;
        Ok(session)
    }

    /// Continue the session's sequence: start generating after its tokens on the worker (or in
    /// the batcher) and return at once; poll as after [`Session::start`]. Only the tokens not yet
    /// in the cache run through the model (after the first turn: what was appended since, and
    /// the last token of the previous reply). When the turn ends its tokens are part of the
    /// sequence, stop-string tokens included. A turn without a `seed` of its own draws one from
    /// the session's random state. Beam search (`num_beams` > 1) runs the whole sequence without
    /// the cache and leaves none (the next turn runs it all again). [`Error::Busy`] when a
    /// generation is running.
    pub fn start_turn(&self, config: &GenerationConfig) -> Result<()> {
        if self.shared.phase() == SessionState::Running {
            return Err(Error::Busy);
        }
        let samplers = self.samplers();
        self.check_config(config)?;
        if config.num_beams > 1 {
            config.validate()?;
        } else {
            drop(Generator::new(&self.model, vec![Vec::new()], config)?);
        }
        match &self.batcher {
            Some(batcher) => {
                let mut context = self.shared.lock_context();
                let config = turn_config(&mut context, config);
                let (cache, cached) = take_cache(&mut context)?;
                let turn = TurnState {
                    tokens: context.tokens.clone(),
                    cache,
                    cached,
                    ran: 0,
                };
                drop(context);
                let cancel = self.shared.begin(None)?;
                batcher.submit(BatchJob {
                    prompt: String::new(),
                    turn: Some(turn),
                    config,
                    samplers,
                    cancel,
                    member: self.shared.clone(),
                });
            }
            None => {
                self.shared
                    .begin(Some((JobInput::Turn, config.clone(), samplers)))?;
            }
        }
        Ok(())
    }

    /// [`Session::start_turn`] on the calling thread, calling `on_token` for each token (return
    /// `false` to stop). Returns when the turn ends; its result is then readable as after a
    /// polled one.
    pub fn generate_turn(
        &self,
        config: &GenerationConfig,
        on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<()> {
        super::check_one_sequence(config)?;
        let shared = &*self.shared;
        let mut context = self.context()?;
        let cancel = shared.begin(None)?;
        let samplers = self.samplers();
        let mut guard = FinishGuard {
            shared,
            armed: true,
        };
        let outcome = run_turn(
            &self.model,
            &mut context,
            config,
            &samplers,
            cancel,
            on_token,
        );
        drop(context);
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
}

/// The configuration of a turn: its own seed, or one drawn from the session.
pub(crate) fn turn_config(context: &mut Context, config: &GenerationConfig) -> GenerationConfig {
    context.last_config = Some(config.clone());
    let mut config = config.clone();
    if config.do_sample && config.seed.is_none() {
        config.seed = Some(context.take_seed());
    }
    config
}

/// The session's cache, made ready for a turn: it must leave at least the last token to run
/// (the logits come from it). Takes the cache out of the context.
pub(crate) fn take_cache(context: &mut Context) -> Result<(KvCache, usize)> {
    let mut cache = std::mem::take(&mut context.cache);
    let mut cached = std::mem::take(&mut context.cached);
    let len = context.tokens.len();
    if cached > 0 && cached >= len {
        cached = len.saturating_sub(1);
        cache.truncate(cached)?;
    }
    Ok((cache, cached))
}

/// Run one turn on the session's sequence. On failure the sequence keeps its tokens and loses
/// its cache (the next turn runs it all again), so the session stays usable.
pub(super) fn run_turn(
    model: &Arc<Model>,
    context: &mut Context,
    config: &GenerationConfig,
    samplers: &[SessionSampler],
    cancel: CancelToken,
    on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool,
) -> Result<(Generation, bool)> {
    let config = turn_config(context, config);
    if config.num_beams > 1 {
        if !samplers.is_empty() {
            return Err(Error::InvalidOption {
                field: "num_beams",
                message: "plugin samplers cannot run in beam search (num_beams > 1)".to_string(),
            });
        }
        // Beam search keeps its own beams' caches: the session's is of no use to it.
        context.cache = KvCache::default();
        context.cached = 0;
        let mut results =
            model.generate_ids(vec![context.tokens.clone()], &config, &mut |_| true)?;
        let generation = take_first(&mut results)?;
        context.tokens_run +=
            (generation.stats.prompt_tokens + generation.stats.decode_tokens) as u64;
        context.tokens = generation.prompt_token_ids.clone();
        context.tokens.extend_from_slice(&generation.token_ids);
        return Ok((generation, false));
    }
    let (cache, cached) = take_cache(context)?;
    let mut generator = Generator::resume(model, context.tokens.clone(), cache, cached, &config)?;
    add_session_samplers(model, samplers, &mut generator)?;
    generator.set_cancel_token(cancel);
    let ran = generator.run(on_token);
    let run_count = generator.positions_run();
    context.tokens_run += run_count as u64;
    ran?;
    let resumed = generator.into_resumed()?;
    context.tokens = resumed.tokens;
    context.cache = resumed.cache;
    context.cached = resumed.cached;
    Ok((resumed.generation, true))
}
