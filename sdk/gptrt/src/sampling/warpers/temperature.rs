//! `temperature`.

use crate::error::Result;
use crate::sampling::{Candidates, Sampler, SamplerContext};

/// `temperature`: divide every logit.
#[derive(Debug, Clone)]
pub struct Temperature(pub f32);

impl Sampler for Temperature {
    fn name(&self) -> &str {
        "temperature"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        let t = self.0;
        candidates.map_logits_keeping_order(|logit| logit / t);
        Ok(())
    }
}
