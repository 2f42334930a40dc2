//! `config.json` (the model's shape) and `generation_config.json` (Hugging Face generation defaults).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The GPT-2 hyper-parameters the runtime needs, read from a model folder's `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Number of transformer blocks.
    #[serde(alias = "num_hidden_layers")]
    pub n_layer: usize,
    /// Attention heads per block.
    #[serde(alias = "num_attention_heads")]
    pub n_head: usize,
    /// Hidden size.
    #[serde(alias = "hidden_size")]
    pub n_embd: usize,
    /// Context window: the number of learned positions.
    #[serde(alias = "max_position_embeddings", alias = "n_ctx")]
    pub n_positions: usize,
    /// Vocabulary size (50257 for GPT-2).
    pub vocab_size: usize,
    /// End-of-text token.
    #[serde(default = "gpt2_eos")]
    pub eos_token_id: u32,
    /// Beginning-of-text token (GPT-2 uses `<|endoftext|>` for both).
    #[serde(default = "gpt2_eos")]
    pub bos_token_id: u32,
}

fn gpt2_eos() -> u32 {
    50256
}

impl ModelConfig {
    /// Read and check `config.json`.
    pub fn from_file(path: &Path) -> Result<ModelConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let config: ModelConfig = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: format!("not a GPT-2 config.json: {e}"),
        })?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |message: String| {
            Err(Error::Config {
                path: path.to_path_buf(),
                message,
            })
        };
        for (field, value) in [
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("n_positions", self.n_positions),
            ("vocab_size", self.vocab_size),
        ] {
            if value == 0 {
                return bad(format!("`{field}` must be positive"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!(
                "`n_embd` ({}) is not a multiple of `n_head` ({})",
                self.n_embd, self.n_head
            ));
        }
        for (field, id) in [
            ("eos_token_id", self.eos_token_id),
            ("bos_token_id", self.bos_token_id),
        ] {
            if id as usize >= self.vocab_size {
                return bad(format!(
                    "`{field}` {id} is outside the vocabulary (vocab_size {})",
                    self.vocab_size
                ));
            }
        }
        Ok(())
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }
}

/// One token id or several, as Hugging Face allows for `eos_token_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// Generation settings with Hugging Face `generation_config.json` names and meanings.
///
/// Fields gptrt does not implement yet are kept in [`GenerationConfig::unsupported`] and reported,
/// never silently dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    /// Most tokens to generate after the prompt. When unset, `max_length` applies; when both are
    /// unset, 20 total tokens as Hugging Face does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<usize>,
    /// Most tokens in prompt plus generation (used only when `max_new_tokens` is unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// Token(s) that end generation; defaults to the model's `eos_token_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    /// Token used to pad batches; defaults to the first end token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
    /// Token an empty prompt starts from; defaults to the model's `bos_token_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    /// gptrt extension: drop the oldest prompt tokens when the prompt does not fit the context
    /// window, instead of failing. Off by default.
    #[serde(default)]
    pub truncate_prompt: bool,
    /// Fields present in the file that gptrt does not implement (yet), kept verbatim.
    #[serde(flatten)]
    pub unsupported: BTreeMap<String, serde_json::Value>,
}

/// Hugging Face's default `max_length` when neither limit is set.
const HF_DEFAULT_MAX_LENGTH: usize = 20;

/// Fields Hugging Face writes into every `generation_config.json` that change nothing here.
const BOOKKEEPING_FIELDS: &[&str] = &["_from_model_config", "transformers_version"];

impl GenerationConfig {
    /// Read `generation_config.json`.
    pub fn from_file(path: &Path) -> Result<GenerationConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: format!("invalid generation config: {e}"),
        })
    }

    /// Read `generation_config.json` from a model folder, or defaults when the folder has none.
    pub fn from_dir_or_default(dir: &Path) -> Result<GenerationConfig> {
        let path: PathBuf = dir.join("generation_config.json");
        if path.is_file() {
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

    /// How many new tokens to allow after a prompt of `prompt_len` tokens.
    pub fn new_token_budget(&self, prompt_len: usize) -> usize {
        match (self.max_new_tokens, self.max_length) {
            (Some(n), _) => n,
            (None, Some(total)) => total.saturating_sub(prompt_len),
            (None, None) => HF_DEFAULT_MAX_LENGTH.saturating_sub(prompt_len),
        }
    }
}
