//! One sequence of a batch: its tokens, padding, stop state and chain, and how its next token is
//! picked from its logits each step.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::calls::{self, Limits};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::sampling::{best_first, log_sum_exp, SamplerChain, SamplerContext};
use crate::tokenizer::StreamDecoder;

use super::output::{Generation, GenerationStats, StopReason, TokenEvent, TokenLogprob};
use super::stop::{CancelToken, StopFilter};

pub(super) struct Row {
    /// Stable id: the row's index at submission, or the id [`Generator::join`] returned.
    pub(super) id: usize,
    /// End tokens of this row's config.
    pub(super) eos: Vec<u32>,
    /// Prompt then generated tokens.
    pub(super) tokens: Vec<u32>,
    pub(super) prompt_len: usize,
    /// Ids fed so far, left padding included.
    pub(super) fed_ids: Vec<i64>,
    pub(super) mask: Vec<i64>,
    pub(super) text: String,
    pub(super) decoder: StreamDecoder,
    pub(super) stop_filter: StopFilter,
    pub(super) stop_string: Option<String>,
    pub(super) chain: SamplerChain,
    pub(super) seed: Option<u64>,
    pub(super) logprobs: Option<Vec<TokenLogprob>>,
    /// How many alternatives each of `logprobs` lists.
    pub(super) top_logprobs: usize,
    /// This row's `max_time` in seconds, counted from `began`.
    pub(super) max_time: Option<f64>,
    /// When the first forward pass that fed this row's prompt began.
    pub(super) began: Option<Instant>,
    /// Total length at which this row ends (prompt + budget, capped by the context window).
    pub(super) max_length: usize,
    /// Prompt length + new-token budget.
    pub(super) budget_end: usize,
    pub(super) stop: Option<StopReason>,
}

impl Row {
    pub(super) fn into_generation(self, stats: GenerationStats) -> Generation {
        let mut prompt = self.tokens;
        let token_ids = prompt.split_off(self.prompt_len);
        Generation {
            prompt_token_ids: prompt,
            token_ids,
            text: self.text,
            stop_reason: self.stop.unwrap_or(StopReason::MaxNewTokens),
            stop_string: self.stop_string,
            logprobs: self.logprobs,
            seed: self.seed,
            score: None,
            stats,
        }
    }
    /// Position of the next fed token: the count of real tokens before it.
    pub(super) fn next_position(&self) -> i64 {
        self.mask.iter().sum::<i64>() - 1
    }
}

/// A seed for runs that did not ask for one: time and a process-wide counter, hashed.
pub(crate) fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}

/// Conditions that stop every active row at its next token. The cancel token (and each row's own
/// `max_time`) are read after each row's chain, so a slow sampler (a plugin's call) is never
/// followed by another forward pass once time is up or the generation is cancelled.
pub(super) struct StepFlags {
    pub(super) window_full: bool,
    pub(super) cancel: CancelToken,
}

/// Reused text buffers, so picking a token allocates nothing.
pub(super) struct Buffers {
    pub(super) text: String,
    pub(super) piece: String,
    pub(super) sampling_seconds: f64,
}

/// Pick one row's next token from its logits, decide whether it stops, and report it.
pub(super) fn select_row(
    model: &Model,
    row: &mut Row,
    logits: &[f32],
    window_full: bool,
    limits: &Limits,
    buffers: &mut Buffers,
    on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool,
) -> Result<()> {
    let vocab = model.config().vocab_size;
    let n_positions = model.config().n_positions;
    let context = SamplerContext {
        tokens: &row.tokens,
        prompt_len: row.prompt_len,
        max_length: row.max_length,
        vocab_size: vocab,
    };
    let chain_began = Instant::now();
    let sampled = row.chain.sample(logits, &context);
    buffers.sampling_seconds += chain_began.elapsed().as_secs_f64();
    let token = match sampled {
        Ok(token) => token,
        Err(error) => {
            return match calls::take_skipped() {
                Some(reason) => {
                    stop_without_token(row, reason);
                    Ok(())
                }
                None => Err(error),
            }
        }
    };
    if token as usize >= vocab {
        return Err(Error::Sampler {
            sampler: row
                .chain
                .names()
                .last()
                .copied()
                .unwrap_or("chain")
                .to_string(),
            message: format!("selected token {token}, outside the vocabulary (size {vocab})"),
        });
    }
    if let Some(list) = row.logprobs.as_mut() {
        list.push(token_logprob(logits, token, row.top_logprobs));
    }
    row.tokens.push(token);
    let decoded = &mut buffers.text;
    decoded.clear();
    buffers.piece.clear();
    row.decoder
        .push_into(model.tokenizer(), token, &mut buffers.piece)?;
    if let Some(matched) = row.stop_filter.push(&buffers.piece, decoded) {
        row.stop = Some(StopReason::StopString);
        row.stop_string = Some(row.stop_filter.stops[matched].clone());
    } else if row.eos.contains(&token) {
        row.stop = Some(StopReason::Eos);
    } else if row.tokens.len() >= row.budget_end {
        row.stop = Some(StopReason::MaxNewTokens);
    } else if row.tokens.len() >= n_positions || window_full {
        row.stop = Some(StopReason::ContextFull);
    } else if let Some(reason) = limits.reached() {
        row.stop = Some(reason);
    }
    if row.stop.is_some() && row.stop != Some(StopReason::StopString) {
        let tail = row.decoder.finish();
        if row.stop_filter.push(&tail, decoded).is_some() {
            row.stop = Some(StopReason::StopString);
        } else {
            row.stop_filter.finish(decoded);
        }
    }
    row.text.push_str(decoded);
    let keep_going = on_token(&TokenEvent {
        row: row.id,
        token_id: token,
        text: decoded,
    });
    if !keep_going && row.stop.is_none() {
        row.stop = Some(StopReason::Callback);
    }
    Ok(())
}

/// A plugin call was skipped because the generation must stop: the row ends without this step's
/// token, and text held back so far (an unfinished character, a possible start of a stop string)
/// goes into its `text`, which no [`TokenEvent`] carries.
pub(super) fn stop_without_token(row: &mut Row, reason: StopReason) {
    row.stop = Some(reason);
    let mut released = String::new();
    let tail = row.decoder.finish();
    if let Some(matched) = row.stop_filter.push(&tail, &mut released) {
        row.stop = Some(StopReason::StopString);
        row.stop_string = Some(row.stop_filter.stops[matched].clone());
    } else {
        row.stop_filter.finish(&mut released);
    }
    row.text.push_str(&released);
}

/// Log-softmax of the raw logits at `token`, plus the `n` best alternatives.
pub(super) fn token_logprob(logits: &[f32], token: u32, n: usize) -> TokenLogprob {
    let log_sum = log_sum_exp(logits.iter().copied());
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(n);
    if n > 0 {
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let by_logit =
            |&a: &u32, &b: &u32| best_first((logits[a as usize], a), (logits[b as usize], b));
        let n = n.min(order.len());
        if n < order.len() {
            order.select_nth_unstable_by(n - 1, by_logit);
            order.truncate(n);
        }
        order.sort_unstable_by(by_logit);
        top.extend(
            order
                .into_iter()
                .map(|id| (id, logits[id as usize] - log_sum)),
        );
    }
    TokenLogprob {
        token_id: token,
        logprob: logits[token as usize] - log_sum,
        top,
    }
}
