//! A gptrt sampler plugin that constrains output to a JSON Schema, a regular expression or a Lark
//! grammar, on llguidance (MIT): `org.gptrt.grammar`, a logits processor (stage `processor`).
//!
//! Config (one of): `{"json_schema": {...}}`, `{"regex": "..."}`, `{"grammar": "lark text"}`.
//! JSON comes out on one line (`, ` and `: ` separators, no other whitespace) unless the schema
//! carries llguidance's own `"x-guidance"` options.
//!
//! Each step it computes the grammar's token mask over the model's token byte table (the host's
//! `org.gptrt.token_bytes` capability) and keeps only the allowed candidates, before temperature
//! and top-k/top-p, so those work on allowed tokens alone. Where the grammar allows one token
//! only, it selects it (the warpers and the draw are skipped). It ends the sequence with stop
//! reason `grammar_complete` when the grammar admits nothing more, and with `grammar_incomplete`
//! when the token budget (`max_new_tokens` or the context window) runs out before the grammar can
//! be finished; where the grammar may end or go on, the model may end it with its end token (stop
//! reason `eos`). A schema or grammar llguidance rejects fails `create`, before generation.

mod compile;
mod tokens;

pub use compile::{COMPILE_STACK_BYTES, MAX_CONFIG_BYTES};

use std::ffi::CStr;

use gptrt_plugin_api::{
    export_plugins, CandidatesMut, Context, GptrtCandidate, GptrtSamplerStage, Host, SamplerPlugin,
    GPTRT_SAMPLER_STAGE_PROCESSOR,
};
use llguidance::api::TopLevelGrammar;
use llguidance::Matcher;
use serde_json::Value;

/// The stop reason when the grammar admits nothing more.
pub const GRAMMAR_COMPLETE: &CStr = c"grammar_complete";
/// The stop reason when the budget runs out before the grammar can be finished.
pub const GRAMMAR_INCOMPLETE: &CStr = c"grammar_incomplete";

/// At the last step the budget allows, how many of the best allowed tokens are tried for one
/// that finishes the grammar (each try is a parser step and a rollback).
const LAST_STEP_TRIES: usize = 64;

/// One constrained sequence.
pub struct Grammar {
    matcher: Matcher,
    eos: u32,
    /// A failure of `accept` (which cannot report one), reported by the next `apply`.
    pending_error: Option<String>,
}

/// The grammar a config asks for, or what is wrong with the config.
fn grammar_of(config_json: &str) -> Result<TopLevelGrammar, String> {
    let config: Value = serde_json::from_str(config_json)
        .map_err(|e| format!("config is not JSON: {e} (expected {{\"json_schema\": {{...}}}}, {{\"regex\": \"...\"}} or {{\"grammar\": \"...\"}})"))?;
    let object = config
        .as_object()
        .ok_or("config must be a JSON object with one of `json_schema`, `regex`, `grammar`")?;
    let keys: Vec<&String> = object.keys().collect();
    match keys.as_slice() {
        [key] if key.as_str() == "json_schema" => {
            let mut schema = object["json_schema"].clone();
            let Some(fields) = schema.as_object_mut() else {
                return Err("`json_schema` must be a JSON Schema (an object)".to_string());
            };
            // One space after `,` and `:` and no other whitespace: with llguidance's default
            // (whitespace allowed between tokens) a small model can spend the whole budget on
            // spaces. A schema's own `x-guidance` options win.
            if !fields.contains_key("x-guidance") {
                fields.insert(
                    "x-guidance".to_string(),
                    serde_json::json!({
                        "whitespace_flexible": false,
                        "item_separator": ", ",
                        "key_separator": ": "
                    }),
                );
            }
            Ok(TopLevelGrammar::from_json_schema(schema))
        }
        [key] if key.as_str() == "regex" => object["regex"]
            .as_str()
            .map(TopLevelGrammar::from_regex)
            .ok_or_else(|| "`regex` must be a string".to_string()),
        [key] if key.as_str() == "grammar" => object["grammar"]
            .as_str()
            .map(|lark| TopLevelGrammar::from_lark(lark.to_string()))
            .ok_or_else(|| "`grammar` must be a string (a Lark grammar)".to_string()),
        _ => Err(format!(
            "config must have exactly one of `json_schema`, `regex`, `grammar` (it has: {})",
            if keys.is_empty() {
                "nothing".to_string()
            } else {
                keys.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )),
    }
}

fn kind_of(config_json: &str) -> &'static str {
    if config_json.contains("\"json_schema\"") {
        "JSON schema"
    } else if config_json.contains("\"regex\"") {
        "regex"
    } else {
        "grammar"
    }
}

impl Grammar {
    /// Keep the allowed candidates (order kept); returns how many remain.
    fn keep_allowed(items: &mut [GptrtCandidate], allowed: impl Fn(u32) -> bool) -> usize {
        let mut kept = 0;
        for i in 0..items.len() {
            if allowed(items[i].id) {
                items.swap(kept, i);
                kept += 1;
            }
        }
        kept
    }

    /// Whether the grammar can be finished right after `token`.
    fn finishes_with(&mut self, token: u32) -> bool {
        if self.matcher.consume_token(token).is_err() {
            return false;
        }
        let done = self.matcher.is_stopped() || self.matcher.is_accepting().unwrap_or(false);
        // A rollback that fails leaves the matcher in its error state, reported next step.
        let _ = self.matcher.rollback(1);
        done
    }

    /// The last step the budget allows: keep only tokens that finish the grammar (trying the best
    /// few), or end the sequence now.
    fn last_step(&mut self, candidates: &mut CandidatesMut<'_>) -> Result<(), String> {
        let eos = self.eos;
        let items = candidates.as_mut_slice();
        let tries = items.len().min(LAST_STEP_TRIES);
        if tries < items.len() {
            items.select_nth_unstable_by(tries, |a, b| b.logit.total_cmp(&a.logit));
        }
        let mut kept = 0;
        for i in 0..tries {
            let id = items[i].id;
            if id != eos && self.finishes_with(id) {
                items.swap(kept, i);
                kept += 1;
            }
        }
        if kept > 0 {
            candidates.truncate(kept);
            candidates.logits_changed();
            return Ok(());
        }
        let accepting = self.matcher.is_accepting().map_err(|e| e.to_string())?;
        let reason = if accepting {
            GRAMMAR_COMPLETE
        } else {
            GRAMMAR_INCOMPLETE
        };
        if !candidates.stop(reason) {
            return Err("the host is older than plugin ABI 1.2 and cannot end a sequence".into());
        }
        Ok(())
    }
}

impl SamplerPlugin for Grammar {
    const ID: &'static str = "org.gptrt.grammar";
    const NAME: &'static str = "Grammar (JSON Schema, regex, Lark)";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str =
        "Constrains output to a JSON Schema, regex or Lark grammar (llguidance); stops with grammar_complete";
    const STAGE: GptrtSamplerStage = GPTRT_SAMPLER_STAGE_PROCESSOR;

    fn create(host: Host, config_json: &str) -> Result<Self, String> {
        if config_json.trim().is_empty() {
            return Err("needs a config: {\"json_schema\": {...}}, {\"regex\": \"...\"} or {\"grammar\": \"...\"}".to_string());
        }
        let (factory, eos) = tokens::factory(&host)?;
        let parser = compile::parser(factory, config_json, kind_of(config_json))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(error) = matcher.get_error() {
            return Err(format!("the {} is invalid: {error}", kind_of(config_json)));
        }
        Ok(Grammar {
            matcher,
            eos,
            pending_error: None,
        })
    }

    fn apply(
        &mut self,
        candidates: &mut CandidatesMut<'_>,
        context: &Context<'_>,
    ) -> Result<(), String> {
        if let Some(error) = self.pending_error.take() {
            return Err(error);
        }
        if self.matcher.is_stopped() {
            if let Some(error) = self.matcher.get_error() {
                return Err(format!("grammar matcher failed: {error}"));
            }
            candidates.stop(GRAMMAR_COMPLETE);
            return Ok(());
        }
        let mask = self
            .matcher
            .compute_mask()
            .map_err(|e| format!("grammar mask failed: {e}"))?;
        let eos = self.eos;
        let only_eos = mask.is_allowed(eos) && mask.num_set() == 1;
        if only_eos || mask.is_zero() {
            // Nothing more to write: the grammar is complete (an empty mask means llguidance has
            // nothing left either, as for a grammar whose end token is not the model's).
            candidates.stop(GRAMMAR_COMPLETE);
            return Ok(());
        }
        let vocab = mask.len();
        let kept = Self::keep_allowed(candidates.as_mut_slice(), |id| {
            (id as usize) < vocab && mask.is_allowed(id)
        });
        if kept == 0 {
            return Err(
                "no candidate the grammar allows is left (an earlier link removed them)".into(),
            );
        }
        candidates.truncate(kept);
        candidates.logits_changed();
        if context.tokens.len() + 1 >= context.max_length {
            return self.last_step(candidates);
        }
        if kept == 1 {
            // One continuation only: take it without sampling.
            candidates.select(0);
        }
        Ok(())
    }

    fn accept(&mut self, token: u32) {
        if let Err(e) = self.matcher.consume_token(token) {
            self.pending_error = Some(format!("token {token} does not fit the grammar: {e}"));
        }
    }

    fn reset(&mut self) {
        self.pending_error = self
            .matcher
            .reset()
            .err()
            .map(|e| format!("grammar reset failed: {e}"));
    }
}

export_plugins!(samplers: [Grammar], task_heads: []);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_what_is_wrong() {
        assert!(grammar_of("{").unwrap_err().contains("not JSON"));
        assert!(grammar_of("[]").unwrap_err().contains("JSON object"));
        let both = grammar_of(r#"{"regex": "a", "grammar": "b"}"#).unwrap_err();
        assert!(
            both.contains("exactly one") && both.contains("`grammar`"),
            "{both}"
        );
        assert!(grammar_of(r#"{"regex": 3}"#)
            .unwrap_err()
            .contains("string"));
        assert!(grammar_of(r#"{"json_schema": 3}"#)
            .unwrap_err()
            .contains("JSON Schema"));
        assert!(grammar_of(r#"{"regex": "a+"}"#).is_ok());
    }
}
