//! Generation: prompts in, tokens out, one forward pass per step with the KV cache.

use std::time::Instant;

use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::model::{KvCache, Model, StepInput};
use crate::tokenizer::StreamDecoder;

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
}

impl StopReason {
    /// Stable name used in JSON output and the C API.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::MaxNewTokens => "max_new_tokens",
            StopReason::ContextFull => "context_full",
            StopReason::Callback => "callback",
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
    /// token). Concatenating every event's text gives the final `text`.
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
    /// Timing of the call (shared by all rows of a batch).
    pub stats: GenerationStats,
}

struct Row {
    prompt: Vec<u32>,
    generated: Vec<u32>,
    /// Ids fed so far, left padding included.
    fed_ids: Vec<i64>,
    mask: Vec<i64>,
    text: String,
    decoder: StreamDecoder,
    budget: usize,
    stop: Option<StopReason>,
}

impl Row {
    fn len(&self) -> usize {
        self.prompt.len() + self.generated.len()
    }
    /// Position of the next fed token: the count of real tokens before it.
    fn next_position(&self) -> i64 {
        self.mask.iter().sum::<i64>() - 1
    }
}

/// A batch of sequences in flight: tokens, KV cache, stop state. Advance it with [`Generator::step`].
pub struct Generator<'m> {
    model: &'m Model,
    rows: Vec<Row>,
    eos: Vec<u32>,
    pad: u32,
    cache: KvCache,
    logits: Vec<f32>,
    input_ids: Vec<i64>,
    attention_mask: Vec<i64>,
    position_ids: Vec<i64>,
    text_buf: String,
    stats: GenerationStats,
    started: bool,
}

impl<'m> Generator<'m> {
    /// Prepare a batch. Each prompt is a list of ids; an empty one starts from `bos_token_id`.
    pub fn new(
        model: &'m Model,
        prompts: Vec<Vec<u32>>,
        config: &GenerationConfig,
    ) -> Result<Generator<'m>> {
        let n_positions = model.config().n_positions;
        if prompts.is_empty() {
            return Err(Error::InvalidOption {
                field: "prompts",
                message: "at least one prompt is needed".to_string(),
            });
        }
        match config.max_new_tokens {
            Some(0) => {
                return Err(Error::InvalidOption {
                    field: "max_new_tokens",
                    message: "must be at least 1".to_string(),
                })
            }
            Some(n) if n > n_positions => {
                return Err(Error::InvalidOption {
                    field: "max_new_tokens",
                    message: format!("{n} is more than the model's whole context window (n_positions = {n_positions})"),
                })
            }
            _ => {}
        }
        let eos = match &config.eos_token_id {
            Some(ids) => ids.to_vec(),
            None => vec![model.config().eos_token_id],
        };
        let bos = config.bos_token_id.unwrap_or(model.config().bos_token_id);
        let pad = config.pad_token_id.or(eos.first().copied()).unwrap_or(bos);
        model.check_ids(&eos)?;
        model.check_ids(&[bos, pad])?;

        let mut rows = Vec::with_capacity(prompts.len());
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
            let budget = config.new_token_budget(prompt.len());
            rows.push(Row {
                stop: (budget == 0).then_some(StopReason::MaxNewTokens),
                prompt,
                generated: Vec::new(),
                fed_ids: Vec::new(),
                mask: Vec::new(),
                text: String::new(),
                decoder: StreamDecoder::new(),
                budget,
            });
        }
        Ok(Generator {
            model,
            rows,
            eos,
            pad,
            cache: KvCache::default(),
            logits: Vec::new(),
            input_ids: Vec::new(),
            attention_mask: Vec::new(),
            position_ids: Vec::new(),
            text_buf: String::new(),
            stats: GenerationStats::default(),
            started: false,
        })
    }

    /// Whether every sequence has stopped.
    pub fn is_done(&self) -> bool {
        self.rows.iter().all(|row| row.stop.is_some())
    }

    /// Run one forward pass and pick the next token of every active sequence (greedy), calling
    /// `on_token` for each. Returning `false` from it stops that sequence. Returns `true` while
    /// any sequence is still active.
    pub fn step(&mut self, on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool) -> Result<bool> {
        if self.is_done() {
            return Ok(false);
        }
        let width = self.rows[0].mask.len();
        if self.started && width >= self.model.config().n_positions {
            for row in self.rows.iter_mut().filter(|row| row.stop.is_none()) {
                row.stop = Some(StopReason::ContextFull);
            }
            return Ok(false);
        }
        let began = Instant::now();
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
            self.stats.prompt_tokens = self.rows.iter().map(|row| row.prompt.len()).sum();
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
                .map(|row| row.prompt.len())
                .max()
                .unwrap_or(0);
            for row in &mut self.rows {
                let padding = width - row.prompt.len();
                row.fed_ids
                    .extend(std::iter::repeat_n(i64::from(self.pad), padding));
                row.fed_ids
                    .extend(row.prompt.iter().map(|&id| i64::from(id)));
                row.mask.extend(std::iter::repeat_n(0, padding));
                row.mask.extend(std::iter::repeat_n(1, row.prompt.len()));
            }
        } else {
            for row in &mut self.rows {
                // Stopped rows keep stepping with padding so the batch stays rectangular, as in
                // Hugging Face; their outputs are ignored.
                let next = row
                    .generated
                    .last()
                    .copied()
                    .filter(|_| row.stop.is_none())
                    .unwrap_or(self.pad);
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
        let n_positions = self.model.config().n_positions;
        let tokenizer = self.model.tokenizer();
        for (index, row) in self.rows.iter_mut().enumerate() {
            if row.stop.is_some() {
                continue;
            }
            let logits = &self.logits[index * vocab..(index + 1) * vocab];
            let token = argmax(logits);
            row.generated.push(token);
            self.text_buf.clear();
            row.decoder
                .push_into(tokenizer, token, &mut self.text_buf)?;
            if self.eos.contains(&token) {
                row.stop = Some(StopReason::Eos);
            } else if row.generated.len() >= row.budget {
                row.stop = Some(StopReason::MaxNewTokens);
            } else if row.len() >= n_positions {
                row.stop = Some(StopReason::ContextFull);
            }
            if row.stop.is_some() {
                self.text_buf.push_str(&row.decoder.finish());
            }
            row.text.push_str(&self.text_buf);
            let keep_going = on_token(&TokenEvent {
                row: index,
                token_id: token,
                text: &self.text_buf,
            });
            if !keep_going && row.stop.is_none() {
                row.stop = Some(StopReason::Callback);
            }
        }
        Ok(())
    }

    /// Run until every sequence stops.
    pub fn run(&mut self, on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool) -> Result<()> {
        while self.step(on_token)? {}
        Ok(())
    }

    /// The results, one per prompt, in order.
    pub fn into_generations(self) -> Vec<Generation> {
        let stats = self.stats;
        self.rows
            .into_iter()
            .map(|row| Generation {
                prompt_token_ids: row.prompt,
                token_ids: row.generated,
                text: row.text,
                stop_reason: row.stop.unwrap_or(StopReason::MaxNewTokens),
                stats,
            })
            .collect()
    }
}

/// Index of the largest logit; the first one on ties, as `torch.argmax` does.
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    let mut best_value = f32::NEG_INFINITY;
    for (index, &value) in logits.iter().enumerate() {
        if value > best_value {
            best = index;
            best_value = value;
        }
    }
    best as u32
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

    /// Generate from token ids (one list per sequence of the batch).
    pub fn generate_ids(
        &self,
        prompts: Vec<Vec<u32>>,
        config: &GenerationConfig,
        on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<Vec<Generation>> {
        let mut generator = Generator::new(self, prompts, config)?;
        generator.run(on_token)?;
        Ok(generator.into_generations())
    }
}
