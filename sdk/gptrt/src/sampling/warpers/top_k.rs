//! `top_k`.

use crate::error::Result;
use crate::sampling::{Candidates, Sampler, SamplerContext};

/// `top_k`: keep the k best tokens, plus any tied with the k-th (as `torch.topk` thresholds).
#[derive(Debug, Clone)]
pub struct TopK {
    /// k (0 = off).
    pub k: usize,
    /// Never keep fewer than this.
    pub min_keep: usize,
}

impl Sampler for TopK {
    fn name(&self) -> &str {
        "top_k"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        let k = self.k.max(self.min_keep);
        if self.k == 0 || k >= candidates.len() {
            return Ok(());
        }
        let threshold = candidates.top_scratch(k)[k - 1].logit;
        candidates.retain(|c| c.logit >= threshold);
        candidates.sort();
        Ok(())
    }
}
