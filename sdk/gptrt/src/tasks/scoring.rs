//! Log-likelihoods of several continuations of one context, with the context run once.

use crate::error::{Error, Result};
use crate::generate::MAX_ROWS;
use crate::graph::StepInput;
use crate::kv::KvCache;
use crate::model::Model;
use crate::sampling::log_sum_exp;

/// Most logits one batched scoring pass keeps (every position of every row): 256 MB of floats.
const LOGITS_BUDGET: usize = 1 << 26;

impl Model {
    /// Logits for the token after `ids` (one forward pass over the whole sequence, no cache).
    pub fn next_token_logits(&self, ids: &[u32]) -> Result<Vec<f32>> {
        if ids.is_empty() {
            return Err(Error::InvalidArgument {
                name: "input_ids",
                message: "at least one token is needed".to_string(),
            });
        }
        if ids.len() > self.config().n_positions {
            return Err(Error::ContextOverflow {
                prompt_tokens: ids.len(),
                n_positions: self.config().n_positions,
            });
        }
        self.check_ids(ids)?;
        let input_ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        let attention_mask = vec![1i64; ids.len()];
        let position_ids: Vec<i64> = (0..ids.len() as i64).collect();
        let mut cache = KvCache::default();
        let mut logits = Vec::new();
        self.forward(
            &StepInput {
                batch: 1,
                seq: ids.len(),
                input_ids: &input_ids,
                attention_mask: &attention_mask,
                position_ids: &position_ids,
            },
            &mut cache,
            &mut logits,
        )?;
        Ok(logits)
    }

    /// Log-likelihood (natural log) of `continuation` following `context`: the sum over the
    /// continuation's tokens of log-softmax of the model's logits. One forward pass, no cache.
    pub fn score(&self, context: &[u32], continuation: &[u32]) -> Result<f64> {
        let per_token = self.token_logprobs(context, continuation)?;
        Ok(per_token.iter().map(|&lp| f64::from(lp)).sum())
    }

    /// Perplexity of `text`: `exp` of the mean negative log-likelihood of every token after the
    /// first (the first is the context of the second).
    pub fn perplexity(&self, text: &str) -> Result<f64> {
        let ids = self.tokenizer().encode(text)?;
        if ids.len() < 2 {
            return Err(Error::InvalidArgument {
                name: "text",
                message: "perplexity needs at least two tokens".to_string(),
            });
        }
        let logprobs = self.token_logprobs(&ids[..1], &ids[1..])?;
        let mean = logprobs.iter().map(|&lp| f64::from(lp)).sum::<f64>() / logprobs.len() as f64;
        Ok((-mean).exp())
    }

    /// Log-probability of each `continuation` token after `context` (and the tokens before it).
    pub fn token_logprobs(&self, context: &[u32], continuation: &[u32]) -> Result<Vec<f32>> {
        if context.is_empty() {
            return Err(Error::InvalidArgument {
                name: "context",
                message: "at least one context token is needed (GPT-2 uses <|endoftext|>)"
                    .to_string(),
            });
        }
        let ids: Vec<u32> = context.iter().chain(continuation).copied().collect();
        if ids.len() > self.config().n_positions {
            return Err(Error::ContextOverflow {
                prompt_tokens: ids.len(),
                n_positions: self.config().n_positions,
            });
        }
        self.check_ids(&ids)?;
        let input_ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        let attention_mask = vec![1i64; ids.len()];
        let position_ids: Vec<i64> = (0..ids.len() as i64).collect();
        let mut logits = Vec::new();
        self.forward_positions(
            &StepInput {
                batch: 1,
                seq: ids.len(),
                input_ids: &input_ids,
                attention_mask: &attention_mask,
                position_ids: &position_ids,
            },
            &mut KvCache::default(),
            &mut logits,
            true,
        )?;
        let vocab = self.config().vocab_size;
        Ok(continuation
            .iter()
            .enumerate()
            .map(|(i, &token)| {
                let row = &logits[(context.len() + i - 1) * vocab..(context.len() + i) * vocab];
                row[token as usize] - crate::sampling::log_sum_exp(row.iter().copied())
            })
            .collect())
    }

    /// Log-likelihood (natural log) of each of `continuations` after `context`, as
    /// [`Model::score`] gives it, but with the context run through the model once: one forward
    /// pass over the context, then every continuation as a row of one batched pass that continues
    /// from the context's KV cache. (A graph without a KV cache runs each continuation in full.)
    /// An empty continuation scores 0. At most [`MAX_ROWS`] continuations; as many run in one
    /// batched pass as keep its logits within 256 MB, the rest in further passes.
    pub fn score_continuations(
        &self,
        context: &[u32],
        continuations: &[Vec<u32>],
    ) -> Result<Vec<f64>> {
        if context.is_empty() {
            return Err(Error::InvalidArgument {
                name: "context",
                message: "at least one context token is needed (GPT-2 uses <|endoftext|>)"
                    .to_string(),
            });
        }
        let longest = continuations.iter().map(Vec::len).max().unwrap_or(0);
        let n_positions = self.config().n_positions;
        if context.len() + longest > n_positions {
            return Err(Error::ContextOverflow {
                prompt_tokens: context.len() + longest,
                n_positions,
            });
        }
        self.check_ids(context)?;
        for continuation in continuations {
            self.check_ids(continuation)?;
        }
        if continuations.len() > MAX_ROWS {
            return Err(Error::InvalidArgument {
                name: "continuations",
                message: format!(
                    "{} continuations, more than gptrt's limit of {MAX_ROWS} for one context",
                    continuations.len()
                ),
            });
        }
        if !self.uses_cache() || continuations.len() < 2 {
            return continuations
                .iter()
                .map(|c| {
                    if c.is_empty() {
                        Ok(0.0)
                    } else {
                        self.score(context, c)
                    }
                })
                .collect();
        }
        // The batched pass keeps every position's logits: as many rows at once as fit the budget.
        let per_row = longest.max(1) * self.config().vocab_size;
        let rows_per_pass = (LOGITS_BUDGET / per_row).max(1);
        let mut scores = Vec::with_capacity(continuations.len());
        for chunk in continuations.chunks(rows_per_pass) {
            scores.extend(self.score_after_one_context_pass(context, chunk)?);
        }
        Ok(scores)
    }

    /// [`Model::score_continuations`] for checked input: the context once, then `continuations` as
    /// the rows of one batched pass from its KV cache.
    fn score_after_one_context_pass(
        &self,
        context: &[u32],
        continuations: &[Vec<u32>],
    ) -> Result<Vec<f64>> {
        let longest = continuations.iter().map(Vec::len).max().unwrap_or(0);
        let mut cache = KvCache::default();
        let mut last = Vec::new();
        let context_ids: Vec<i64> = context.iter().map(|&id| i64::from(id)).collect();
        let positions: Vec<i64> = (0..context.len() as i64).collect();
        self.forward(
            &StepInput {
                batch: 1,
                seq: context.len(),
                input_ids: &context_ids,
                attention_mask: &vec![1; context.len()],
                position_ids: &positions,
            },
            &mut cache,
            &mut last,
        )?;
        let logprob = |row: &[f32], token: u32| {
            f64::from(row[token as usize] - log_sum_exp(row.iter().copied()))
        };
        let mut scores: Vec<f64> = continuations
            .iter()
            .map(|c| c.first().map_or(0.0, |&first| logprob(&last, first)))
            .collect();
        // Every token of each continuation but its last (whose logits would predict nothing
        // scored), right-padded to the longest; padding is masked and comes after the real tokens,
        // so it changes nothing they see.
        let tail = longest.saturating_sub(1);
        if tail == 0 {
            return Ok(scores);
        }
        let rows = continuations.len();
        cache.select_rows(&vec![0; rows])?;
        let pad = i64::from(self.config().eos_token_id);
        let mut input_ids = Vec::with_capacity(rows * tail);
        let mut attention_mask = Vec::with_capacity(rows * (context.len() + tail));
        for continuation in continuations {
            let fed = &continuation[..continuation.len().saturating_sub(1)];
            input_ids.extend(fed.iter().map(|&id| i64::from(id)));
            input_ids.extend(std::iter::repeat_n(pad, tail - fed.len()));
            attention_mask.extend(std::iter::repeat_n(1, context.len() + fed.len()));
            attention_mask.extend(std::iter::repeat_n(0, tail - fed.len()));
        }
        let position_ids: Vec<i64> = (0..rows)
            .flat_map(|_| (context.len()..context.len() + tail).map(|p| p as i64))
            .collect();
        let mut logits = Vec::new();
        self.forward_positions(
            &StepInput {
                batch: rows,
                seq: tail,
                input_ids: &input_ids,
                attention_mask: &attention_mask,
                position_ids: &position_ids,
            },
            &mut cache,
            &mut logits,
            true,
        )?;
        let vocab = self.config().vocab_size;
        for (row, continuation) in continuations.iter().enumerate() {
            for (step, &token) in continuation.iter().enumerate().skip(1) {
                let at = (row * tail + step - 1) * vocab;
                scores[row] += logprob(&logits[at..at + vocab], token);
            }
        }
        Ok(scores)
    }
}
