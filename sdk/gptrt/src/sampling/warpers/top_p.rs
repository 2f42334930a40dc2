//! `top_p` and `min_p`.

use crate::error::Result;
use crate::sampling::{Candidates, Sampler, SamplerContext};

/// `top_p` (nucleus): keep the smallest set of best tokens whose probability reaches `p`.
/// Hugging Face removes a token when the ascending cumulative probability up to it is
/// `<= 1 - p`, i.e. when the mass of better tokens is already `>= p`.
#[derive(Debug, Clone)]
pub struct TopP {
    /// p in (0, 1]; 1 = off.
    pub p: f32,
    /// Never keep fewer than this.
    pub min_keep: usize,
}

impl Sampler for TopP {
    fn name(&self) -> &str {
        "top_p"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        if self.p >= 1.0 {
            return Ok(());
        }
        let p = self.p;
        // Hugging Face's test is on the ascending cumulative sum: `1 - mass_before > 1 - p`.
        candidates.keep_by_cumulative_mass(self.min_keep.max(1), |mass_before, _| {
            1.0 - mass_before > 1.0 - p
        });
        Ok(())
    }
}

/// `min_p`: drop tokens less probable than `min_p` times the most probable one.
#[derive(Debug, Clone)]
pub struct MinP {
    /// The fraction of the top probability.
    pub min_p: f32,
    /// Never keep fewer than this.
    pub min_keep: usize,
}

impl Sampler for MinP {
    fn name(&self) -> &str {
        "min_p"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        candidates.softmax();
        let top = candidates
            .items()
            .iter()
            .map(|c| c.p)
            .fold(0.0f32, f32::max);
        let threshold = self.min_p * top;
        let min_keep = self.min_keep.max(1);
        let kept = candidates
            .items()
            .iter()
            .filter(|c| c.p >= threshold)
            .count();
        if kept >= min_keep {
            candidates.retain(|c| c.p >= threshold);
        } else {
            candidates.keep_top(min_keep);
        }
        Ok(())
    }
}
