//! Bans: `suppress_tokens`, `begin_suppress_tokens`; and `remove_invalid_values`.

use crate::error::Result;
use crate::sampling::{Candidates, Sampler, SamplerContext};

/// `suppress_tokens`: these tokens are never generated.
#[derive(Debug, Clone)]
pub struct SuppressTokens {
    /// Banned ids.
    pub ids: Vec<u32>,
}

impl Sampler for SuppressTokens {
    fn name(&self) -> &str {
        "suppress_tokens"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        self.ids.iter().for_each(|&id| candidates.ban(id));
        Ok(())
    }
}

/// `begin_suppress_tokens`: these tokens are banned as the first generated token only.
#[derive(Debug, Clone)]
pub struct SuppressTokensAtBegin {
    /// Banned ids.
    pub ids: Vec<u32>,
}

impl Sampler for SuppressTokensAtBegin {
    fn name(&self) -> &str {
        "begin_suppress_tokens"
    }
    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()> {
        if context.tokens.len() == context.prompt_len {
            self.ids.iter().for_each(|&id| candidates.ban(id));
        }
        Ok(())
    }
}

/// `remove_invalid_values`: NaN becomes 0 and infinities the largest finite values, so a broken
/// graph cannot poison sampling.
#[derive(Debug, Clone, Default)]
pub struct RemoveInvalidValues;

impl Sampler for RemoveInvalidValues {
    fn name(&self) -> &str {
        "remove_invalid_values"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        candidates.set_logits(|c| {
            if c.logit.is_nan() {
                0.0
            } else if c.logit == f32::INFINITY {
                f32::MAX
            } else if c.logit == f32::NEG_INFINITY {
                f32::MIN
            } else {
                c.logit
            }
        });
        Ok(())
    }
}
