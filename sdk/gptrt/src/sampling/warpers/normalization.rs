//! `renormalize_logits`.

use crate::error::Result;
use crate::sampling::{log_sum_exp, Candidates, Sampler, SamplerContext};

/// `renormalize_logits`: replace the logits by their log-softmax (Hugging Face applies it last).
#[derive(Debug, Clone, Default)]
pub struct LogitNormalization;

impl Sampler for LogitNormalization {
    fn name(&self) -> &str {
        "renormalize_logits"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        let log_sum = log_sum_exp(candidates.items().iter().map(|c| c.logit));
        if log_sum == f32::NEG_INFINITY {
            return Ok(());
        }
        candidates.map_logits_keeping_order(|logit| logit - log_sum);
        Ok(())
    }
}
