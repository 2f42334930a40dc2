//! `org.gptrt.classify`: a task head that classifies texts, configured once at `create` and run
//! on many texts.
//!
//! Config (JSON), one of:
//! - zero-shot: `{"labels": ["sports", "politics", ...], "template": "\nTopic:", "calibrate": false}`:
//!   each label's verbalizer (`" " + label`) is scored by its log-likelihood after
//!   `<|endoftext|> + text + template`, the text run once and every label continuing from its KV
//!   cache (host `score_continuations`); with `calibrate`, each label's log-likelihood after the
//!   content-free input "N/A" (computed once, at `create`) is subtracted first;
//! - a trained head: `{"head": "DIR"}`, a folder written by `gptrt train-head` (`head.safetensors` +
//!   `labels.json`), read once at `create`; it needs the host capability `org.gptrt.hidden_states`
//!   (the model's graph must return `last_hidden_state`) and is refused for another model (hidden
//!   size, or the features of its probe text).
//!
//! Input: `{"text": "..."}` -> `{"label": ..., "scores": {"a": p, ...}}` (scores sum to 1), or
//! `{"texts": [...]}` -> `{"results": [ {...}, ... ]}` in input order.

mod head;

use gptrt_plugin_api::{export_plugins, Host, TaskHeadPlugin};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use head::TrainedHead;

/// Text classification.
pub struct Classify {
    host: Host,
    mode: Mode,
}

enum Mode {
    ZeroShot(ZeroShot),
    Head(TrainedHead),
}

struct ZeroShot {
    labels: Vec<String>,
    label_ids: Vec<Vec<u32>>,
    template: String,
    baseline: Vec<f64>,
    start_token: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    labels: Option<Vec<String>>,
    template: Option<String>,
    #[serde(default)]
    calibrate: bool,
    head: Option<String>,
}

/// GPT-2's `<|endoftext|>`, the start token when the host cannot report the model's.
const GPT2_END_OF_TEXT: u32 = 50256;

impl TaskHeadPlugin for Classify {
    const ID: &'static str = "org.gptrt.classify";
    const NAME: &'static str = "Text classification";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str =
        "Classifies texts zero-shot by label likelihood, or with a head trained on hidden states";

    fn create(host: Host, config_json: &str) -> Result<Self, String> {
        let config: Config = serde_json::from_str(if config_json.trim().is_empty() {
            "{}"
        } else {
            config_json
        })
        .map_err(|e| format!("config: {e}"))?;
        let mode = match (config.labels, config.head) {
            (Some(_), Some(_)) => return Err("config: give `labels` or `head`, not both".into()),
            (None, None) => {
                return Err("config: give `labels` (zero-shot) or `head` (a trained head)".into())
            }
            (None, Some(dir)) => Mode::Head(TrainedHead::load(&host, dir.as_ref())?),
            (Some(labels), None) => {
                check_labels(&labels)?;
                let start_token = start_token(&host);
                let label_ids = labels
                    .iter()
                    .map(|label| host.tokenize(&format!(" {}", label.trim())))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut zero_shot = ZeroShot {
                    labels,
                    label_ids,
                    template: config.template.unwrap_or_else(|| "\nTopic:".to_string()),
                    baseline: Vec::new(),
                    start_token,
                };
                zero_shot.baseline = if config.calibrate {
                    zero_shot.log_likelihoods(&host, "N/A")?
                } else {
                    vec![0.0; zero_shot.labels.len()]
                };
                Mode::ZeroShot(zero_shot)
            }
        };
        Ok(Classify { host, mode })
    }

    fn run(&mut self, input_json: &str) -> Result<String, String> {
        let input: Value =
            serde_json::from_str(input_json).map_err(|e| format!("input is not JSON: {e}"))?;
        if let Some(text) = input.get("text") {
            let text = text.as_str().ok_or("`text` must be a string")?;
            let mut results = self.classify(&[text.to_string()])?;
            return Ok(results.pop().unwrap_or(Value::Null).to_string());
        }
        let texts: Vec<String> = input
            .get("texts")
            .and_then(Value::as_array)
            .ok_or("input needs a string `text` or an array `texts`")?
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or("every text must be a string")
            })
            .collect::<Result<_, _>>()?;
        Ok(json!({"results": self.classify(&texts)?}).to_string())
    }
}

impl Classify {
    fn classify(&self, texts: &[String]) -> Result<Vec<Value>, String> {
        if let Some(index) = texts.iter().position(|t| t.trim().is_empty()) {
            return Err(format!(
                "text {index} is empty: there is nothing to classify"
            ));
        }
        match &self.mode {
            Mode::ZeroShot(zero_shot) => texts
                .iter()
                .map(|text| {
                    let scores: Vec<f64> = zero_shot
                        .log_likelihoods(&self.host, text)?
                        .iter()
                        .zip(&zero_shot.baseline)
                        .map(|(s, b)| s - b)
                        .collect();
                    Ok(result(&zero_shot.labels, &scores))
                })
                .collect(),
            Mode::Head(head) => {
                let sequences = texts
                    .iter()
                    .map(|text| self.host.tokenize(text))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(head
                    .logits(&sequences)?
                    .iter()
                    .map(|logits| result(head.labels(), logits))
                    .collect())
            }
        }
    }
}

impl ZeroShot {
    fn log_likelihoods(&self, host: &Host, text: &str) -> Result<Vec<f64>, String> {
        let mut context = vec![self.start_token];
        context.extend(host.tokenize(&format!("{text}{}", self.template))?);
        host.score_continuations(&context, &self.label_ids)
    }
}

fn start_token(host: &Host) -> u32 {
    host.model_config_json()
        .ok()
        .and_then(|json| serde_json::from_str::<Value>(&json).ok())
        .and_then(|config| config["eos_token_id"].as_u64())
        .and_then(|id| u32::try_from(id).ok())
        .unwrap_or(GPT2_END_OF_TEXT)
}

/// At least two labels, none empty, no two alike.
pub(crate) fn check_labels(labels: &[String]) -> Result<(), String> {
    if labels.len() < 2 {
        return Err(format!(
            "a classifier needs at least two labels, got {}",
            labels.len()
        ));
    }
    for (index, label) in labels.iter().enumerate() {
        if label.trim().is_empty() {
            return Err(format!("label {index} is empty"));
        }
        if labels[..index].contains(label) {
            return Err(format!("label `{label}` appears twice"));
        }
    }
    Ok(())
}

/// `{"label": ..., "scores": {...}}` from log-scores: a softmax, labels in order.
fn result(labels: &[String], log_scores: &[f64]) -> Value {
    let top = log_scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = log_scores.iter().map(|s| (s - top).exp()).collect();
    let total: f64 = exps.iter().sum();
    let mut scores = Map::new();
    let mut best = 0;
    for (index, (label, e)) in labels.iter().zip(&exps).enumerate() {
        scores.insert(label.clone(), json!(e / total));
        if *e > exps[best] {
            best = index;
        }
    }
    json!({"label": labels[best], "scores": scores})
}

export_plugins!(samplers: [], task_heads: [Classify]);
