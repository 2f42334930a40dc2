//! Penalties on tokens already seen: Hugging Face's repetition penalty, OpenAI's presence and
//! frequency penalties.

use crate::error::Result;
use crate::sampling::{Candidates, Sampler, SamplerContext};

/// `repetition_penalty` (CTRL / Hugging Face): every token already in the sequence (prompt
/// included) has its logit divided by the penalty when positive, multiplied when negative.
#[derive(Debug, Clone)]
pub struct RepetitionPenalty {
    /// The penalty (> 0; 1 = off).
    pub penalty: f32,
    seen: Vec<u32>,
}

impl RepetitionPenalty {
    /// A repetition penalty.
    pub fn new(penalty: f32) -> Self {
        RepetitionPenalty {
            penalty,
            seen: Vec::new(),
        }
    }
}

impl Sampler for RepetitionPenalty {
    fn name(&self) -> &str {
        "repetition_penalty"
    }
    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()> {
        self.seen.clear();
        self.seen.extend_from_slice(context.tokens);
        self.seen.sort_unstable();
        self.seen.dedup();
        for &id in &self.seen {
            if let Some(c) = candidates.get_mut(id) {
                c.logit = if c.logit < 0.0 {
                    c.logit * self.penalty
                } else {
                    c.logit / self.penalty
                };
            }
        }
        Ok(())
    }
}

/// OpenAI's presence and frequency penalties over the generated tokens:
/// `logit -= presence * [count > 0] + frequency * count`.
#[derive(Debug, Clone)]
pub struct PresenceFrequencyPenalty {
    /// Subtracted once from every token that already appeared.
    pub presence: f32,
    /// Subtracted once per earlier occurrence.
    pub frequency: f32,
    counts: Vec<(u32, u32)>,
    sorted: Vec<u32>,
}

impl PresenceFrequencyPenalty {
    /// Presence and frequency penalties.
    pub fn new(presence: f32, frequency: f32) -> Self {
        PresenceFrequencyPenalty {
            presence,
            frequency,
            counts: Vec::new(),
            sorted: Vec::new(),
        }
    }
}

impl Sampler for PresenceFrequencyPenalty {
    fn name(&self) -> &str {
        "presence_frequency_penalty"
    }
    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()> {
        self.counts.clear();
        self.sorted.clear();
        self.sorted.extend_from_slice(context.generated());
        self.sorted.sort_unstable();
        for chunk in self.sorted.chunk_by(|a, b| a == b) {
            self.counts.push((chunk[0], chunk.len() as u32));
        }
        for &(id, count) in &self.counts {
            candidates.add_logit(id, -(self.presence + self.frequency * count as f32));
        }
        Ok(())
    }
}
