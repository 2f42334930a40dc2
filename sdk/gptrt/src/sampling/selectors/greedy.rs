//! Greedy decoding: the most likely token.

use crate::error::Result;
use crate::sampling::{Candidates, Sampler, SamplerContext};

use crate::sampling::selectors::{highest, max_ignoring_nan};

/// Pick the most likely candidate (the lowest id on ties, as `torch.argmax`).
#[derive(Debug, Clone, Default)]
pub struct Greedy;

impl Sampler for Greedy {
    fn name(&self) -> &str {
        "greedy"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        let items = candidates.items();
        let logits = items.iter().map(|c| c.logit);
        let best = if candidates.is_indexed() {
            highest(logits)
        } else {
            let max = logits.fold(f32::NEG_INFINITY, max_ignoring_nan);
            items
                .iter()
                .enumerate()
                // nothing above -inf: every candidate ties
                .filter(|(_, c)| c.logit == max || max == f32::NEG_INFINITY)
                .min_by_key(|(_, c)| c.id)
                .map(|(i, _)| i)
        };
        if let Some(i) = best {
            candidates.select(i);
        }
        Ok(())
    }
    fn selects_highest_logit(&self) -> bool {
        true
    }
}
