//! `org.gptrt.dialogue`: a turn-based dialogue task head over one host session (capability
//! `org.gptrt.sessions`), kept across runs of the instance so each turn runs only its new tokens.
//!
//! Config (JSON): `{"persona": "...", "user_tag": "User:", "bot_tag": "Bot:", "turn_template":
//! "{user_tag} {text}\n{bot_tag}", "max_new_tokens": 32, ...}`. `turn_template` is what a user
//! turn appends (a `"\n"` goes before it unless the dialogue is empty) and must contain `{text}`;
//! `{user_tag}` and `{bot_tag}` are replaced by the tags. Every other field is a generation option
//! (Hugging Face `generation_config.json` names, over the model's own); `stop_strings` gain the
//! user tag, where a reply ends.
//!
//! Input (JSON), one action per run:
//! - `{"say": TEXT}` -> `{"reply", "stop_reason", "dropped_turns", "context_tokens",
//!   "prompt_tokens_processed", "turn"}`; when the dialogue would overflow the context window the
//!   oldest whole turns are dropped, never the persona;
//! - `{"save": true}` (with `"fp16_kv": true` for a half-size cache) -> `{"state": BASE64}`;
//! - `{"restore": BASE64}` -> `{"context_tokens", "turns"}`: continue a saved dialogue (persona and
//!   tags included) exactly;
//! - `{"reset": true}` -> `{"context_tokens"}`: back to the persona alone.

mod base64;
mod dialogue;

use gptrt_plugin_api::{export_plugins, Host, TaskHeadPlugin};
use serde_json::{json, Map, Value};

use dialogue::{Dialogue, Settings};

impl TaskHeadPlugin for Dialogue {
    const ID: &'static str = "org.gptrt.dialogue";
    const NAME: &'static str = "Dialogue";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "turn-based dialogue with a persona over a host session that keeps its cache between turns";

    fn create(host: Host, config_json: &str) -> Result<Self, String> {
        let config: Value = if config_json.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str(config_json).map_err(|e| format!("config is not JSON: {e}"))?
        };
        let Value::Object(mut config) = config else {
            return Err("config is not a JSON object".to_string());
        };
        let mut text = |field: &str, default: &str| -> Result<String, String> {
            match config.remove(field) {
                None | Some(Value::Null) => Ok(default.to_string()),
                Some(Value::String(s)) => Ok(s),
                Some(other) => Err(format!(
                    "config field \"{field}\" must be a string, not {other}"
                )),
            }
        };
        let persona = text("persona", "")?;
        let user_tag = text("user_tag", "User:")?;
        let bot_tag = text("bot_tag", "Bot:")?;
        let template = text("turn_template", "{user_tag} {text}\n{bot_tag}")?;
        if user_tag.trim().is_empty() {
            return Err("config field \"user_tag\" is empty: replies end at it".to_string());
        }
        if !template.contains("{text}") {
            return Err(format!(
                "config field \"turn_template\" ({template:?}) has no {{text}} for the user's words"
            ));
        }
        let overflow_keep = match config.remove("overflow_keep") {
            None | Some(Value::Null) => gptrt_plugin_api::DEFAULT_OVERFLOW_KEEP,
            Some(Value::Number(share)) => gptrt_plugin_api::TurnWindow::check_keep(
                share.as_f64().unwrap_or(f64::NAN),
                "config field \"overflow_keep\"",
            )?,
            Some(other) => {
                return Err(format!(
                    "config field \"overflow_keep\" must be a number in (0, 1], not {other}"
                ))
            }
        };
        if !config.contains_key("max_new_tokens") {
            config.insert("max_new_tokens".to_string(), json!(32));
        }
        let max_new_tokens = config["max_new_tokens"]
            .as_u64()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                format!(
                    "config field \"max_new_tokens\" must be a positive integer, not {}",
                    config["max_new_tokens"]
                )
            })? as usize;
        let settings = Settings {
            persona,
            user_tag,
            bot_tag,
            template,
            max_new_tokens,
            overflow_keep,
            generation: config,
        };
        Dialogue::new(host, settings)
    }

    fn run(&mut self, input_json: &str) -> Result<String, String> {
        let input: Value =
            serde_json::from_str(input_json).map_err(|e| format!("input is not JSON: {e}"))?;
        let Value::Object(input) = input else {
            return Err("input is not a JSON object".to_string());
        };
        let actions = ["say", "save", "restore", "reset"];
        if let Some(unknown) = input
            .keys()
            .find(|k| !actions.contains(&k.as_str()) && k.as_str() != "fp16_kv")
        {
            return Err(format!(
                "unknown input field \"{unknown}\" (the actions are \"say\", \"save\", \"restore\" \
                 and \"reset\")"
            ));
        }
        let given: Vec<&str> = actions
            .into_iter()
            .filter(|a| input.contains_key(*a))
            .collect();
        let [action] = given[..] else {
            return Err(format!(
                "input needs exactly one action of \"say\", \"save\", \"restore\", \"reset\" \
                 (got {})",
                given.len()
            ));
        };
        let output = match (action, &input[action]) {
            ("say", Value::String(text)) => self.say(text)?,
            ("save", Value::Bool(true)) => {
                let fp16 = input
                    .get("fp16_kv")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                json!({ "state": base64::encode(&self.save(fp16)?) })
            }
            ("restore", Value::String(state)) => {
                let bytes = base64::decode(state)
                    .map_err(|e| format!("\"restore\" is not a base64 state: {e}"))?;
                self.restore(&bytes)?
            }
            ("reset", Value::Bool(true)) => self.reset()?,
            (action, value) => {
                let wanted = match action {
                    "say" | "restore" => "a string",
                    _ => "true",
                };
                return Err(format!("\"{action}\" must be {wanted}, not {value}"));
            }
        };
        Ok(output.to_string())
    }
}

export_plugins!(samplers: [], task_heads: [Dialogue]);
