//! `org.gptrt.choice`: a task head that picks the most likely continuation of a prompt among
//! choices by the model's log-likelihood (zero-shot classification).
//!
//! Input: `{"prompt": "...", "choices": ["...", ...]}`; output:
//! `{"choice": i, "label": "...", "scores": [...]}`, each score the choice's mean log-probability
//! per token (so long labels are not penalised for their length), the first best on a tie.
//!
//! The context is the model's start token (read from the host's model config) then the prompt; it
//! runs through the model once, and every choice continues from its KV cache (host API 1.1
//! `score_continuations`; on a 1.0 host, one full scoring per choice).

use gptrt_plugin_api::{export_plugins, Host, TaskHeadPlugin};
use serde_json::{json, Value};

/// Multiple choice by log-likelihood.
pub struct Choice {
    host: Host,
    start_token: u32,
}

/// GPT-2's `<|endoftext|>`, the start token when a 1.0 host cannot report the model's.
const GPT2_END_OF_TEXT: u32 = 50256;

impl TaskHeadPlugin for Choice {
    const ID: &'static str = "org.gptrt.choice";
    const NAME: &'static str = "Multiple choice by likelihood";
    const VERSION: &'static str = "1.1.0";
    const DESCRIPTION: &'static str =
        "Picks the most likely continuation of a prompt among choices (zero-shot classification)";

    fn create(host: Host, _config_json: &str) -> Result<Self, String> {
        let start_token = match host.model_config_json() {
            Ok(json) => {
                let config: Value = serde_json::from_str(&json)
                    .map_err(|e| format!("the host's model config is not JSON: {e}"))?;
                config["bos_token_id"]
                    .as_u64()
                    .and_then(|id| u32::try_from(id).ok())
                    .ok_or("the host's model config has no bos_token_id")?
            }
            Err(_) => GPT2_END_OF_TEXT,
        };
        Ok(Choice { host, start_token })
    }

    fn run(&mut self, input_json: &str) -> Result<String, String> {
        let input: Value =
            serde_json::from_str(input_json).map_err(|e| format!("input is not JSON: {e}"))?;
        let prompt = input["prompt"]
            .as_str()
            .ok_or("input needs a string `prompt`")?;
        let choices: Vec<&str> = input["choices"]
            .as_array()
            .ok_or("input needs an array `choices`")?
            .iter()
            .map(|c| c.as_str().ok_or("every choice must be a string"))
            .collect::<Result<_, _>>()?;
        if choices.is_empty() {
            return Err("`choices` is empty".to_string());
        }
        let mut context = vec![self.start_token];
        context.extend(self.host.tokenize(prompt)?);
        let continuations = choices
            .iter()
            .map(|choice| self.host.tokenize(choice))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(index) = continuations.iter().position(Vec::is_empty) {
            return Err(format!("choice {index} is empty"));
        }
        let scores: Vec<f64> = self
            .host
            .score_continuations(&context, &continuations)?
            .into_iter()
            .zip(&continuations)
            .map(|(total, tokens)| total / tokens.len() as f64)
            .collect();
        let best =
            (0..scores.len()).fold(0, |best, i| if scores[i] > scores[best] { i } else { best });
        Ok(json!({"choice": best, "label": choices[best], "scores": scores}).to_string())
    }
}

export_plugins!(samplers: [], task_heads: [Choice]);
