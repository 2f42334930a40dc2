//! `typical_p`.

use crate::error::Result;
use crate::sampling::{log_sum_exp, Candidate, Candidates, Sampler, SamplerContext};

/// `typical_p` (locally typical sampling): keep the tokens whose surprise is closest to the
/// entropy until their mass reaches `mass`.
#[derive(Debug, Clone)]
pub struct Typical {
    /// Mass in (0, 1]; 1 = off.
    pub mass: f32,
    /// Never keep fewer than this.
    pub min_keep: usize,
}

impl Sampler for Typical {
    fn name(&self) -> &str {
        "typical_p"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        if self.mass >= 1.0 {
            return Ok(());
        }
        candidates.softmax();
        let items = candidates.items();
        let log_sum = log_sum_exp(items.iter().map(|c| c.logit));
        let entropy: f32 = -items
            .iter()
            .filter(|c| c.p > 0.0)
            .map(|c| (c.logit - log_sum) * c.p)
            .sum::<f32>();
        let (mass, min_keep) = (self.mass, self.min_keep.max(1));
        candidates.rebuild(|items, kept| {
            // Order by |surprise - entropy| ascending; `p` carries the shifted score meanwhile.
            kept.extend(items.iter().map(|c| Candidate {
                id: c.id,
                logit: c.logit,
                p: (-(c.logit - log_sum) - entropy).abs(),
            }));
            kept.sort_by(|a, b| a.p.total_cmp(&b.p).then(a.id.cmp(&b.id)));
            let mut cumulative = 0.0f32;
            let mut last = 0;
            for (i, c) in kept.iter().enumerate() {
                let p = ((c.logit - log_sum).exp()).min(1.0);
                cumulative += p;
                if cumulative < mass {
                    last = i + 1;
                }
            }
            let last = last.min(kept.len() - 1);
            let cutoff = kept[last].p;
            let keep_count = kept
                .iter()
                .take_while(|c| c.p <= cutoff)
                .count()
                .max(min_keep);
            kept.truncate(keep_count);
            kept.iter_mut().for_each(|c| c.p = 0.0);
        });
        Ok(())
    }
}
