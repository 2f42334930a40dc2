//! `generation_config.json`: Hugging Face's generation settings, and the rules for their values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{EarlyStopping, StopStrings, TokenIds};
use crate::error::{regular_file_present, Error, Result};

/// Generation settings with Hugging Face `generation_config.json` names, meanings and defaults.
///
/// Fields gptrt does not implement are kept in [`GenerationConfig::unsupported`] and reported,
/// never silently dropped. gptrt's own extensions: `presence_penalty`, `frequency_penalty`
/// (OpenAI's rule), `seed`, `logprobs`, `truncate_prompt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    /// Most tokens to generate after the prompt. When unset, `max_length` applies; when both are
    /// unset, 20 total tokens as Hugging Face does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<usize>,
    /// Most tokens in prompt plus generation (used only when `max_new_tokens` is unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// End tokens are banned until this many tokens were generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_new_tokens: Option<usize>,
    /// End tokens are banned until the sequence (prompt included) is this long.
    pub min_length: usize,
    /// Stop after this many seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_time: Option<f64>,
    /// Stop when the generated text contains one of these; the text never includes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_strings: Option<StopStrings>,
    /// Sample (`true`) or pick the most likely token (`false`).
    pub do_sample: bool,
    /// Beams for beam search (1 = no beam search).
    pub num_beams: usize,
    /// Sequences returned (<= `num_beams` with beam search).
    pub num_return_sequences: usize,
    /// Beam scores are `sum_logprobs / length ** length_penalty`.
    pub length_penalty: f32,
    /// When beam search ends.
    pub early_stopping: EarlyStopping,
    /// Divide logits by this before sampling (> 0).
    pub temperature: f32,
    /// Keep the k most likely tokens when sampling (0 = off).
    pub top_k: usize,
    /// Keep the most likely tokens whose probability reaches this when sampling (0 < p <= 1).
    pub top_p: f32,
    /// Locally typical sampling mass (0 < p <= 1; 1 = off).
    pub typical_p: f32,
    /// Drop tokens less likely than `min_p` times the top token when sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    /// Drop tokens with probability below this when sampling (0 = off).
    pub epsilon_cutoff: f32,
    /// Eta sampling cutoff (0 = off).
    pub eta_cutoff: f32,
    /// Hugging Face's repetition penalty (> 0; 1 = off).
    pub repetition_penalty: f32,
    /// OpenAI presence penalty over generated tokens (gptrt extension; 0 = off).
    pub presence_penalty: f32,
    /// OpenAI frequency penalty over generated tokens (gptrt extension; 0 = off).
    pub frequency_penalty: f32,
    /// Never repeat an n-gram of this size (0 = off).
    pub no_repeat_ngram_size: usize,
    /// Replace the processed logits by their log-softmax at the end of the chain.
    pub renormalize_logits: bool,
    /// Token sequences that must never be generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bad_words_ids: Option<Vec<Vec<u32>>>,
    /// `[[token ids], bias]` pairs: the bias is added to the last token when the sequence ends
    /// with the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_bias: Option<Vec<(Vec<u32>, f32)>>,
    /// Tokens that are never generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppress_tokens: Option<Vec<u32>>,
    /// Tokens that are never generated first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub begin_suppress_tokens: Option<Vec<u32>>,
    /// Replace NaN and infinite logits before sampling.
    pub remove_invalid_values: bool,
    /// Token(s) forced when the next token is the last one allowed (`max_length` or the context
    /// window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_eos_token_id: Option<TokenIds>,
    /// Token(s) that end generation; defaults to the model's `eos_token_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    /// Token used to pad batches; defaults to the first end token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
    /// Token an empty prompt starts from; defaults to the model's `bos_token_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    /// Seed of the sampling generator (gptrt extension; unset = a fresh seed, reported in the result).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Return the log-probability of each chosen token and of this many alternatives (gptrt
    /// extension; unset = none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<usize>,
    /// gptrt extension: drop the oldest prompt tokens when the prompt does not fit the context
    /// window, instead of failing. Off by default.
    pub truncate_prompt: bool,
    /// Fields present in the file that gptrt does not implement, kept verbatim.
    #[serde(flatten)]
    pub unsupported: BTreeMap<String, serde_json::Value>,
}

impl Default for GenerationConfig {
    /// Hugging Face's defaults.
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: None,
            max_length: None,
            min_new_tokens: None,
            min_length: 0,
            max_time: None,
            stop_strings: None,
            do_sample: false,
            num_beams: 1,
            num_return_sequences: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            typical_p: 1.0,
            min_p: None,
            epsilon_cutoff: 0.0,
            eta_cutoff: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            no_repeat_ngram_size: 0,
            renormalize_logits: false,
            bad_words_ids: None,
            sequence_bias: None,
            suppress_tokens: None,
            begin_suppress_tokens: None,
            remove_invalid_values: false,
            forced_eos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
            bos_token_id: None,
            seed: None,
            logprobs: None,
            truncate_prompt: false,
            unsupported: BTreeMap::new(),
        }
    }
}

/// Most sequences one prompt may become (`num_beams`, `num_return_sequences`): each is a row with
/// its own KV cache and its own vocabulary-sized logits every step.
pub const MAX_SEQUENCES_PER_PROMPT: usize = 256;

fn invalid(field: &'static str, message: impl Into<String>) -> Result<()> {
    Err(Error::InvalidOption {
        field,
        message: message.into(),
    })
}

/// Hugging Face's default `max_length` when neither limit is set.
const HF_DEFAULT_MAX_LENGTH: usize = 20;

/// Fields Hugging Face writes into every `generation_config.json` that change nothing here.
const BOOKKEEPING_FIELDS: &[&str] = &["_from_model_config", "transformers_version"];

impl GenerationConfig {
    /// Read `generation_config.json`.
    pub fn from_file(path: &Path) -> Result<GenerationConfig> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        GenerationConfig::from_json_bytes(&bytes, path)
    }

    /// Parse `generation_config.json` from bytes (`path` names it in errors) and check every
    /// field's value ([`GenerationConfig::validate_fields`]).
    pub fn from_json_bytes(bytes: &[u8], path: &Path) -> Result<GenerationConfig> {
        let config_error = |message: String| Error::Config {
            path: path.to_path_buf(),
            message,
        };
        let config: GenerationConfig = serde_json::from_slice(bytes)
            .map_err(|e| config_error(format!("invalid generation config: {e}")))?;
        config
            .validate_fields()
            .map_err(|e| config_error(e.to_string()))?;
        Ok(config)
    }

    /// Read `generation_config.json` from a model folder, or defaults when the folder has none.
    pub fn from_dir_or_default(dir: &Path) -> Result<GenerationConfig> {
        let path: PathBuf = dir.join("generation_config.json");
        if regular_file_present(&path)? {
            GenerationConfig::from_file(&path)
        } else {
            Ok(GenerationConfig::default())
        }
    }

    /// Names of fields that were given but are not implemented, so callers can warn about them.
    pub fn unsupported_fields(&self) -> Vec<&str> {
        self.unsupported
            .keys()
            .map(String::as_str)
            .filter(|name| !BOOKKEEPING_FIELDS.contains(name))
            .collect()
    }

    /// Check every value and how they combine; the error names the field. This is
    /// [`GenerationConfig::validate_fields`] plus the rules that involve two fields (which a caller
    /// setting fields one by one may meet only when all are set), and every generation runs it.
    pub fn validate(&self) -> Result<()> {
        self.validate_fields()?;
        if self.num_beams > 1 && self.num_return_sequences > self.num_beams {
            return invalid(
                "num_return_sequences",
                format!(
                    "{} is more than num_beams ({})",
                    self.num_return_sequences, self.num_beams
                ),
            );
        }
        if self.num_beams == 1 && !self.do_sample && self.num_return_sequences > 1 {
            return invalid(
                "num_return_sequences",
                "greedy decoding returns one sequence; use do_sample or num_beams",
            );
        }
        Ok(())
    }

    /// Check each field's own value, independent of the others: the rule every way of setting a
    /// field applies at the moment the value arrives (the C API's setters, `from_json`, the CLI's
    /// flags), so the call that received a bad value is the one that fails. The error names the
    /// field.
    pub fn validate_fields(&self) -> Result<()> {
        let finite = [
            ("temperature", self.temperature),
            ("top_p", self.top_p),
            ("typical_p", self.typical_p),
            ("min_p", self.min_p.unwrap_or(0.0)),
            ("epsilon_cutoff", self.epsilon_cutoff),
            ("eta_cutoff", self.eta_cutoff),
            ("repetition_penalty", self.repetition_penalty),
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
            ("length_penalty", self.length_penalty),
        ];
        for (field, value) in finite {
            if !value.is_finite() {
                return invalid(field, format!("{value} is not a finite number"));
            }
        }
        if self.temperature <= 0.0 {
            return invalid(
                "temperature",
                format!(
                    "{} must be > 0 (for greedy decoding use do_sample = false)",
                    self.temperature
                ),
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return invalid("top_p", format!("{} is outside (0, 1]", self.top_p));
        }
        if !(self.typical_p > 0.0 && self.typical_p <= 1.0) {
            return invalid("typical_p", format!("{} is outside (0, 1]", self.typical_p));
        }
        if let Some(min_p) = self.min_p {
            if !(0.0..=1.0).contains(&min_p) {
                return invalid("min_p", format!("{min_p} is outside [0, 1]"));
            }
        }
        for (field, value) in [
            ("epsilon_cutoff", self.epsilon_cutoff),
            ("eta_cutoff", self.eta_cutoff),
        ] {
            if !(0.0..1.0).contains(&value) {
                return invalid(field, format!("{value} is outside [0, 1)"));
            }
        }
        if self.repetition_penalty <= 0.0 {
            return invalid(
                "repetition_penalty",
                format!("{} must be > 0 (1 = off)", self.repetition_penalty),
            );
        }
        for (field, value) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if value < 0.0 {
                return invalid(field, format!("{value} is negative"));
            }
        }
        for (field, value) in [
            ("num_beams", self.num_beams),
            ("num_return_sequences", self.num_return_sequences),
        ] {
            if value == 0 {
                return invalid(field, "must be at least 1");
            }
            if value > MAX_SEQUENCES_PER_PROMPT {
                return invalid(
                    field,
                    format!(
                        "{value} is more than gptrt's limit of {MAX_SEQUENCES_PER_PROMPT} \
                         sequences per prompt (each one is a row with its own KV cache)"
                    ),
                );
            }
        }
        if self.max_new_tokens == Some(0) {
            return invalid("max_new_tokens", "must be at least 1");
        }
        if let Some(max_time) = self.max_time {
            if !(max_time.is_finite() && max_time > 0.0) {
                return invalid(
                    "max_time",
                    format!("{max_time} must be a positive number of seconds"),
                );
            }
        }
        if let Some(bad) = &self.bad_words_ids {
            if bad.iter().any(Vec::is_empty) {
                return invalid("bad_words_ids", "contains an empty token sequence");
            }
        }
        if let Some(bias) = &self.sequence_bias {
            if let Some((seq, b)) = bias
                .iter()
                .find(|(seq, b)| seq.is_empty() || !b.is_finite())
            {
                return invalid(
                    "sequence_bias",
                    if seq.is_empty() {
                        format!("an entry has no tokens (bias {b})")
                    } else {
                        format!(
                            "the bias of {seq:?} is {b}: not a finite 32-bit float (|bias| < 3.4e38)"
                        )
                    },
                );
            }
        }
        if let Some(stops) = &self.stop_strings {
            if stops.to_vec().iter().any(String::is_empty) {
                return invalid("stop_strings", "contains an empty string");
            }
        }
        Ok(())
    }

    /// Every token id the config names, for checking against the vocabulary.
    pub fn token_ids(&self) -> Vec<u32> {
        let mut ids = Vec::new();
        for list in [&self.eos_token_id, &self.forced_eos_token_id]
            .into_iter()
            .flatten()
        {
            ids.extend(list.to_vec());
        }
        ids.extend(self.pad_token_id);
        ids.extend(self.bos_token_id);
        ids.extend(self.bad_words_ids.iter().flatten().flatten());
        ids.extend(
            self.sequence_bias
                .iter()
                .flatten()
                .flat_map(|(seq, _)| seq.iter()),
        );
        ids.extend(self.suppress_tokens.iter().flatten());
        ids.extend(self.begin_suppress_tokens.iter().flatten());
        ids
    }

    /// How many new tokens to allow after a prompt of `prompt_len` tokens.
    pub fn new_token_budget(&self, prompt_len: usize) -> usize {
        match (self.max_new_tokens, self.max_length) {
            (Some(n), _) => n,
            (None, Some(total)) => total.saturating_sub(prompt_len),
            (None, None) => HF_DEFAULT_MAX_LENGTH.saturating_sub(prompt_len),
        }
    }
}
