//! `gptrt generate` flags: Hugging Face GenerationConfig fields in kebab-case.

use std::path::PathBuf;

use clap::Args;
use gptrt::{EarlyStopping, GenerationConfig, StopStrings, TokenIds};

/// Flags that override the model folder's `generation_config.json`.
#[derive(Args, Debug, Default)]
pub struct GenerationFlags {
    /// Load generation defaults from this file instead of the model folder's generation_config.json.
    #[arg(long, value_name = "FILE", help_heading = "Generation")]
    generation_config: Option<PathBuf>,
    /// Most tokens to generate (default from generation_config.json, else 20 in total).
    #[arg(long, value_name = "N", help_heading = "Generation")]
    max_new_tokens: Option<usize>,
    /// Most tokens in prompt plus generation (used when --max-new-tokens is unset).
    #[arg(long, value_name = "N", help_heading = "Generation")]
    max_length: Option<usize>,
    /// End tokens are banned until this many tokens were generated.
    #[arg(long, value_name = "N", help_heading = "Generation")]
    min_new_tokens: Option<usize>,
    /// End tokens are banned until prompt plus generation is this long.
    #[arg(long, value_name = "N", help_heading = "Generation")]
    min_length: Option<usize>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS", help_heading = "Generation")]
    max_time: Option<f64>,
    /// Stop when the generated text contains this string (repeatable); the output never includes it.
    #[arg(
        long = "stop-strings",
        value_name = "TEXT",
        help_heading = "Generation"
    )]
    stop_strings: Vec<String>,
    /// Token id(s) that end generation (default: the model's eos_token_id).
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        help_heading = "Generation"
    )]
    eos_token_id: Option<Vec<u32>>,
    /// Force one of these tokens as the last token allowed by max length or the context window.
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        help_heading = "Generation"
    )]
    forced_eos_token_id: Option<Vec<u32>>,
    /// Drop the oldest prompt tokens when the prompt does not fit the context window (default: error).
    #[arg(long, help_heading = "Generation")]
    truncate: bool,

    /// Sample instead of picking the most likely token (`--do-sample false` turns it off).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", help_heading = "Sampling")]
    do_sample: Option<bool>,
    /// Divide logits by this before sampling (> 0; lower = more conservative).
    #[arg(long, value_name = "T", help_heading = "Sampling")]
    temperature: Option<f32>,
    /// Sample only among the K most likely tokens (0 = off; Hugging Face's default is 50).
    #[arg(long, value_name = "K", help_heading = "Sampling")]
    top_k: Option<usize>,
    /// Sample only among the most likely tokens whose probability adds up to P (0 < P <= 1).
    #[arg(long, value_name = "P", help_heading = "Sampling")]
    top_p: Option<f32>,
    /// Locally typical sampling: keep tokens closest to the expected surprise up to this mass.
    #[arg(long, value_name = "P", help_heading = "Sampling")]
    typical_p: Option<f32>,
    /// Drop tokens less likely than MIN_P times the most likely one.
    #[arg(long, value_name = "P", help_heading = "Sampling")]
    min_p: Option<f32>,
    /// Drop tokens whose probability is below this (truncation sampling; 0 = off).
    #[arg(long, value_name = "EPS", help_heading = "Sampling")]
    epsilon_cutoff: Option<f32>,
    /// Eta sampling: drop tokens below min(eta, sqrt(eta) * exp(-entropy)) (0 = off).
    #[arg(long, value_name = "ETA", help_heading = "Sampling")]
    eta_cutoff: Option<f32>,
    /// Seed of the sampling generator (xoshiro256**); the same seed gives the same tokens anywhere.
    #[arg(long, value_name = "N", help_heading = "Sampling")]
    seed: Option<u64>,
    /// Sequences to return (sampling: independent draws seeded seed, seed+1...; beams: the best N).
    #[arg(long, value_name = "N", help_heading = "Sampling")]
    num_return_sequences: Option<usize>,

    /// Penalise tokens already in the text: logits divided (positive) or multiplied (negative) by this (1 = off).
    #[arg(long, value_name = "P", help_heading = "Penalties and bans")]
    repetition_penalty: Option<f32>,
    /// Subtract this from every token already generated (OpenAI's presence penalty; 0 = off).
    #[arg(long, value_name = "P", help_heading = "Penalties and bans")]
    presence_penalty: Option<f32>,
    /// Subtract this per earlier occurrence of a generated token (OpenAI's frequency penalty; 0 = off).
    #[arg(long, value_name = "P", help_heading = "Penalties and bans")]
    frequency_penalty: Option<f32>,
    /// Never repeat an n-gram of this many tokens (0 = off).
    #[arg(long, value_name = "N", help_heading = "Penalties and bans")]
    no_repeat_ngram_size: Option<usize>,
    /// Token sequences never to generate: ids separated by ',' and sequences by ';' (e.g. "5;7,8").
    #[arg(long, value_name = "IDS;IDS", help_heading = "Penalties and bans")]
    bad_words_ids: Option<String>,
    /// Add BIAS to the last token of IDS when the text ends with the others: "IDS=BIAS", repeatable (e.g. "7,8=-4").
    #[arg(long, value_name = "IDS=BIAS", help_heading = "Penalties and bans")]
    sequence_bias: Vec<String>,
    /// Tokens never to generate.
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        help_heading = "Penalties and bans"
    )]
    suppress_tokens: Option<Vec<u32>>,

    /// Tokens never to generate as the first new token.
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        help_heading = "Penalties and bans"
    )]
    begin_suppress_tokens: Option<Vec<u32>>,
    /// Replace NaN and infinite logits before sampling.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", help_heading = "Penalties and bans")]
    remove_invalid_values: Option<bool>,

    /// Beam search with this many beams (1 = off).
    #[arg(long, value_name = "N", help_heading = "Beam search")]
    num_beams: Option<usize>,
    /// Beam scores are sum_logprobs / length^LENGTH_PENALTY (> 1 favours longer sequences).
    #[arg(long, value_name = "F", help_heading = "Beam search")]
    length_penalty: Option<f32>,
    /// When beam search stops: true (N finished), false (heuristic) or never.
    #[arg(long, value_name = "WHEN", value_parser = parse_early_stopping, help_heading = "Beam search")]
    early_stopping: Option<EarlyStopping>,

    /// Also return each token's log-probability and the N most likely alternatives (with --json).
    #[arg(long, value_name = "N", help_heading = "Output")]
    logprobs: Option<usize>,
}

fn parse_early_stopping(text: &str) -> Result<EarlyStopping, String> {
    match text {
        "true" => Ok(EarlyStopping::Done),
        "false" => Ok(EarlyStopping::Heuristic),
        "never" => Ok(EarlyStopping::Never),
        other => Err(format!("expected true, false or never, got {other:?}")),
    }
}

fn parse_ids(text: &str, flag: &str) -> Result<Vec<u32>, String> {
    text.split(',')
        .map(|id| {
            id.trim()
                .parse::<u32>()
                .map_err(|_| format!("--{flag}: {id:?} is not a token id"))
        })
        .collect()
}

impl GenerationFlags {
    /// The config to generate with: the model's defaults (or --generation-config), then the flags.
    pub fn config(&self, model_defaults: &GenerationConfig) -> Result<GenerationConfig, String> {
        let mut config = match &self.generation_config {
            Some(path) => GenerationConfig::from_file(path).map_err(|e| e.to_string())?,
            None => model_defaults.clone(),
        };
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(value) = self.$field.clone() {
                    config.$field = value;
                }
            )*};
        }
        set!(
            min_length,
            do_sample,
            temperature,
            top_k,
            top_p,
            typical_p,
            epsilon_cutoff,
            eta_cutoff,
            num_return_sequences,
            repetition_penalty,
            presence_penalty,
            frequency_penalty,
            no_repeat_ngram_size,
            num_beams,
            length_penalty,
            early_stopping,
            remove_invalid_values
        );
        macro_rules! set_some {
            ($($field:ident),*) => {$(
                if let Some(value) = self.$field.clone() {
                    config.$field = Some(value);
                }
            )*};
        }
        set_some!(
            max_new_tokens,
            max_length,
            min_new_tokens,
            max_time,
            min_p,
            seed,
            logprobs,
            suppress_tokens,
            begin_suppress_tokens
        );
        if let Some(ids) = &self.eos_token_id {
            config.eos_token_id = Some(TokenIds::Many(ids.clone()));
        }
        if let Some(ids) = &self.forced_eos_token_id {
            config.forced_eos_token_id = Some(TokenIds::Many(ids.clone()));
        }
        if !self.stop_strings.is_empty() {
            config.stop_strings = Some(StopStrings::Many(self.stop_strings.clone()));
        }
        if let Some(text) = &self.bad_words_ids {
            let sequences = text
                .split(';')
                .map(|seq| parse_ids(seq, "bad-words-ids"))
                .collect::<Result<Vec<_>, _>>()?;
            config.bad_words_ids = Some(sequences);
        }
        if !self.sequence_bias.is_empty() {
            let mut biases = Vec::new();
            for entry in &self.sequence_bias {
                let (ids, bias) = entry
                    .rsplit_once('=')
                    .ok_or_else(|| format!("--sequence-bias: {entry:?} is not IDS=BIAS"))?;
                let bias: f32 = bias
                    .trim()
                    .parse()
                    .map_err(|_| format!("--sequence-bias: {bias:?} is not a number"))?;
                biases.push((parse_ids(ids, "sequence-bias")?, bias));
            }
            config.sequence_bias = Some(biases);
        }
        config.truncate_prompt |= self.truncate;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}
