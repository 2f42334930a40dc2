//! The checks a generation runs before its first forward pass: options against the model, prompt
//! ids, the context window.

use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::model::Model;

/// Most rows (prompts x beams or returned sequences) one generation may hold: each row has its own
/// KV cache and its own vocabulary-sized logits every step.
pub const MAX_ROWS: usize = 1024;

/// Prompts checked and ready to feed, with the resolved end and padding tokens.
pub(crate) struct Prepared {
    pub prompts: Vec<Vec<u32>>,
    pub eos: Vec<u32>,
    pub pad: u32,
}

/// Validate `config` against the model and turn raw prompts into the ids to feed: an empty prompt
/// becomes `[bos]`, a prompt that does not fit the window is an error or is truncated.
pub(crate) fn prepare_prompts(
    model: &Model,
    prompts: Vec<Vec<u32>>,
    config: &GenerationConfig,
) -> Result<Prepared> {
    config.validate()?;
    let n_positions = model.config().n_positions;
    if prompts.is_empty() {
        return Err(Error::InvalidOption {
            field: "prompts",
            message: "at least one prompt is needed".to_string(),
        });
    }
    if config.num_beams > 1 && config.do_sample {
        return Err(Error::InvalidOption {
            field: "do_sample",
            message: "beam sampling (do_sample with num_beams > 1) is not supported; use one or the other".to_string(),
        });
    }
    if let Some(n) = config.max_new_tokens.filter(|&n| n > n_positions) {
        return Err(Error::InvalidOption {
            field: "max_new_tokens",
            message: format!(
                "{n} is more than the model's whole context window (n_positions = {n_positions})"
            ),
        });
    }
    let vocab_size = model.config().vocab_size;
    if let Some(n) = config.logprobs.filter(|&n| n > vocab_size) {
        return Err(Error::InvalidOption {
            field: "logprobs",
            message: format!("{n} alternatives is more than the vocabulary ({vocab_size} tokens)"),
        });
    }
    let rows = prompts
        .len()
        .saturating_mul(config.num_beams.max(config.num_return_sequences));
    if rows > MAX_ROWS {
        return Err(Error::InvalidOption {
            field: "prompts",
            message: format!(
                "{} prompts x {} sequences each is {rows} rows, more than gptrt's limit of \
                 {MAX_ROWS} rows in one generation",
                prompts.len(),
                config.num_beams.max(config.num_return_sequences)
            ),
        });
    }
    let eos = match &config.eos_token_id {
        Some(ids) => ids.to_vec(),
        None => vec![model.config().eos_token_id],
    };
    let bos = config.bos_token_id.unwrap_or(model.config().bos_token_id);
    let pad = config.pad_token_id.or(eos.first().copied()).unwrap_or(bos);
    model.check_ids(&eos)?;
    model.check_ids(&[bos, pad])?;
    model.check_ids(&config.token_ids())?;
    let mut prepared = Vec::with_capacity(prompts.len());
    for mut prompt in prompts {
        if prompt.is_empty() {
            prompt.push(bos);
        }
        model.check_ids(&prompt)?;
        if config.truncate_prompt {
            let room = n_positions
                .saturating_sub(config.max_new_tokens.unwrap_or(1))
                .max(1);
            if prompt.len() > room {
                prompt.drain(..prompt.len() - room);
            }
        } else if prompt.len() >= n_positions {
            return Err(Error::ContextOverflow {
                prompt_tokens: prompt.len(),
                n_positions,
            });
        }
        prepared.push(prompt);
    }
    Ok(Prepared {
        prompts: prepared,
        eos,
        pad,
    })
}
