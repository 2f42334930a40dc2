//! Length rules: `min_length` / `min_new_tokens`, `forced_eos_token_id`.

use crate::error::Result;
use crate::sampling::{Candidates, Sampler, SamplerContext};

/// `min_new_tokens` / `min_length`: end tokens are banned until the sequence is long enough.
#[derive(Debug, Clone)]
pub struct MinLength {
    /// Generated tokens required before an end token may come (`min_new_tokens`), or total length
    /// when `count_prompt` (`min_length`).
    pub min: usize,
    /// Whether `min` counts the prompt too.
    pub count_prompt: bool,
    /// End tokens.
    pub eos: Vec<u32>,
}

impl Sampler for MinLength {
    fn name(&self) -> &str {
        if self.count_prompt {
            "min_length"
        } else {
            "min_new_tokens"
        }
    }
    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()> {
        let length = if self.count_prompt {
            context.tokens.len()
        } else {
            context.generated().len()
        };
        if length < self.min {
            self.eos.iter().for_each(|&id| candidates.ban(id));
        }
        Ok(())
    }
}

/// `forced_eos_token_id`: the last token before `max_length` (or the context limit) must end.
#[derive(Debug, Clone)]
pub struct ForcedEos {
    /// End tokens allowed at the last position.
    pub eos: Vec<u32>,
}

impl Sampler for ForcedEos {
    fn name(&self) -> &str {
        "forced_eos_token_id"
    }
    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()> {
        if context.tokens.len() + 1 == context.max_length {
            candidates.set_logits(|c| {
                if self.eos.contains(&c.id) {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            });
        }
        Ok(())
    }
}
