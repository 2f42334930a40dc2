//! Generating from a sequence whose first positions are already in a KV cache (a session's turn),
//! and running tokens into a cache without generating (a session's prefill).

use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::graph::StepInput;
use crate::kv::KvCache;
use crate::model::Model;

use super::{Generation, Generator};

/// What a resumed generation leaves behind: the whole sequence (context then generated tokens),
/// the cache and how many of the sequence's first tokens it holds, and the generation's result.
pub(crate) struct Resumed {
    pub tokens: Vec<u32>,
    pub cache: KvCache,
    pub cached: usize,
    pub generation: Generation,
}

impl<'m> Generator<'m> {
    /// One sequence, `tokens`, whose first `cached` positions are in `cache`: the first step feeds
    /// only the rest. `cached` must be less than the tokens' count (the last one must run to give
    /// logits) and is ignored (the whole sequence runs) for layouts without a cache, or when the
    /// configuration truncates the prompt.
    pub(crate) fn resume(
        model: &'m Model,
        tokens: Vec<u32>,
        cache: KvCache,
        cached: usize,
        config: &GenerationConfig,
    ) -> Result<Generator<'m>> {
        let len = tokens.len();
        let mut generator = Generator::new(model, vec![tokens], config)?;
        if generator.rows.len() != 1 {
            return Err(Error::InvalidOption {
                field: "num_return_sequences",
                message: "a session's turn generates one sequence".to_string(),
            });
        }
        // A truncated prompt starts at another position: nothing cached can be used.
        let kept = generator.rows[0].prompt_len == len;
        if model.uses_cache() && kept && cached > 0 {
            if cached >= len {
                return Err(Error::Internal {
                    context: "a session",
                    message: format!("{cached} cached positions for a sequence of {len}"),
                });
            }
            generator.cache = cache;
            generator.resumed = cached;
        }
        Ok(generator)
    }

    /// The single row's sequence, cache and result ([`Generator::resume`]'s counterpart).
    pub(crate) fn into_resumed(mut self) -> Result<Resumed> {
        if self.rows.len() != 1 {
            return Err(Error::Internal {
                context: "a session",
                message: format!("a turn ended with {} rows", self.rows.len()),
            });
        }
        let cache = std::mem::take(&mut self.cache);
        let stats = self.stats;
        let row = self.rows.remove(0);
        let cached = if self.model.uses_cache() && !cache.is_empty() {
            row.fed_ids.len()
        } else {
            0
        };
        let tokens = row.tokens.clone();
        Ok(Resumed {
            tokens,
            cache: if cached > 0 {
                cache
            } else {
                KvCache::default()
            },
            cached,
            generation: row.into_generation(stats),
        })
    }

    /// Positions fed to the model by this generator so far, all passes.
    pub(crate) fn positions_run(&self) -> usize {
        self.fed
    }

    /// Whether row `id` has stopped.
    pub(crate) fn is_stopped(&self, id: usize) -> bool {
        self.rows
            .iter()
            .any(|row| row.id == id && row.stop.is_some())
    }

    /// Whether a sequence (`resumed`: one that continues a kept cache) may join now: after the
    /// batch's first pass any may (its own pass runs alone); before it, only a new prompt joins a
    /// batch of new prompts (their prompts then share that first pass).
    pub(crate) fn can_join(&self, resumed: bool) -> bool {
        self.started || (!resumed && self.resumed == 0)
    }

    /// A stopped row's whole sequence and a copy of its cache (its own positions, without the
    /// batch's left padding), before [`Generator::retire`] takes it out of the batch.
    pub(crate) fn stopped_row_state(&self, id: usize) -> Result<(Vec<u32>, KvCache, usize)> {
        let (index, row) = self
            .rows
            .iter()
            .enumerate()
            .find(|(_, row)| row.id == id)
            .ok_or_else(|| Error::Internal {
                context: "continuous batching",
                message: format!("row {id} is not in the batch"),
            })?;
        if !self.model.uses_cache() || self.cache.is_empty() || !self.started {
            return Ok((row.tokens.clone(), KvCache::default(), 0));
        }
        let padding = row.mask.iter().take_while(|&&m| m == 0).count();
        let mut cache = self.cache.row_copy(index, padding)?;
        // Passes after the row stopped fed it masked padding: not part of its sequence.
        cache.truncate(row.mask.iter().filter(|&&m| m == 1).count())?;
        let cached = cache.positions();
        Ok((row.tokens.clone(), cache, cached))
    }
}

/// Run `tokens[cached..]` through the model into `cache` (which holds the first `cached`), without
/// generating. Returns how many positions the cache then holds (0 for a layout without a cache,
/// which recomputes the whole sequence at each step instead).
pub(crate) fn prefill(
    model: &Model,
    tokens: &[u32],
    cache: &mut KvCache,
    cached: usize,
) -> Result<usize> {
    if !model.uses_cache() || cached >= tokens.len() {
        return Ok(if model.uses_cache() { cached } else { 0 });
    }
    model.check_ids(tokens)?;
    let n_positions = model.config().n_positions;
    if tokens.len() > n_positions {
        return Err(Error::ContextOverflow {
            prompt_tokens: tokens.len(),
            n_positions,
        });
    }
    let input_ids: Vec<i64> = tokens[cached..].iter().map(|&id| i64::from(id)).collect();
    let attention_mask = vec![1i64; tokens.len()];
    let position_ids: Vec<i64> = (cached as i64..tokens.len() as i64).collect();
    let mut logits = Vec::new();
    model.forward(
        &StepInput {
            batch: 1,
            seq: input_ids.len(),
            input_ids: &input_ids,
            attention_mask: &attention_mask,
            position_ids: &position_ids,
        },
        cache,
        &mut logits,
    )?;
    Ok(tokens.len())
}
