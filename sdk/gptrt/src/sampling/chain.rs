//! An ordered list of samplers, and the chain Hugging Face builds for a `GenerationConfig`.

use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::sampling::processors::*;
use crate::sampling::selectors::*;
use crate::sampling::stage::StageMarks;
use crate::sampling::warpers::*;
use crate::sampling::{Candidates, Sampler, SamplerContext, SamplerStage};

/// An ordered list of samplers, the last of which selects.
#[derive(Default)]
pub struct SamplerChain {
    samplers: Vec<Box<dyn Sampler>>,
    candidates: Candidates,
    /// Known for chains built from a config; a chain built by hand has none.
    marks: Option<StageMarks>,
    /// Processor-stage links inserted at the start of a chain built by hand.
    processors_added: usize,
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
        self.insert_at(at, sampler);
        self
    }

    /// Put a sampler in its stage: a [`SamplerStage::Processor`] after the built-in processors (at
    /// the start of a chain built by hand), a [`SamplerStage::Warper`] just before the selector
    /// (as [`SamplerChain::insert_before_selector`]), a [`SamplerStage::Selector`] in place of the
    /// built-in selector (in a chain built by hand: just before its last link). Links added to the
    /// same stage keep the order they were added in.
    pub fn insert_at_stage(&mut self, sampler: Box<dyn Sampler>, stage: SamplerStage) -> &mut Self {
        match (stage, self.marks) {
            (SamplerStage::Processor, Some(marks)) => self.insert_at(marks.warpers_at, sampler),
            (SamplerStage::Processor, None) => {
                let at = self.processors_added;
                self.insert_at(at, sampler);
                self.processors_added += 1;
            }
            (SamplerStage::Selector, Some(marks)) if marks.selector_at < self.samplers.len() => {
                // The built-in draw goes: a selector link replaces it, and the chain reports a
                // selector that does not select instead of drawing behind its back.
                self.samplers.remove(marks.selector_at);
                self.samplers.push(sampler);
                self.marks = Some(StageMarks {
                    selector_at: self.samplers.len(),
                    ..marks
                });
            }
            (SamplerStage::Selector, Some(_)) => {
                self.samplers.push(sampler);
            }
            _ => {
                self.insert_before_selector(sampler);
            }
        }
        self
    }

    fn insert_at(&mut self, at: usize, sampler: Box<dyn Sampler>) {
        self.samplers.insert(at, sampler);
        if let Some(marks) = self.marks.as_mut() {
            if at <= marks.warpers_at {
                marks.warpers_at += 1;
            }
            if at <= marks.selector_at {
                marks.selector_at += 1;
            }
        }
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
        let chosen = self.candidates.selected_candidate().copied();
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
        if self.candidates.selected().is_some() {
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
            if self.candidates.selected().is_some() {
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
        let allowed = |c: &Candidates| c.items().iter().any(|c| is_allowed(c.logit));
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
        chain.marks = chain.marks.map(|marks| StageMarks {
            selector_at: chain.samplers.len(),
            ..marks
        });
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
        let warpers_at = chain.samplers.len();
        if config.do_sample {
            chain.push_warpers(config, min_keep);
        }
        if config.renormalize_logits {
            chain.push(LogitNormalization);
        }
        chain.marks = Some(StageMarks {
            warpers_at,
            selector_at: chain.samplers.len(),
        });
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
