//! What a Rust plugin author implements: the safe traits and the candidates view.

use crate::*;

/// What a Rust sampler plugin sees.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Prompt then generated tokens.
    pub tokens: &'a [u32],
    /// How many of them are the prompt.
    pub prompt_len: usize,
    /// Length at which generation ends.
    pub max_length: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
}

/// Mutable view of the candidates for Rust sampler plugins.
pub struct CandidatesMut<'a> {
    pub(crate) raw: &'a mut GptrtCandidates,
}

impl CandidatesMut<'_> {
    /// The valid candidates.
    pub fn as_mut_slice(&mut self) -> &mut [GptrtCandidate] {
        if self.raw.data.is_null() || self.raw.size == 0 {
            return &mut [];
        }
        // SAFETY: the host hands `size` valid candidates for the duration of `apply`.
        unsafe { std::slice::from_raw_parts_mut(self.raw.data, self.raw.size) }
    }
    /// Keep only the first `n` candidates.
    pub fn truncate(&mut self, n: usize) {
        self.raw.size = self.raw.size.min(n);
    }
    /// Sort by descending logit (ties: lower id first) and mark sorted.
    pub fn sort(&mut self) {
        if !self.raw.sorted {
            self.as_mut_slice()
                .sort_unstable_by(|a, b| b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id)));
            self.raw.sorted = true;
        }
    }
    /// Softmax of the logits into `p`.
    pub fn softmax(&mut self) {
        let items = self.as_mut_slice();
        let max = items
            .iter()
            .map(|c| c.logit)
            .fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for c in items.iter_mut() {
            c.p = if max.is_finite() {
                (c.logit - max).exp()
            } else {
                1.0
            };
            sum += c.p;
        }
        for c in items.iter_mut() {
            c.p /= sum;
        }
        self.raw.probs_valid = true;
    }
    /// Mark logits as changed (order and probabilities no longer known).
    pub fn logits_changed(&mut self) {
        self.raw.sorted = false;
        self.raw.probs_valid = false;
    }
    /// Choose the candidate at `index`.
    pub fn select(&mut self, index: usize) {
        self.raw.selected = index as i64;
    }
    /// End the sequence before this step's token, with `reason` as its stop reason (1 to 48
    /// characters `[a-z0-9_]`, e.g. `c"grammar_complete"`). False when the host is older than
    /// ABI 1.2 and cannot be told (its candidates end before `stop_reason`).
    pub fn stop(&mut self, reason: &'static std::ffi::CStr) -> bool {
        if self.raw.struct_size < std::mem::size_of::<GptrtCandidates>() {
            return false;
        }
        self.raw.stop_reason = reason.as_ptr();
        true
    }
}

/// A sampler written in Rust. Implement it and list the type in [`export_plugins!`].
pub trait SamplerPlugin: Sized + 'static {
    /// Reverse-domain id, e.g. "org.example.mirostat".
    const ID: &'static str;
    /// Human-readable name.
    const NAME: &'static str;
    /// The plugin's own version.
    const VERSION: &'static str;
    /// One line on what it does.
    const DESCRIPTION: &'static str = "";
    /// Where the sampler sits in the chain by default (`GPTRT_SAMPLER_STAGE_*`); users may
    /// override it.
    const STAGE: GptrtSamplerStage = GPTRT_SAMPLER_STAGE_DEFAULT;
    /// Make an instance from a JSON config (empty string: defaults).
    fn create(host: Host, config_json: &str) -> Result<Self, String>;
    /// Work on the candidates.
    fn apply(
        &mut self,
        candidates: &mut CandidatesMut<'_>,
        context: &Context<'_>,
    ) -> Result<(), String>;
    /// Told which token was chosen.
    fn accept(&mut self, _token: u32) {}
    /// Forget per-sequence state.
    fn reset(&mut self) {}
}

/// A task head written in Rust.
pub trait TaskHeadPlugin: Sized + 'static {
    /// Reverse-domain id.
    const ID: &'static str;
    /// Human-readable name.
    const NAME: &'static str;
    /// The plugin's own version.
    const VERSION: &'static str;
    /// One line on what it does.
    const DESCRIPTION: &'static str = "";
    /// Make an instance from a JSON config (empty string: defaults).
    fn create(host: Host, config_json: &str) -> Result<Self, String>;
    /// JSON in, JSON out.
    fn run(&mut self, input_json: &str) -> Result<String, String>;
}
