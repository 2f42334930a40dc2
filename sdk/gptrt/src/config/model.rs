//! `config.json`: the model's shape, with bounds checked before anything is sized from it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Upper bounds on `config.json`'s numbers, far above any GPT-2 (48 layers, 25 heads, 1600 wide,
/// 1024 positions, 50257 tokens), so a damaged or hostile file fails cleanly instead of sizing
/// buffers from it.
pub const MAX_LAYERS: usize = 1024;
/// See [`MAX_LAYERS`].
pub const MAX_HEADS: usize = 1024;
/// See [`MAX_LAYERS`].
pub const MAX_EMBD: usize = 65_536;
/// See [`MAX_LAYERS`].
pub const MAX_POSITIONS: usize = 1 << 20;
/// See [`MAX_LAYERS`]; token ids are `u32`, and the logits of one row must stay addressable.
pub const MAX_VOCAB: usize = 1 << 24;

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
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        ModelConfig::from_json_bytes(&bytes, path)
    }

    /// Parse and check `config.json` from bytes (`path` names it in errors): every number is
    /// checked against its bound ([`MAX_LAYERS`] and the rest) before anything is sized from it.
    pub fn from_json_bytes(bytes: &[u8], path: &Path) -> Result<ModelConfig> {
        let config: ModelConfig = serde_json::from_slice(bytes).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: format!("not a GPT-2 config.json: {e}"),
        })?;
        config.check(path)?;
        Ok(config)
    }

    pub(crate) fn check(&self, path: &Path) -> Result<()> {
        let bad = |message: String| {
            Err(Error::Config {
                path: path.to_path_buf(),
                message,
            })
        };
        for (field, value, limit) in [
            ("n_layer", self.n_layer, MAX_LAYERS),
            ("n_head", self.n_head, MAX_HEADS),
            ("n_embd", self.n_embd, MAX_EMBD),
            ("n_positions", self.n_positions, MAX_POSITIONS),
            ("vocab_size", self.vocab_size, MAX_VOCAB),
        ] {
            if value == 0 {
                return bad(format!("`{field}` must be positive"));
            }
            // Checked before anything is sized from these numbers.
            if value > limit {
                return bad(format!(
                    "`{field}` is {value}, more than gptrt accepts ({limit})"
                ));
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
