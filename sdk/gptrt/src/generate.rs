//! Generation: prompts in, tokens out, one forward pass per step with the KV cache.

use std::time::Instant;

use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::model::{KvCache, Model, StepInput};
use crate::plugin::calls::{self, Limits};
use crate::sampling::{log_sum_exp, SamplerChain, SamplerContext};
use crate::tokenizer::StreamDecoder;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Why a sequence stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// An end token (`eos_token_id`) was generated; it is the last of `token_ids`.
    Eos,
    /// `max_new_tokens` (or `max_length`) was reached.
    MaxNewTokens,
    /// The context window (`n_positions`) is full.
    ContextFull,
    /// The token callback returned `false`.
    Callback,
    /// A stop string appeared in the generated text (see [`Generation::stop_string`]).
    StopString,
    /// `max_time` ran out.
    MaxTime,
    /// [`CancelToken::cancel`] was called.
    Cancelled,
}

impl StopReason {
    /// Stable name used in JSON output and the C API.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::MaxNewTokens => "max_new_tokens",
            StopReason::ContextFull => "context_full",
            StopReason::Callback => "callback",
            StopReason::StopString => "stop_string",
            StopReason::MaxTime => "max_time",
            StopReason::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One generated token, as handed to a streaming callback.
#[derive(Debug, Clone, Copy)]
pub struct TokenEvent<'a> {
    /// Which prompt of the batch (0 for a single prompt).
    pub row: usize,
    /// The token id.
    pub token_id: u32,
    /// The text this token completed (may be empty: part of a multi-byte character, or a special
    /// token). Concatenating every event's text gives the final `text`, except when a generation
    /// stops because a plugin call was skipped (cancelled or out of time): text held back until
    /// then (an unfinished character, a possible stop-string start) goes into `text` only.
    pub text: &'a str,
}

/// Timing of one generation call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationStats {
    /// Prompt tokens processed in the first forward pass (all rows, padding excluded).
    pub prompt_tokens: usize,
    /// Seconds spent in the first forward pass.
    pub prompt_seconds: f64,
    /// Tokens fed in the following forward passes (one per active row per step).
    pub decode_tokens: usize,
    /// Seconds spent in the following forward passes and token selection.
    pub decode_seconds: f64,
    /// Seconds spent in the sampler chains (all steps, all rows), part of the times above.
    pub sampling_seconds: f64,
}

impl GenerationStats {
    /// Prompt tokens per second.
    pub fn prompt_tokens_per_second(&self) -> f64 {
        rate(self.prompt_tokens, self.prompt_seconds)
    }
    /// Decode tokens per second.
    pub fn decode_tokens_per_second(&self) -> f64 {
        rate(self.decode_tokens, self.decode_seconds)
    }
}

fn rate(tokens: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        tokens as f64 / seconds
    } else {
        0.0
    }
}

/// The result for one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The prompt's ids as fed to the model (after truncation; `[bos]` for an empty prompt).
    pub prompt_token_ids: Vec<u32>,
    /// Generated ids only (an end token that stopped generation is included, as in Hugging Face).
    pub token_ids: Vec<u32>,
    /// The generated text (special tokens left out).
    pub text: String,
    /// Why generation stopped.
    pub stop_reason: StopReason,
    /// The stop string that ended generation, when `stop_reason` is `StopString`.
    pub stop_string: Option<String>,
    /// Per-token log-probabilities, when `logprobs` was requested.
    pub logprobs: Option<Vec<TokenLogprob>>,
    /// The sampling seed used (when sampling), so the run can be repeated.
    pub seed: Option<u64>,
    /// Beam search's score of this sequence (`sum_logprobs / length ** length_penalty`).
    pub score: Option<f32>,
    /// Timing of the call (shared by all rows of a batch).
    pub stats: GenerationStats,
}

impl Generation {
    /// The result as JSON, the one form the CLI's `--json` and the C API share: `text`,
    /// `token_ids`, `prompt_token_ids`, `stop_reason`, the timing, and when present `stop_string`,
    /// `seed`, `score` and `logprobs` (each token with its text).
    pub fn to_json(&self, tokenizer: &crate::tokenizer::Tokenizer) -> serde_json::Value {
        use serde_json::json;
        let piece = |id: u32| {
            tokenizer
                .token_bytes(id)
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .unwrap_or_default()
        };
        let stats = &self.stats;
        let mut output = json!({
            "text": self.text,
            "prompt_token_ids": self.prompt_token_ids,
            "token_ids": self.token_ids,
            "stop_reason": self.stop_reason.name(),
            "prompt_tokens": stats.prompt_tokens,
            "prompt_seconds": stats.prompt_seconds,
            "prompt_tokens_per_second": stats.prompt_tokens_per_second(),
            "decode_tokens": stats.decode_tokens,
            "decode_seconds": stats.decode_seconds,
            "decode_tokens_per_second": stats.decode_tokens_per_second(),
        });
        if let Some(stop) = &self.stop_string {
            output["stop_string"] = json!(stop);
        }
        if let Some(seed) = self.seed {
            output["seed"] = json!(seed);
        }
        if let Some(score) = self.score {
            output["score"] = json!(score);
        }
        if let Some(logprobs) = &self.logprobs {
            output["logprobs"] = logprobs
                .iter()
                .map(|lp| {
                    let top: Vec<_> = lp
                        .top
                        .iter()
                        .map(|&(id, logprob)| json!({"token_id": id, "token": piece(id), "logprob": logprob}))
                        .collect();
                    json!({"token_id": lp.token_id, "token": piece(lp.token_id), "logprob": lp.logprob, "top": top})
                })
                .collect();
        }
        output
    }
}

/// Log-probability of a generated token under the model (log-softmax of the raw logits, before
/// any processor), with the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The chosen token.
    pub token_id: u32,
    /// Its natural-log probability.
    pub logprob: f32,
    /// The `logprobs` most likely tokens and their log-probabilities, best first.
    pub top: Vec<(u32, f32)>,
}

/// Stops a generation from another thread; it takes effect at the next token.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }
    /// Ask the generation to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Holds back generated text that could be the start of a stop string, so streamed text never
/// contains one.
#[derive(Debug, Clone, Default)]
struct StopFilter {
    stops: Vec<String>,
    held: String,
}

impl StopFilter {
    /// Add text; append what is safe to emit to `out`; return the index of a matched stop string.
    fn push(&mut self, text: &str, out: &mut String) -> Option<usize> {
        self.held.push_str(text);
        let found = self
            .stops
            .iter()
            .enumerate()
            .filter_map(|(index, stop)| self.held.find(stop.as_str()).map(|at| (at, index)))
            .min();
        if let Some((at, index)) = found {
            out.push_str(&self.held[..at]);
            self.held.clear();
            return Some(index);
        }
        // Keep the longest tail that some stop string starts with.
        let keep = self
            .held
            .char_indices()
            .map(|(at, _)| at)
            .find(|&at| {
                self.stops
                    .iter()
                    .any(|stop| stop.starts_with(&self.held[at..]))
            })
            .unwrap_or(self.held.len());
        out.push_str(&self.held[..keep]);
        self.held.drain(..keep);
        None
    }

    fn finish(&mut self, out: &mut String) {
        out.push_str(&self.held);
        self.held.clear();
    }
}

struct Row {
    /// Stable id: the row's index at submission, or the id [`Generator::join`] returned.
    id: usize,
    /// End tokens of this row's config.
    eos: Vec<u32>,
    /// Prompt then generated tokens.
    tokens: Vec<u32>,
    prompt_len: usize,
    /// Ids fed so far, left padding included.
    fed_ids: Vec<i64>,
    mask: Vec<i64>,
    text: String,
    decoder: StreamDecoder,
    stop_filter: StopFilter,
    stop_string: Option<String>,
    chain: SamplerChain,
    seed: Option<u64>,
    logprobs: Option<Vec<TokenLogprob>>,
    /// How many alternatives each of `logprobs` lists.
    top_logprobs: usize,
    /// This row's `max_time` in seconds, counted from `began`.
    max_time: Option<f64>,
    /// When the first forward pass that fed this row's prompt began.
    began: Option<Instant>,
    /// Total length at which this row ends (prompt + budget, capped by the context window).
    max_length: usize,
    /// Prompt length + new-token budget.
    budget_end: usize,
    stop: Option<StopReason>,
}

impl Row {
    fn into_generation(self, stats: GenerationStats) -> Generation {
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
    fn next_position(&self) -> i64 {
        self.mask.iter().sum::<i64>() - 1
    }
}

/// A seed for runs that did not ask for one: time and a process-wide counter, hashed.
fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}

/// Most rows (prompts x beams or returned sequences) one generation may hold: each row has its own
/// KV cache and its own vocabulary-sized logits every step.
pub const MAX_ROWS: usize = 1024;

/// Prompts checked and ready to feed, with the resolved end and padding tokens.
pub(crate) struct Prepared {
    pub prompts: Vec<Vec<u32>>,
    pub eos: Vec<u32>,
    pub pad: u32,
}

/// Validate `config` against the model and turn raw prompts into the ids to feed: an empty prompt
/// becomes `[bos]`, a prompt that does not fit the window is an error or is truncated.
pub(crate) fn prepare_prompts(
    model: &Model,
    prompts: Vec<Vec<u32>>,
    config: &GenerationConfig,
) -> Result<Prepared> {
    config.validate()?;
    let n_positions = model.config().n_positions;
    if prompts.is_empty() {
        return Err(Error::InvalidOption {
            field: "prompts",
            message: "at least one prompt is needed".to_string(),
        });
    }
    if config.num_beams > 1 && config.do_sample {
        return Err(Error::InvalidOption {
            field: "do_sample",
            message: "beam sampling (do_sample with num_beams > 1) is not supported; use one or the other".to_string(),
        });
    }
    if let Some(n) = config.max_new_tokens.filter(|&n| n > n_positions) {
        return Err(Error::InvalidOption {
            field: "max_new_tokens",
            message: format!(
                "{n} is more than the model's whole context window (n_positions = {n_positions})"
            ),
        });
    }
    let vocab_size = model.config().vocab_size;
    if let Some(n) = config.logprobs.filter(|&n| n > vocab_size) {
        return Err(Error::InvalidOption {
            field: "logprobs",
            message: format!("{n} alternatives is more than the vocabulary ({vocab_size} tokens)"),
        });
    }
    let rows = prompts
        .len()
        .saturating_mul(config.num_beams.max(config.num_return_sequences));
    if rows > MAX_ROWS {
        return Err(Error::InvalidOption {
            field: "prompts",
            message: format!(
                "{} prompts x {} sequences each is {rows} rows, more than gptrt's limit of \
                 {MAX_ROWS} rows in one generation",
                prompts.len(),
                config.num_beams.max(config.num_return_sequences)
            ),
        });
    }
    let eos = match &config.eos_token_id {
        Some(ids) => ids.to_vec(),
        None => vec![model.config().eos_token_id],
    };
    let bos = config.bos_token_id.unwrap_or(model.config().bos_token_id);
    let pad = config.pad_token_id.or(eos.first().copied()).unwrap_or(bos);
    model.check_ids(&eos)?;
    model.check_ids(&[bos, pad])?;
    model.check_ids(&config.token_ids())?;
    let mut prepared = Vec::with_capacity(prompts.len());
    for mut prompt in prompts {
        if prompt.is_empty() {
            prompt.push(bos);
        }
        model.check_ids(&prompt)?;
        if config.truncate_prompt {
            let room = n_positions
                .saturating_sub(config.max_new_tokens.unwrap_or(1))
                .max(1);
            if prompt.len() > room {
                prompt.drain(..prompt.len() - room);
            }
        } else if prompt.len() >= n_positions {
            return Err(Error::ContextOverflow {
                prompt_tokens: prompt.len(),
                n_positions,
            });
        }
        prepared.push(prompt);
    }
    Ok(Prepared {
        prompts: prepared,
        eos,
        pad,
    })
}

/// A batch of sequences in flight: tokens, KV cache, stop state. Advance it with [`Generator::step`].
pub struct Generator<'m> {
    model: &'m Model,
    rows: Vec<Row>,
    next_id: usize,
    pad: u32,
    cache: KvCache,
    logits: Vec<f32>,
    input_ids: Vec<i64>,
    attention_mask: Vec<i64>,
    position_ids: Vec<i64>,
    text_buf: String,
    piece_buf: String,
    stats: GenerationStats,
    started: bool,
    cancel: CancelToken,
}

impl<'m> Generator<'m> {
    /// Prepare a batch. Each prompt is a list of ids; an empty one starts from `bos_token_id`.
    /// With sampling and `num_return_sequences` > 1, each prompt becomes that many rows, seeded
    /// `seed`, `seed + 1`, ...
    pub fn new(
        model: &'m Model,
        prompts: Vec<Vec<u32>>,
        config: &GenerationConfig,
    ) -> Result<Generator<'m>> {
        if config.num_beams > 1 {
            return Err(Error::InvalidOption {
                field: "num_beams",
                message: "beam search runs through Model::generate_beams, not a Generator"
                    .to_string(),
            });
        }
        let Prepared { prompts, eos, pad } = prepare_prompts(model, prompts, config)?;
        let n_positions = model.config().n_positions;
        let base_seed = config
            .do_sample
            .then(|| config.seed.unwrap_or_else(fresh_seed));
        let copies = if config.do_sample {
            config.num_return_sequences
        } else {
            1
        };
        let stops = config
            .stop_strings
            .as_ref()
            .map(|s| s.to_vec())
            .unwrap_or_default();

        let mut rows = Vec::with_capacity(prompts.len() * copies);
        for prompt in prompts {
            let prompt_len = prompt.len();
            let budget = config.new_token_budget(prompt_len);
            for copy in 0..copies {
                let seed = base_seed.map(|seed| seed.wrapping_add(copy as u64));
                rows.push(Row {
                    id: rows.len(),
                    eos: eos.clone(),
                    stop: (budget == 0).then_some(StopReason::MaxNewTokens),
                    tokens: prompt.clone(),
                    prompt_len,
                    fed_ids: Vec::new(),
                    mask: Vec::new(),
                    text: String::new(),
                    decoder: StreamDecoder::new(),
                    stop_filter: StopFilter {
                        stops: stops.clone(),
                        held: String::new(),
                    },
                    stop_string: None,
                    chain: SamplerChain::from_config(config, &eos, seed.unwrap_or(0), 1),
                    seed,
                    logprobs: config.logprobs.map(|_| Vec::new()),
                    top_logprobs: config.logprobs.unwrap_or(0),
                    max_time: config.max_time,
                    began: None,
                    max_length: (prompt_len + budget).min(n_positions),
                    budget_end: prompt_len + budget,
                });
            }
        }
        Ok(Generator {
            model,
            next_id: rows.len(),
            rows,
            pad,
            cache: KvCache::default(),
            logits: Vec::new(),
            input_ids: Vec::new(),
            attention_mask: Vec::new(),
            position_ids: Vec::new(),
            text_buf: String::new(),
            piece_buf: String::new(),
            stats: GenerationStats::default(),
            started: false,
            cancel: CancelToken::new(),
        })
    }

    /// Replace a row's sampler chain (for chains built by hand or with plugin samplers).
    pub fn set_chain(&mut self, row: usize, chain: SamplerChain) -> Result<()> {
        let slot = self
            .rows
            .iter_mut()
            .find(|r| r.id == row)
            .ok_or(Error::InvalidOption {
                field: "row",
                message: format!("row {row} does not exist"),
            })?;
        slot.chain = chain;
        Ok(())
    }

    /// Put `sampler` (a plugin sampler, or any [`crate::Sampler`]) in a row's chain, just before
    /// its selector, keeping the row's processors, warpers and seed.
    pub fn add_sampler(
        &mut self,
        row: usize,
        sampler: Box<dyn crate::sampling::Sampler>,
    ) -> Result<()> {
        let slot = self
            .rows
            .iter_mut()
            .find(|r| r.id == row)
            .ok_or(Error::InvalidOption {
                field: "row",
                message: format!("row {row} does not exist"),
            })?;
        slot.chain.insert_before_selector(sampler);
        Ok(())
    }

    /// Row ids of the batch, in batch order.
    pub fn row_ids(&self) -> Vec<usize> {
        self.rows.iter().map(|row| row.id).collect()
    }

    /// A handle that stops this generation from any thread.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Use this cancel token instead of the generator's own.
    pub fn set_cancel_token(&mut self, token: CancelToken) {
        self.cancel = token;
    }

    /// Whether every sequence has stopped.
    pub fn is_done(&self) -> bool {
        self.rows.iter().all(|row| row.stop.is_some())
    }

    /// Run one forward pass and pick the next token of every active sequence, calling `on_token`
    /// for each. Returning `false` from it stops that sequence. Returns `true` while any sequence
    /// is still active.
    pub fn step(&mut self, on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool) -> Result<bool> {
        if self.is_done() {
            return Ok(false);
        }
        if !self.started && self.cancel.is_cancelled() {
            for row in self.rows.iter_mut().filter(|row| row.stop.is_none()) {
                row.stop = Some(StopReason::Cancelled);
            }
            return Ok(false);
        }
        let began = Instant::now();
        // Each row's `max_time` counts from the pass that fed its prompt (a row that joined a
        // running batch brings its own start).
        for row in &mut self.rows {
            row.began.get_or_insert(began);
        }
        let input = self.prepare_input();
        self.model.forward(
            &StepInput {
                batch: self.rows.len(),
                seq: input,
                input_ids: &self.input_ids,
                attention_mask: &self.attention_mask,
                position_ids: &self.position_ids,
            },
            &mut self.cache,
            &mut self.logits,
        )?;
        let active = self.rows.iter().filter(|row| row.stop.is_none()).count();
        self.select_tokens(on_token)?;
        let seconds = began.elapsed().as_secs_f64();
        if self.started {
            self.stats.decode_tokens += active;
            self.stats.decode_seconds += seconds;
        } else {
            self.stats.prompt_tokens = self.rows.iter().map(|row| row.prompt_len).sum();
            self.stats.prompt_seconds = seconds;
            self.started = true;
        }
        Ok(!self.is_done())
    }

    /// Fill the input buffers for the next forward pass; returns the number of positions fed.
    fn prepare_input(&mut self) -> usize {
        self.input_ids.clear();
        self.attention_mask.clear();
        self.position_ids.clear();
        if !self.started {
            let width = self
                .rows
                .iter()
                .map(|row| row.prompt_len)
                .max()
                .unwrap_or(0);
            for row in &mut self.rows {
                let padding = width - row.prompt_len;
                row.fed_ids
                    .extend(std::iter::repeat_n(i64::from(self.pad), padding));
                row.fed_ids
                    .extend(row.tokens.iter().map(|&id| i64::from(id)));
                row.mask.extend(std::iter::repeat_n(0, padding));
                row.mask.extend(std::iter::repeat_n(1, row.prompt_len));
            }
        } else {
            for row in &mut self.rows {
                // Stopped rows keep stepping with padding so the batch stays rectangular, as in
                // Hugging Face; their outputs are ignored.
                let next = match row.stop {
                    None => row.tokens.last().copied().unwrap_or(self.pad),
                    Some(_) => self.pad,
                };
                row.fed_ids.push(i64::from(next));
                row.mask.push(1);
            }
        }
        let full = !self.started || !self.model.uses_cache();
        let width = self.rows[0].mask.len();
        let seq = if full { width } else { 1 };
        for row in &self.rows {
            self.input_ids
                .extend_from_slice(&row.fed_ids[width - seq..]);
            self.attention_mask.extend_from_slice(&row.mask);
            // Hugging Face: position_ids = cumsum(attention_mask) - 1, set to 1 where masked.
            if full {
                let mut seen = 0i64;
                for &m in &row.mask {
                    seen += m;
                    self.position_ids.push(if m == 0 { 1 } else { seen - 1 });
                }
            } else {
                self.position_ids.push(row.next_position());
            }
        }
        seq
    }

    fn select_tokens(&mut self, on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool) -> Result<()> {
        let vocab = self.model.config().vocab_size;
        let flags = self.step_flags();
        let mut buffers = Buffers {
            text: std::mem::take(&mut self.text_buf),
            piece: std::mem::take(&mut self.piece_buf),
            sampling_seconds: 0.0,
        };
        let mut result = Ok(());
        for (index, row) in self.rows.iter_mut().enumerate() {
            if row.stop.is_some() {
                continue;
            }
            let logits = &self.logits[index * vocab..(index + 1) * vocab];
            let limits = Limits {
                cancel: flags.cancel.clone(),
                time_limit: row.began.zip(row.max_time),
            };
            // Sampler plugins check these before each call; the row checks them after its chain.
            let _limits = calls::enter_limits(limits.clone());
            result = select_row(
                self.model,
                row,
                logits,
                flags.window_full,
                &limits,
                &mut buffers,
                on_token,
            );
            if result.is_err() {
                break;
            }
        }
        self.stats.sampling_seconds += buffers.sampling_seconds;
        self.text_buf = buffers.text;
        self.piece_buf = buffers.piece;
        result
    }

    fn step_flags(&self) -> StepFlags {
        StepFlags {
            // The batch can take one more step only while its shared width fits the window.
            window_full: self
                .rows
                .first()
                .is_some_and(|row| row.mask.len() >= self.model.config().n_positions),
            cancel: self.cancel.clone(),
        }
    }

    /// Continuous batching: add a sequence to a running batch. Its prompt runs alone (one forward
    /// pass), its first token is chosen (and reported to `on_token`), then its KV cache joins the
    /// batch's, left-padded to the common width, so from the next [`Generator::step`] on it
    /// advances in the same forward pass as the others. Returns its row id (the `row` of its
    /// [`TokenEvent`]s). Before the first step it simply joins the prompt batch.
    pub fn join(
        &mut self,
        prompt: Vec<u32>,
        config: &GenerationConfig,
        on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<usize> {
        if config.num_beams > 1 {
            return Err(Error::InvalidOption {
                field: "num_beams",
                message: "beam search cannot join a running batch".to_string(),
            });
        }
        let mut joining = Generator::new(self.model, vec![prompt], config)?;
        if joining.rows.len() != 1 {
            return Err(Error::InvalidOption {
                field: "num_return_sequences",
                message: "join one sequence at a time".to_string(),
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        if !self.started {
            let mut row = joining.rows.remove(0);
            row.id = id;
            self.rows.push(row);
            return Ok(id);
        }
        // Run the newcomer's prompt alone; its first token comes from that pass.
        joining.rows[0].id = id;
        joining.step(on_token)?;
        self.stats.prompt_tokens += joining.stats.prompt_tokens;
        self.stats.prompt_seconds += joining.stats.prompt_seconds;
        self.stats.sampling_seconds += joining.stats.sampling_seconds;
        let mut row = joining.rows.remove(0);
        let width = self.rows.first().map_or(0, |r| r.mask.len());
        let own = row.mask.len();
        if self.rows.is_empty() {
            self.cache = joining.cache;
        } else {
            if own > width {
                // The newcomer is longer: pad every row already in the batch.
                self.cache.pad_left(own - width)?;
                for existing in &mut self.rows {
                    existing
                        .fed_ids
                        .splice(0..0, std::iter::repeat_n(i64::from(self.pad), own - width));
                    existing
                        .mask
                        .splice(0..0, std::iter::repeat_n(0, own - width));
                }
            } else if width > own {
                joining.cache.pad_left(width - own)?;
                row.fed_ids
                    .splice(0..0, std::iter::repeat_n(i64::from(self.pad), width - own));
                row.mask.splice(0..0, std::iter::repeat_n(0, width - own));
            }
            if self.model.uses_cache() {
                self.cache.append_rows(joining.cache)?;
            }
        }
        self.rows.push(row);
        Ok(id)
    }

    /// Continuous batching: take the stopped sequences out of the batch (their KV cache rows
    /// go too, and padding columns no row needs any more are dropped) and return their results
    /// with their row ids.
    pub fn retire(&mut self) -> Result<Vec<(usize, Generation)>> {
        if !self.rows.iter().any(|row| row.stop.is_some()) {
            return Ok(Vec::new());
        }
        let keep: Vec<usize> = (0..self.rows.len())
            .filter(|&i| self.rows[i].stop.is_none())
            .collect();
        if self.started && self.model.uses_cache() && !keep.is_empty() {
            self.cache.select_rows(&keep)?;
        }
        let stats = self.stats;
        let mut retired = Vec::new();
        let mut kept = Vec::with_capacity(keep.len());
        for row in std::mem::take(&mut self.rows) {
            if row.stop.is_some() {
                retired.push((row.id, row.into_generation(stats)));
            } else {
                kept.push(row);
            }
        }
        self.rows = kept;
        if self.rows.is_empty() {
            self.cache = KvCache::default();
            self.started = false;
            return Ok(retired);
        }
        let unused = self
            .rows
            .iter()
            .map(|row| row.mask.iter().take_while(|&&m| m == 0).count())
            .min()
            .unwrap_or(0);
        if unused > 0 && self.started {
            if self.model.uses_cache() {
                self.cache.drop_left(unused)?;
            }
            for row in &mut self.rows {
                row.fed_ids.drain(..unused);
                row.mask.drain(..unused);
            }
        }
        Ok(retired)
    }

    /// How many sequences are in the batch (stopped ones included until [`Generator::retire`]).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the batch holds no sequence.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Run until every sequence stops.
    pub fn run(&mut self, on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool) -> Result<()> {
        while self.step(on_token)? {}
        Ok(())
    }

    /// The results, one per row, in order.
    pub fn into_generations(self) -> Vec<Generation> {
        let stats = self.stats;
        self.rows
            .into_iter()
            .map(|row| row.into_generation(stats))
            .collect()
    }
}

/// Conditions that stop every active row at its next token. The cancel token (and each row's own
/// `max_time`) are read after each row's chain, so a slow sampler (a plugin's call) is never
/// followed by another forward pass once time is up or the generation is cancelled.
struct StepFlags {
    window_full: bool,
    cancel: CancelToken,
}

/// Reused text buffers, so picking a token allocates nothing.
struct Buffers {
    text: String,
    piece: String,
    sampling_seconds: f64,
}

/// Pick one row's next token from its logits, decide whether it stops, and report it.
fn select_row(
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
fn stop_without_token(row: &mut Row, reason: StopReason) {
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
fn token_logprob(logits: &[f32], token: u32, n: usize) -> TokenLogprob {
    let log_sum = log_sum_exp(logits.iter().copied());
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(n);
    if n > 0 {
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let by_logit = |a: &u32, b: &u32| {
            logits[*b as usize]
                .total_cmp(&logits[*a as usize])
                .then(a.cmp(b))
        };
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

impl Model {
    /// Generate a continuation of `prompt`.
    pub fn generate(&self, prompt: &str, config: &GenerationConfig) -> Result<Generation> {
        self.generate_with(prompt, config, |_| true)
    }

    /// Generate a continuation of `prompt`, calling `on_token` for each new token; return `false`
    /// from it to stop.
    pub fn generate_with(
        &self,
        prompt: &str,
        config: &GenerationConfig,
        mut on_token: impl FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<Generation> {
        let ids = self.tokenizer().encode(prompt)?;
        let mut generations = self.generate_ids(vec![ids], config, &mut on_token)?;
        Ok(generations.remove(0))
    }

    /// Generate for several prompts at once (left-padded batch); each result equals running that
    /// prompt alone.
    pub fn generate_batch(
        &self,
        prompts: &[&str],
        config: &GenerationConfig,
    ) -> Result<Vec<Generation>> {
        let ids = prompts
            .iter()
            .map(|prompt| self.tokenizer().encode(prompt))
            .collect::<Result<Vec<_>>>()?;
        self.generate_ids(ids, config, &mut |_| true)
    }

    /// Run every check a generation of `prompts` with `config` runs before its first forward pass
    /// (the options, their fit with this model's vocabulary and window, the prompts' ids), without
    /// generating: a front end can refuse bad input before it shows anything.
    pub fn check_generation(&self, prompts: &[Vec<u32>], config: &GenerationConfig) -> Result<()> {
        prepare_prompts(self, prompts.to_vec(), config).map(|_| ())
    }

    /// Generate from token ids (one list per sequence of the batch). With `num_beams` > 1 this is
    /// beam search (no streaming: `on_token` is not called).
    pub fn generate_ids(
        &self,
        prompts: Vec<Vec<u32>>,
        config: &GenerationConfig,
        on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<Vec<Generation>> {
        if config.num_beams > 1 {
            return self.generate_beams(prompts, config);
        }
        let mut generator = Generator::new(self, prompts, config)?;
        generator.run(on_token)?;
        Ok(generator.into_generations())
    }
}
