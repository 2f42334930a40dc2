//! Generation: prompts in, tokens out, one forward pass per step with the KV cache.

mod align;
mod beam;
pub(crate) mod calls;
mod output;
mod prepare;
mod resume;
mod rows;
mod run;
mod stop;

pub use align::ROW_ALIGNMENT;
pub use output::{Generation, GenerationStats, StopReason, TokenEvent, TokenLogprob};
pub(crate) use prepare::prepare_prompts;
pub use prepare::MAX_ROWS;
pub(crate) use resume::prefill;
pub(crate) use rows::fresh_seed;
pub use stop::CancelToken;

use std::time::Instant;

use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::graph::StepInput;
use crate::kv::KvCache;
use crate::model::Model;
use crate::sampling::SamplerChain;
use crate::tokenizer::StreamDecoder;
use calls::Limits;

use prepare::Prepared;
use rows::{select_row, Buffers, Row, StepFlags};

use stop::StopFilter;

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
    /// Positions of the single row already in `cache` when a session resumes its sequence: the
    /// first pass feeds only the tokens after them.
    resumed: usize,
    /// Positions fed to the model so far, all passes (padding included).
    fed: usize,
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
            resumed: 0,
            fed: 0,
        })
    }

    /// Replace a row's sampler chain (for chains built by hand or with plugin samplers).
    pub fn set_chain(&mut self, row: usize, chain: SamplerChain) -> Result<()> {
        let slot = self
            .rows
            .iter_mut()
            .find(|r| r.id == row)
            .ok_or(Error::InvalidArgument {
                name: "row",
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
        self.add_sampler_at(row, sampler, crate::sampling::SamplerStage::Warper)
    }

    /// Put `sampler` in a row's chain at `stage` (see [`SamplerChain::insert_at_stage`]).
    pub fn add_sampler_at(
        &mut self,
        row: usize,
        sampler: Box<dyn crate::sampling::Sampler>,
        stage: crate::sampling::SamplerStage,
    ) -> Result<()> {
        let slot = self
            .rows
            .iter_mut()
            .find(|r| r.id == row)
            .ok_or(Error::InvalidArgument {
                name: "row",
                message: format!("row {row} does not exist"),
            })?;
        slot.chain.insert_at_stage(sampler, stage);
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
        // Rows whose padding would break their alignment run after the first group's pass.
        let later = if self.started {
            Vec::new()
        } else {
            self.split_off_misaligned()
        };
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
        self.fed += self.input_ids.len();
        let active = self.rows.iter().filter(|row| row.stop.is_none()).count();
        self.select_tokens(on_token)?;
        let seconds = began.elapsed().as_secs_f64();
        if self.started {
            self.stats.decode_tokens += active;
            self.stats.decode_seconds += seconds;
        } else {
            self.stats.prompt_tokens =
                self.rows.iter().map(|row| row.prompt_len).sum::<usize>() - self.resumed;
            self.stats.prompt_seconds = seconds;
            self.started = true;
        }
        for rows in later {
            let mut group = self.sibling(rows);
            group.step(on_token)?;
            self.merge(group, on_token)?;
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
                // Their padding is masked out, so their cache's real positions stay the ones a
                // session copies back out of the batch ([`Generator::stopped_row_state`]).
                let (next, mask) = match row.stop {
                    None => (row.tokens.last().copied().unwrap_or(self.pad), 1),
                    Some(_) => (self.pad, 0),
                };
                row.fed_ids.push(i64::from(next));
                row.mask.push(mask);
            }
        }
        let full = !self.started || !self.model.uses_cache();
        let width = self.rows[0].mask.len();
        let seq = match (full, self.started) {
            (true, false) => width - self.resumed,
            (true, true) => width,
            (false, _) => 1,
        };
        for row in &self.rows {
            self.input_ids
                .extend_from_slice(&row.fed_ids[width - seq..]);
            self.attention_mask.extend_from_slice(&row.mask);
            // Hugging Face: position_ids = cumsum(attention_mask) - 1, set to 1 where masked.
            if full {
                let mut seen = 0i64;
                for (at, &m) in row.mask.iter().enumerate() {
                    seen += m;
                    if at >= width - seq {
                        self.position_ids.push(if m == 0 { 1 } else { seen - 1 });
                    }
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
        self.join_with(prompt, config, &mut |_| Ok(()), on_token)
    }

    /// [`Generator::join`], with `prepare` called on the newcomer's own one-row generator before
    /// its first token (to put plugin samplers in its chain: [`crate::plugin::add_samplers`]), so
    /// its chain sees every token it generates.
    pub fn join_with(
        &mut self,
        prompt: Vec<u32>,
        config: &GenerationConfig,
        prepare: &mut dyn FnMut(&mut Generator<'m>) -> Result<()>,
        on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<usize> {
        if config.num_beams > 1 {
            return Err(Error::InvalidOption {
                field: "num_beams",
                message: "beam search cannot join a running batch".to_string(),
            });
        }
        let joining = Generator::new(self.model, vec![prompt], config)?;
        self.join_generator(joining, prepare, on_token)
    }

    /// [`Generator::join_with`] for a one-row generator made by the caller (a resumed sequence).
    pub(crate) fn join_generator(
        &mut self,
        mut joining: Generator<'m>,
        prepare: &mut dyn FnMut(&mut Generator<'m>) -> Result<()>,
        on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<usize> {
        if joining.rows.len() != 1 {
            return Err(Error::InvalidOption {
                field: "num_return_sequences",
                message: "join one sequence at a time".to_string(),
            });
        }
        prepare(&mut joining)?;
        let id = self.next_id;
        self.next_id += 1;
        if !self.can_join(joining.resumed > 0) {
            return Err(Error::Internal {
                context: "continuous batching",
                message: "a resumed sequence cannot join a batch before its first pass".to_string(),
            });
        }
        if !self.started {
            let mut row = joining.rows.remove(0);
            row.id = id;
            self.rows.push(row);
            return Ok(id);
        }
        // Run the newcomer's prompt alone; its first token comes from that pass.
        joining.rows[0].id = id;
        joining.step(on_token)?;
        self.merge(joining, on_token)?;
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
            .unwrap_or(0)
            / ROW_ALIGNMENT
            * ROW_ALIGNMENT;
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
    pub fn into_generations(mut self) -> Vec<Generation> {
        let stats = self.stats;
        self.rows.sort_by_key(|row| row.id);
        self.rows
            .into_iter()
            .map(|row| row.into_generation(stats))
            .collect()
    }
}
