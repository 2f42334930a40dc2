//! `epsilon_cutoff` and `eta_cutoff`.

use crate::error::Result;
use crate::sampling::{Candidates, Sampler, SamplerContext};

use crate::sampling::warpers::cut_below;

/// `epsilon_cutoff` (truncation sampling): drop tokens with probability below epsilon.
#[derive(Debug, Clone)]
pub struct EpsilonCutoff {
    /// Epsilon in (0, 1).
    pub epsilon: f32,
    /// Never keep fewer than this.
    pub min_keep: usize,
}

impl Sampler for EpsilonCutoff {
    fn name(&self) -> &str {
        "epsilon_cutoff"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        candidates.softmax();
        cut_below(candidates, self.epsilon, self.min_keep);
        Ok(())
    }
}

/// `eta_cutoff`: drop tokens below `min(eta, sqrt(eta) * exp(-entropy))`.
#[derive(Debug, Clone)]
pub struct EtaCutoff {
    /// Eta in (0, 1).
    pub epsilon: f32,
    /// Never keep fewer than this.
    pub min_keep: usize,
}

impl Sampler for EtaCutoff {
    fn name(&self) -> &str {
        "eta_cutoff"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        candidates.softmax();
        let entropy: f32 = -candidates
            .items()
            .iter()
            .filter(|c| c.p > 0.0)
            .map(|c| c.p * c.p.ln())
            .sum::<f32>();
        let eta = self.epsilon.min(self.epsilon.sqrt() * (-entropy).exp());
        cut_below(candidates, eta, self.min_keep);
        Ok(())
    }
}
