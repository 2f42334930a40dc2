//! The `Model::generate*` entry points: a whole generation in one call.

use crate::config::GenerationConfig;
use crate::error::Result;
use crate::model::Model;

use super::prepare::prepare_prompts;
use super::{Generation, Generator, TokenEvent};

impl Model {
    /// Generate a continuation of `prompt`.
    pub fn generate(&self, prompt: &str, config: &GenerationConfig) -> Result<Generation> {
        self.generate_with(prompt, config, |_| true)
    }

    /// Generate a continuation of `prompt`, calling `on_token` for each new token; return `false`
    /// from it to stop.
    pub fn generate_with(
        &self,
        prompt: &str,
        config: &GenerationConfig,
        mut on_token: impl FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<Generation> {
        let ids = self.tokenizer().encode(prompt)?;
        let mut generations = self.generate_ids(vec![ids], config, &mut on_token)?;
        Ok(generations.remove(0))
    }

    /// Generate for several prompts at once (left-padded batch); each result equals running that
    /// prompt alone.
    pub fn generate_batch(
        &self,
        prompts: &[&str],
        config: &GenerationConfig,
    ) -> Result<Vec<Generation>> {
        let ids = prompts
            .iter()
            .map(|prompt| self.tokenizer().encode(prompt))
            .collect::<Result<Vec<_>>>()?;
        self.generate_ids(ids, config, &mut |_| true)
    }

    /// Run every check a generation of `prompts` with `config` runs before its first forward pass
    /// (the options, their fit with this model's vocabulary and window, the prompts' ids), without
    /// generating: a front end can refuse bad input before it shows anything.
    pub fn check_generation(&self, prompts: &[Vec<u32>], config: &GenerationConfig) -> Result<()> {
        prepare_prompts(self, prompts.to_vec(), config).map(|_| ())
    }

    /// Generate from token ids (one list per sequence of the batch). With `num_beams` > 1 this is
    /// beam search (no streaming: `on_token` is not called).
    pub fn generate_ids(
        &self,
        prompts: Vec<Vec<u32>>,
        config: &GenerationConfig,
        on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<Vec<Generation>> {
        if config.num_beams > 1 {
            return self.generate_beams(prompts, config);
        }
        let mut generator = Generator::new(self, prompts, config)?;
        generator.run(on_token)?;
        Ok(generator.into_generations())
    }
}
