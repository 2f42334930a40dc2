//! The sampler chain: small objects applied in order to the next-token candidates, ending in a
//! selector, in the spirit of llama.cpp's `llama_sampler_i`. Built-in processors follow Hugging
//! Face's semantics exactly; sampler plugins implement the same [`Sampler`] trait.
//!
//! Processors that only change or mask logits (penalties, n-gram bans, biases) keep every token
//! and set banned ones to `-inf`; warpers that cut the distribution (top-k, top-p, ...) drop
//! candidates, which is the same thing for sampling and keeps later links cheap.
//!
//! The chain runs in Hugging Face's stage order: logits processors ([`processors`]: penalties,
//! bans, biases), then, when sampling, warpers ([`warpers`]: temperature, top-k, top-p...), then
//! one selector ([`selectors`]: greedy, the seeded draw). Every link works on [`Candidates`]
//! through its API, which keeps the order flags true.

use crate::error::Result;

mod candidates;
mod chain;
pub mod processors;
pub mod selectors;
mod stage;
pub mod warpers;

pub(crate) use candidates::best_first;
pub use candidates::{Candidate, Candidates};
pub use chain::SamplerChain;
pub use processors::{
    ForcedEos, MinLength, NoRepeatNgram, PresenceFrequencyPenalty, RemoveInvalidValues,
    RepetitionPenalty, SequenceBias, SuppressTokens, SuppressTokensAtBegin,
};
pub(crate) use selectors::is_allowed;
pub use selectors::{Dist, Greedy, Rng};
pub use stage::SamplerStage;
pub use warpers::{
    EpsilonCutoff, EtaCutoff, LogitNormalization, MinP, Temperature, TopK, TopP, Typical,
};

/// `log(sum(exp(v)))`, computed stably (the log-softmax normaliser); `-inf` when every value is.
pub fn log_sum_exp(values: impl Iterator<Item = f32> + Clone) -> f32 {
    let max = values.clone().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    values.map(|v| (v - max).exp()).sum::<f32>().ln() + max
}

/// What a sampler sees besides the candidates.
#[derive(Debug, Clone, Copy)]
pub struct SamplerContext<'a> {
    /// Every token of the sequence so far: prompt then generated.
    pub tokens: &'a [u32],
    /// How many of `tokens` are the prompt.
    pub prompt_len: usize,
    /// Total length (prompt + generated) at which generation ends.
    pub max_length: usize,
    /// The model's vocabulary size (every candidate id is below it).
    pub vocab_size: usize,
}

impl SamplerContext<'_> {
    /// The generated tokens so far.
    pub fn generated(&self) -> &[u32] {
        &self.tokens[self.prompt_len.min(self.tokens.len())..]
    }
}

/// A link of the sampler chain. Keep implementations small: this is the interface sampler plugins
/// implement too.
pub trait Sampler: Send {
    /// Short name for errors and logs.
    fn name(&self) -> &str;
    /// Change, drop or select candidates.
    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()>;
    /// Told which token was finally chosen.
    fn accept(&mut self, _token: u32) {}
    /// Forget per-sequence state.
    fn reset(&mut self) {}
    /// True for a selector that only picks the highest logit (the lowest id on ties) and changes
    /// nothing else. A chain that is only such a link picks straight from the logits instead of
    /// building its candidates: the candidate buffer (12 bytes a token) is written to memory
    /// that the forward pass just pushed out of the cache, which made greedy decoding's chain cost
    /// ~0.14 ms a token instead of ~0.04.
    fn selects_highest_logit(&self) -> bool {
        false
    }
}
