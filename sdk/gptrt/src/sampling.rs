//! The sampler chain: small objects applied in order to the next-token candidates, ending in a
//! selector, in the spirit of llama.cpp's `llama_sampler_i`. Built-in processors follow Hugging
//! Face's semantics exactly; sampler plugins implement the same [`Sampler`] trait.
//!
//! Processors that only change or mask logits (penalties, n-gram bans, biases) keep every token
//! and set banned ones to `-inf`; warpers that cut the distribution (top-k, top-p, ...) drop
//! candidates, which is the same thing for sampling and keeps later links cheap.

use crate::config::GenerationConfig;
use crate::error::{Error, Result};

/// One token under consideration. Same layout as the plugin ABI's `GptrtCandidate`, so sampler
/// plugins work on the host's buffer without a copy.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Token id.
    pub id: u32,
    /// Current (processed) logit.
    pub logit: f32,
    /// Probability; valid only after [`Candidates::softmax`].
    pub p: f32,
}

/// The candidates for the next token. Starts as the whole vocabulary in id order.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    items: Vec<Candidate>,
    /// Items are sorted by descending logit (ties: lower id first).
    sorted: bool,
    /// `items[i].id == i` for every i (the whole vocabulary in id order).
    indexed: bool,
    /// Set by a selector: the index of the chosen item.
    selected: Option<usize>,
    /// Scratch space reused between tokens.
    scratch: Vec<Candidate>,
}

fn by_logit_desc(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

impl Candidates {
    /// Candidates for a whole vocabulary of logits (reuses the buffers).
    pub fn reset(&mut self, logits: &[f32]) {
        self.items.clear();
        self.items
            .extend(logits.iter().enumerate().map(|(id, &logit)| Candidate {
                id: id as u32,
                logit,
                p: 0.0,
            }));
        self.sorted = false;
        self.indexed = true;
        self.selected = None;
    }

    /// Build from explicit candidates (any order).
    pub fn from_items(items: Vec<Candidate>) -> Candidates {
        let indexed = items.iter().enumerate().all(|(i, c)| c.id as usize == i);
        Candidates {
            items,
            sorted: false,
            indexed,
            selected: None,
            scratch: Vec::new(),
        }
    }

    /// The candidates, in their current order.
    pub fn items(&self) -> &[Candidate] {
        &self.items
    }

    /// Mutable access; marks the order as unknown.
    pub fn items_mut(&mut self) -> &mut Vec<Candidate> {
        self.sorted = false;
        self.indexed = false;
        self.selected = None;
        &mut self.items
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no candidate is left.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether the items are sorted by descending logit.
    pub fn is_sorted(&self) -> bool {
        self.sorted
    }

    /// The candidate for a token id, if it is still a candidate.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut Candidate> {
        if self.indexed {
            return self.items.get_mut(id as usize);
        }
        self.items.iter_mut().find(|c| c.id == id)
    }

    /// Add `delta` to a token's logit (no-op when it is no longer a candidate).
    pub fn add_logit(&mut self, id: u32, delta: f32) {
        if let Some(c) = self.get_mut(id) {
            c.logit += delta;
        }
    }

    /// Ban a token: its logit becomes `-inf`.
    pub fn ban(&mut self, id: u32) {
        if let Some(c) = self.get_mut(id) {
            c.logit = f32::NEG_INFINITY;
        }
    }

    /// Sort by descending logit, lower id first on ties.
    pub fn sort(&mut self) {
        if !self.sorted {
            self.items.sort_unstable_by(by_logit_desc);
            self.sorted = true;
            self.indexed = false;
        }
    }

    /// Keep the `n` best candidates (sorted), using selection rather than a full sort.
    pub fn keep_top(&mut self, n: usize) {
        if n < self.items.len() {
            self.items.select_nth_unstable_by(n, by_logit_desc);
            self.items.truncate(n);
            self.sorted = false;
            self.indexed = false;
        }
        self.sort();
    }

    /// Compute `p` for every candidate (softmax over the current logits, in f32 like torch).
    pub fn softmax(&mut self) {
        let max = self
            .items
            .iter()
            .map(|c| c.logit)
            .fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            // Every token is banned: uniform, so warpers keep working; the chain refuses the
            // choice afterwards.
            let p = 1.0 / self.items.len().max(1) as f32;
            self.items.iter_mut().for_each(|c| c.p = p);
            return;
        }
        let mut sum = 0.0f32;
        for c in &mut self.items {
            c.p = (c.logit - max).exp();
            sum += c.p;
        }
        for c in &mut self.items {
            c.p /= sum;
        }
    }

    /// Drop every candidate for which `remove` says so.
    pub fn retain(&mut self, mut keep: impl FnMut(&Candidate) -> bool) {
        let before = self.items.len();
        self.items.retain(|c| keep(c));
        if self.items.len() != before {
            self.indexed = false;
        }
    }

    /// Record the selector's choice (an index into [`Candidates::items`]).
    pub fn select(&mut self, index: usize) {
        self.selected = Some(index);
    }

    /// The chosen token, once a selector ran.
    pub fn selected(&self) -> Option<u32> {
        self.selected.and_then(|i| self.items.get(i)).map(|c| c.id)
    }

    /// Write the candidates back as a full logits vector (`-inf` for dropped tokens).
    pub fn to_logits(&self, vocab_size: usize) -> Vec<f32> {
        let mut out = vec![f32::NEG_INFINITY; vocab_size];
        for c in &self.items {
            if let Some(slot) = out.get_mut(c.id as usize) {
                *slot = c.logit;
            }
        }
        out
    }

    /// The `n` best candidates by logit, best first, in a reused scratch buffer.
    fn top_scratch(&mut self, n: usize) -> &[Candidate] {
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.items);
        let n = n.min(self.scratch.len());
        if n < self.scratch.len() && n > 0 {
            self.scratch.select_nth_unstable_by(n - 1, by_logit_desc);
            self.scratch.truncate(n);
        }
        self.scratch.sort_unstable_by(by_logit_desc);
        &self.scratch
    }
}

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

/// An ordered list of samplers, the last of which selects.
#[derive(Default)]
pub struct SamplerChain {
    samplers: Vec<Box<dyn Sampler>>,
    candidates: Candidates,
}

impl std::fmt::Debug for SamplerChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.samplers.iter().map(|s| s.name()))
            .finish()
    }
}

impl SamplerChain {
    /// An empty chain.
    pub fn new() -> SamplerChain {
        SamplerChain::default()
    }

    /// Append a sampler.
    pub fn push(&mut self, sampler: impl Sampler + 'static) -> &mut Self {
        self.samplers.push(Box::new(sampler));
        self
    }

    /// Append a boxed sampler.
    pub fn push_boxed(&mut self, sampler: Box<dyn Sampler>) -> &mut Self {
        self.samplers.push(sampler);
        self
    }

    /// Insert a sampler just before the chain's last link (its selector), or at the end of an
    /// empty chain: where plugin samplers go in a chain built by [`SamplerChain::from_config`].
    pub fn insert_before_selector(&mut self, sampler: Box<dyn Sampler>) -> &mut Self {
        let at = self.samplers.len().saturating_sub(1);
        self.samplers.insert(at, sampler);
        self
    }

    /// Names of the links, in order.
    pub fn names(&self) -> Vec<&str> {
        self.samplers.iter().map(|s| s.name()).collect()
    }

    /// Run every link over `logits` and return the chosen token. Links after a selection still run
    /// only if nothing selected yet. Choosing a banned token (every candidate left at `-inf`, or a
    /// selector that picks one) is an [`Error::Sampler`] naming the link that banned the rest.
    pub fn sample(&mut self, logits: &[f32], context: &SamplerContext<'_>) -> Result<u32> {
        if let [only] = self.samplers.as_mut_slice() {
            if only.selects_highest_logit() {
                self.candidates.reset(&[]);
                let token = highest(logits.iter().copied()).ok_or_else(|| Error::Sampler {
                    sampler: only.name().to_string(),
                    message: "no logits to choose from".to_string(),
                })?;
                if !is_allowed(logits[token]) {
                    let name = only.name().to_string();
                    return Err(self.banned_choice(logits, context, 0, name, token as u32));
                }
                let token = token as u32;
                only.accept(token);
                return Ok(token);
            }
        }
        self.candidates.reset(logits);
        let selector = self.run_links(context)?;
        let chosen = self
            .candidates
            .selected
            .and_then(|i| self.candidates.items.get(i))
            .copied();
        let (Some(selector), Some(chosen)) = (selector, chosen) else {
            return Err(Error::Sampler {
                sampler: self
                    .samplers
                    .last()
                    .map_or("<empty chain>", |s| s.name())
                    .to_string(),
                message:
                    "the chain ended without selecting a token (add a selector: greedy or dist)"
                        .to_string(),
            });
        };
        if !is_allowed(chosen.logit) {
            let name = self.samplers[selector].name().to_string();
            return Err(self.banned_choice(logits, context, selector, name, chosen.id));
        }
        for sampler in &mut self.samplers {
            sampler.accept(chosen.id);
        }
        Ok(chosen.id)
    }

    /// Run every link over the current candidates (no selection required).
    pub fn apply(&mut self, context: &SamplerContext<'_>) -> Result<()> {
        self.run_links(context).map(|_| ())
    }

    /// Run the links until one selects; returns its index.
    fn run_links(&mut self, context: &SamplerContext<'_>) -> Result<Option<usize>> {
        if self.candidates.selected.is_some() {
            return Ok(None);
        }
        for (index, sampler) in self.samplers.iter_mut().enumerate() {
            sampler.apply(&mut self.candidates, context)?;
            if self.candidates.is_empty() {
                return Err(Error::Sampler {
                    sampler: sampler.name().to_string(),
                    message: "removed every candidate".to_string(),
                });
            }
            if self.candidates.selected.is_some() {
                return Ok(Some(index));
            }
        }
        Ok(None)
    }

    /// The error for a choice of a banned token by `selector_name`. Only on this path, the first
    /// `links` links run again on fresh candidates from `logits`, to name the first one after which
    /// no token was allowed: the chain keeps no history, as checking after every link would cost a
    /// scan of the vocabulary per link and token.
    pub(crate) fn banned_choice(
        &mut self,
        logits: &[f32],
        context: &SamplerContext<'_>,
        links: usize,
        selector_name: String,
        token: u32,
    ) -> Error {
        let mut probe = Candidates::default();
        probe.reset(logits);
        let allowed = |c: &Candidates| c.items.iter().any(|c| is_allowed(c.logit));
        if !allowed(&probe) {
            return Error::Sampler {
                sampler: selector_name,
                message: format!(
                    "every one of the model's {} logits is -inf or NaN: no token can be chosen",
                    logits.len()
                ),
            };
        }
        let end = links.min(self.samplers.len());
        for link in &mut self.samplers[..end] {
            if link.apply(&mut probe, context).is_err() || probe.is_empty() {
                break;
            }
            if !allowed(&probe) {
                return Error::Sampler {
                    sampler: link.name().to_string(),
                    message: format!(
                        "banned every token still allowed ({} candidates, all -inf or NaN), so \
                         `{selector_name}` has nothing to choose from; ban fewer tokens",
                        probe.len()
                    ),
                };
            }
        }
        Error::Sampler {
            sampler: selector_name,
            message: format!(
                "chose token {token}, whose logit is -inf or NaN (banned by an earlier link)"
            ),
        }
    }

    /// The candidates as the last call left them (none after [`SamplerChain::sample`] with a
    /// chain that is only [`Greedy`]: it picks straight from the logits).
    pub fn candidates(&self) -> &Candidates {
        &self.candidates
    }

    /// Mutable candidates, for driving the chain by hand with [`SamplerChain::apply`].
    pub fn candidates_mut(&mut self) -> &mut Candidates {
        &mut self.candidates
    }

    /// Reset every link.
    pub fn reset(&mut self) {
        self.samplers.iter_mut().for_each(|s| s.reset());
    }
}

// ---------------------------------------------------------------------------------------------
// Logits processors (Hugging Face `LogitsProcessor`s): change or mask, never drop.

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

/// `no_repeat_ngram_size`: ban any token that would repeat an n-gram already in the sequence.
#[derive(Debug, Clone)]
pub struct NoRepeatNgram {
    /// n (>= 1).
    pub size: usize,
}

impl Sampler for NoRepeatNgram {
    fn name(&self) -> &str {
        "no_repeat_ngram_size"
    }
    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()> {
        let tokens = context.tokens;
        let n = self.size;
        if n == 0 || tokens.len() + 1 < n {
            return Ok(());
        }
        let prefix = &tokens[tokens.len() + 1 - n..];
        for window in tokens.windows(n) {
            if &window[..n - 1] == prefix {
                candidates.ban(window[n - 1]);
            }
        }
        Ok(())
    }
}

/// `sequence_bias` (and `bad_words_ids` as `-inf` biases): add a bias to a token when the
/// sequence ends with the rest of a biased sequence.
#[derive(Debug, Clone)]
pub struct SequenceBias {
    /// `(token sequence, bias)` pairs.
    pub biases: Vec<(Vec<u32>, f32)>,
    name: &'static str,
}

impl SequenceBias {
    /// Biases for token sequences (`sequence_bias`).
    pub fn new(biases: Vec<(Vec<u32>, f32)>) -> Self {
        SequenceBias {
            biases,
            name: "sequence_bias",
        }
    }

    /// Bans for token sequences (`bad_words_ids`); a ban that is exactly an end token is ignored,
    /// as in Hugging Face.
    pub fn bad_words(bad_words: &[Vec<u32>], eos: &[u32]) -> Self {
        let biases = bad_words
            .iter()
            .filter(|seq| !(seq.len() == 1 && eos.contains(&seq[0])))
            .map(|seq| (seq.clone(), f32::NEG_INFINITY))
            .collect();
        SequenceBias {
            biases,
            name: "bad_words_ids",
        }
    }
}

impl Sampler for SequenceBias {
    fn name(&self) -> &str {
        self.name
    }
    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()> {
        let tokens = context.tokens;
        for (sequence, bias) in &self.biases {
            let Some((&last, prefix)) = sequence.split_last() else {
                continue;
            };
            if sequence.len() > 1 && (sequence.len() > tokens.len() || !tokens.ends_with(prefix)) {
                continue;
            }
            candidates.add_logit(last, *bias);
        }
        Ok(())
    }
}

/// `suppress_tokens`: these tokens are never generated.
#[derive(Debug, Clone)]
pub struct SuppressTokens {
    /// Banned ids.
    pub ids: Vec<u32>,
}

impl Sampler for SuppressTokens {
    fn name(&self) -> &str {
        "suppress_tokens"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        self.ids.iter().for_each(|&id| candidates.ban(id));
        Ok(())
    }
}

/// `begin_suppress_tokens`: these tokens are banned as the first generated token only.
#[derive(Debug, Clone)]
pub struct SuppressTokensAtBegin {
    /// Banned ids.
    pub ids: Vec<u32>,
}

impl Sampler for SuppressTokensAtBegin {
    fn name(&self) -> &str {
        "begin_suppress_tokens"
    }
    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()> {
        if context.tokens.len() == context.prompt_len {
            self.ids.iter().for_each(|&id| candidates.ban(id));
        }
        Ok(())
    }
}

/// `remove_invalid_values`: NaN becomes 0 and infinities the largest finite values, so a broken
/// graph cannot poison sampling.
#[derive(Debug, Clone, Default)]
pub struct RemoveInvalidValues;

impl Sampler for RemoveInvalidValues {
    fn name(&self) -> &str {
        "remove_invalid_values"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        for c in candidates.items.iter_mut() {
            if c.logit.is_nan() {
                c.logit = 0.0;
            } else if c.logit == f32::INFINITY {
                c.logit = f32::MAX;
            } else if c.logit == f32::NEG_INFINITY {
                c.logit = f32::MIN;
            }
        }
        Ok(())
    }
}

/// `min_new_tokens` / `min_length`: end tokens are banned until the sequence is long enough.
#[derive(Debug, Clone)]
pub struct MinLength {
    /// Generated tokens required before an end token may come (`min_new_tokens`), or total length
    /// when `count_prompt` (`min_length`).
    pub min: usize,
    /// Whether `min` counts the prompt too.
    pub count_prompt: bool,
    /// End tokens.
    pub eos: Vec<u32>,
}

impl Sampler for MinLength {
    fn name(&self) -> &str {
        if self.count_prompt {
            "min_length"
        } else {
            "min_new_tokens"
        }
    }
    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()> {
        let length = if self.count_prompt {
            context.tokens.len()
        } else {
            context.generated().len()
        };
        if length < self.min {
            self.eos.iter().for_each(|&id| candidates.ban(id));
        }
        Ok(())
    }
}

/// `forced_eos_token_id`: the last token before `max_length` (or the context limit) must end.
#[derive(Debug, Clone)]
pub struct ForcedEos {
    /// End tokens allowed at the last position.
    pub eos: Vec<u32>,
}

impl Sampler for ForcedEos {
    fn name(&self) -> &str {
        "forced_eos_token_id"
    }
    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()> {
        if context.tokens.len() + 1 == context.max_length {
            for c in candidates.items.iter_mut() {
                c.logit = if self.eos.contains(&c.id) {
                    0.0
                } else {
                    f32::NEG_INFINITY
                };
            }
            candidates.sorted = false;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Warpers (Hugging Face `LogitsWarper`s): reshape or cut the distribution.

/// `temperature`: divide every logit.
#[derive(Debug, Clone)]
pub struct Temperature(pub f32);

impl Sampler for Temperature {
    fn name(&self) -> &str {
        "temperature"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        let t = self.0;
        let sorted = candidates.sorted;
        let indexed = candidates.indexed;
        candidates.items.iter_mut().for_each(|c| c.logit /= t);
        candidates.sorted = sorted;
        candidates.indexed = indexed;
        Ok(())
    }
}

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

/// Softmax over the current candidates, then keep the most probable ones, best first, while
/// `keep(mass_before, candidate)` says so (at least `min_keep`). Selection grows geometrically, so
/// a peaked distribution never sorts the whole vocabulary.
fn keep_by_cumulative_mass(
    candidates: &mut Candidates,
    min_keep: usize,
    keep: impl Fn(f32, &Candidate) -> bool,
) {
    candidates.softmax();
    let total = candidates.len();
    let mut window = 64.min(total);
    loop {
        let top = candidates.top_scratch(window);
        let mut mass = 0.0f32;
        let mut kept = None;
        for (i, c) in top.iter().enumerate() {
            if i >= min_keep && !keep(mass, c) {
                kept = Some(i);
                break;
            }
            mass += c.p;
        }
        match kept {
            Some(n) => {
                candidates.items.clear();
                candidates.items.extend_from_slice(&candidates.scratch[..n]);
                candidates.sorted = true;
                candidates.indexed = false;
                return;
            }
            None if window == total => {
                std::mem::swap(&mut candidates.items, &mut candidates.scratch);
                candidates.sorted = true;
                candidates.indexed = false;
                return;
            }
            None => window = (window * 8).min(total),
        }
    }
}

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
        keep_by_cumulative_mass(candidates, self.min_keep.max(1), |mass_before, _| {
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
        let top = candidates.items.iter().map(|c| c.p).fold(0.0f32, f32::max);
        let threshold = self.min_p * top;
        let min_keep = self.min_keep.max(1);
        let kept = candidates.items.iter().filter(|c| c.p >= threshold).count();
        if kept >= min_keep {
            candidates.retain(|c| c.p >= threshold);
        } else {
            candidates.keep_top(min_keep);
        }
        Ok(())
    }
}

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
        let log_sum = log_sum_exp(candidates.items.iter().map(|c| c.logit));
        let entropy: f32 = -candidates
            .items
            .iter()
            .filter(|c| c.p > 0.0)
            .map(|c| (c.logit - log_sum) * c.p)
            .sum::<f32>();
        // Order by |surprise - entropy| ascending; `p` carries the shifted score meanwhile.
        let scratch = &mut candidates.scratch;
        scratch.clear();
        scratch.extend(candidates.items.iter().map(|c| Candidate {
            id: c.id,
            logit: c.logit,
            p: (-(c.logit - log_sum) - entropy).abs(),
        }));
        scratch.sort_by(|a, b| a.p.total_cmp(&b.p).then(a.id.cmp(&b.id)));
        let mut cumulative = 0.0f32;
        let mut last = 0;
        for (i, c) in scratch.iter().enumerate() {
            let p = ((c.logit - log_sum).exp()).min(1.0);
            cumulative += p;
            if cumulative < self.mass {
                last = i + 1;
            }
        }
        let last = last.min(scratch.len() - 1);
        let cutoff = scratch[last].p;
        let keep_count = scratch
            .iter()
            .take_while(|c| c.p <= cutoff)
            .count()
            .max(self.min_keep.max(1));
        candidates.items.clear();
        candidates
            .items
            .extend(scratch.iter().take(keep_count).map(|c| Candidate {
                id: c.id,
                logit: c.logit,
                p: 0.0,
            }));
        candidates.sorted = false;
        candidates.indexed = false;
        Ok(())
    }
}

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
            .items
            .iter()
            .filter(|c| c.p > 0.0)
            .map(|c| c.p * c.p.ln())
            .sum::<f32>();
        let eta = self.epsilon.min(self.epsilon.sqrt() * (-entropy).exp());
        cut_below(candidates, eta, self.min_keep);
        Ok(())
    }
}

/// Drop tokens with `p < threshold`, except the `min_keep` best (by logit, ties kept).
fn cut_below(candidates: &mut Candidates, threshold: f32, min_keep: usize) {
    let min_keep = min_keep.max(1).min(candidates.len());
    let kth = candidates.top_scratch(min_keep)[min_keep - 1].logit;
    candidates.retain(|c| !(c.p < threshold && c.logit < kth));
}

/// `renormalize_logits`: replace the logits by their log-softmax (Hugging Face applies it last).
#[derive(Debug, Clone, Default)]
pub struct LogitNormalization;

impl Sampler for LogitNormalization {
    fn name(&self) -> &str {
        "renormalize_logits"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        let log_sum = log_sum_exp(candidates.items.iter().map(|c| c.logit));
        if log_sum == f32::NEG_INFINITY {
            return Ok(());
        }
        candidates.items.iter_mut().for_each(|c| c.logit -= log_sum);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Selectors.

fn max_ignoring_nan(max: f32, value: f32) -> f32 {
    if value > max {
        value
    } else {
        max
    }
}

/// Whether a token with this logit may be chosen: not `-inf` (a ban), not NaN, and not
/// `f32::MIN`, which `remove_invalid_values` writes in place of `-inf`.
pub(crate) fn is_allowed(logit: f32) -> bool {
    logit > f32::MIN
}

/// Index of the largest value, the first on ties (`torch.argmax`); NaN never wins, and when no
/// value is above `-inf` the first does. `None` only when there is no value.
fn highest(mut values: impl Iterator<Item = f32>) -> Option<usize> {
    let first = values.next()?;
    let (mut best, mut max) = (0, max_ignoring_nan(f32::NEG_INFINITY, first));
    for (i, value) in values.enumerate() {
        if value > max {
            (best, max) = (i + 1, value);
        }
    }
    Some(best)
}

/// Pick the most likely candidate (the lowest id on ties, as `torch.argmax`).
#[derive(Debug, Clone, Default)]
pub struct Greedy;

impl Sampler for Greedy {
    fn name(&self) -> &str {
        "greedy"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        let items = &candidates.items;
        let logits = items.iter().map(|c| c.logit);
        let best = if candidates.indexed {
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

/// Draw from the softmax of the candidates with a seeded, portable generator (xoshiro256**
/// seeded through SplitMix64). Candidates are visited best first (ties: lower id first), so the
/// same seed gives the same tokens on any machine and thread count.
#[derive(Debug, Clone)]
pub struct Dist {
    rng: Rng,
    seed: u64,
}

impl Dist {
    /// A sampler seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Dist {
            rng: Rng::new(seed),
            seed,
        }
    }
}

impl Sampler for Dist {
    fn name(&self) -> &str {
        "dist"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        candidates.sort();
        candidates.softmax();
        let u = self.rng.next_f32();
        let mut cumulative = 0.0f32;
        // When rounding leaves the total below `u`, the last token with a probability wins: the
        // last candidate may be a banned one (p = 0).
        let mut chosen = candidates
            .items
            .iter()
            .rposition(|c| c.p > 0.0)
            .unwrap_or(0);
        for (i, c) in candidates.items.iter().enumerate() {
            cumulative += c.p;
            if u < cumulative {
                chosen = i;
                break;
            }
        }
        candidates.select(chosen);
        Ok(())
    }
    fn reset(&mut self) {
        self.rng = Rng::new(self.seed);
    }
}

/// xoshiro256** (Blackman and Vigna), seeded through SplitMix64: small, fast, and the same
/// numbers everywhere.
#[derive(Debug, Clone)]
pub struct Rng {
    state: [u64; 4],
}

impl Rng {
    /// A generator from a 64-bit seed.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            state: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }
}

impl SamplerChain {
    /// The chain Hugging Face builds for `config`, in its processor order: logits processors
    /// (sequence bias, repetition penalty, presence/frequency penalties, n-gram ban, bad words,
    /// minimum lengths, forced end, `remove_invalid_values`, `suppress_tokens`,
    /// `begin_suppress_tokens`), then, when sampling, the warpers (temperature, top-k, top-p, min-p,
    /// typical-p, epsilon, eta), `renormalize_logits`, and a seeded draw; otherwise greedy.
    ///
    /// `eos` are the end tokens; `min_keep` is Hugging Face's `min_tokens_to_keep`. Beam search
    /// uses the same processors ([`SamplerChain::push_processors`]).
    pub fn from_config(
        config: &GenerationConfig,
        eos: &[u32],
        seed: u64,
        min_keep: usize,
    ) -> SamplerChain {
        let mut chain = SamplerChain::without_selector(config, eos, min_keep);
        if config.do_sample {
            chain.push(Dist::new(seed));
        } else {
            chain.push(Greedy);
        }
        chain
    }

    /// [`SamplerChain::from_config`] without its final selector: the processors, the warpers when
    /// sampling, and `renormalize_logits`. Beam search runs this chain on log-probabilities, as
    /// transformers runs the same list in `_beam_search`.
    pub fn without_selector(
        config: &GenerationConfig,
        eos: &[u32],
        min_keep: usize,
    ) -> SamplerChain {
        let mut chain = SamplerChain::new();
        chain.push_processors(config, eos);
        if config.do_sample {
            chain.push_warpers(config, min_keep);
        }
        if config.renormalize_logits {
            chain.push(LogitNormalization);
        }
        chain
    }

    /// The logits processors of `config` (no warpers, no selector), in Hugging Face's order.
    pub fn push_processors(&mut self, config: &GenerationConfig, eos: &[u32]) -> &mut Self {
        if let Some(bias) = config.sequence_bias.as_ref().filter(|b| !b.is_empty()) {
            self.push(SequenceBias::new(bias.clone()));
        }
        if config.repetition_penalty != 1.0 {
            self.push(RepetitionPenalty::new(config.repetition_penalty));
        }
        if config.presence_penalty != 0.0 || config.frequency_penalty != 0.0 {
            self.push(PresenceFrequencyPenalty::new(
                config.presence_penalty,
                config.frequency_penalty,
            ));
        }
        if config.no_repeat_ngram_size > 0 {
            self.push(NoRepeatNgram {
                size: config.no_repeat_ngram_size,
            });
        }
        if let Some(bad) = config.bad_words_ids.as_ref().filter(|b| !b.is_empty()) {
            self.push(SequenceBias::bad_words(bad, eos));
        }
        if config.min_length > 0 && !eos.is_empty() {
            self.push(MinLength {
                min: config.min_length,
                count_prompt: true,
                eos: eos.to_vec(),
            });
        }
        if let Some(min) = config.min_new_tokens.filter(|&m| m > 0 && !eos.is_empty()) {
            self.push(MinLength {
                min,
                count_prompt: false,
                eos: eos.to_vec(),
            });
        }
        if let Some(forced) = &config.forced_eos_token_id {
            self.push(ForcedEos {
                eos: forced.to_vec(),
            });
        }
        if config.remove_invalid_values {
            self.push(RemoveInvalidValues);
        }
        if let Some(ids) = config
            .suppress_tokens
            .as_ref()
            .filter(|ids| !ids.is_empty())
        {
            self.push(SuppressTokens { ids: ids.clone() });
        }
        if let Some(ids) = config
            .begin_suppress_tokens
            .as_ref()
            .filter(|ids| !ids.is_empty())
        {
            self.push(SuppressTokensAtBegin { ids: ids.clone() });
        }
        self
    }

    /// The sampling warpers of `config`, in Hugging Face's order.
    pub fn push_warpers(&mut self, config: &GenerationConfig, min_keep: usize) -> &mut Self {
        if config.temperature != 1.0 {
            self.push(Temperature(config.temperature));
        }
        if config.top_k != 0 {
            self.push(TopK {
                k: config.top_k,
                min_keep,
            });
        }
        if config.top_p < 1.0 {
            self.push(TopP {
                p: config.top_p,
                min_keep,
            });
        }
        if let Some(min_p) = config.min_p {
            self.push(MinP { min_p, min_keep });
        }
        if config.typical_p < 1.0 {
            self.push(Typical {
                mass: config.typical_p,
                min_keep,
            });
        }
        if config.epsilon_cutoff > 0.0 {
            self.push(EpsilonCutoff {
                epsilon: config.epsilon_cutoff,
                min_keep,
            });
        }
        if config.eta_cutoff > 0.0 {
            self.push(EtaCutoff {
                epsilon: config.eta_cutoff,
                min_keep,
            });
        }
        self
    }
}
