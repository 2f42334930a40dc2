//! `org.gptrt.qa`: question answering over a context, the host's model answering.
//!
//! Input: `{"context": "...", "question": "...", "extractive": false, "max_span_words": 6,
//! "max_answer_tokens": 24}`. The prompt is gptrt's `QA_TEMPLATE`,
//! `"{context}\nQuestion: {question}\nAnswer:"`.
//! - generative (default): greedy generation, stopped at the end of the line:
//!   `{"answer", "confidence", "in_context"}`, the confidence the probability of the answer's
//!   tokens (their log-probabilities after the prompt, summed, exponentiated);
//! - extractive: every run of 1 to `max_span_words` words of the context (and each without its
//!   trailing punctuation) is scored as the continuation `" " + span + "\n"`, all from one KV cache
//!   of the prompt (host `score_continuations`, one more prompt pass per further 1,024 spans):
//!   `{"answer", "start", "end", "confidence", "candidates"}`, `start` and `end` character offsets
//!   with `context[start:end] == answer`, the confidence the span's softmax share.

use gptrt_plugin_api::qa::{answer_spans, qa_prompt};
use gptrt_plugin_api::{export_plugins, Host, TaskHeadPlugin};
use serde_json::{json, Value};

/// Question answering.
pub struct Qa {
    host: Host,
}

/// Most continuations one host `score_continuations` call takes.
const MAX_CONTINUATIONS: usize = 1024;
/// GPT-2's `<|endoftext|>`.
const GPT2_END_OF_TEXT: u32 = 50256;

impl TaskHeadPlugin for Qa {
    const ID: &'static str = "org.gptrt.qa";
    const NAME: &'static str = "Question answering";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str =
        "Answers a question about a context: generated, or the most likely span of the context";

    fn create(host: Host, _config_json: &str) -> Result<Self, String> {
        Ok(Qa { host })
    }

    fn run(&mut self, input_json: &str) -> Result<String, String> {
        let input: Value =
            serde_json::from_str(input_json).map_err(|e| format!("input is not JSON: {e}"))?;
        let text = |name: &str| -> Result<String, String> {
            let value = input[name]
                .as_str()
                .ok_or(format!("input needs a string `{name}`"))?;
            if value.trim().is_empty() {
                return Err(format!("the {name} is empty"));
            }
            Ok(value.to_string())
        };
        let (context, question) = (text("context")?, text("question")?);
        let prompt = qa_prompt(&context, &question);
        if input["extractive"].as_bool().unwrap_or(false) {
            let max_words = input["max_span_words"].as_u64().unwrap_or(6).max(1) as usize;
            self.extract(&context, &prompt, max_words)
        } else {
            let max_tokens = input["max_answer_tokens"].as_u64().unwrap_or(24).max(1);
            self.generate(&context, &prompt, max_tokens)
        }
    }
}

impl Qa {
    fn generate(&self, context: &str, prompt: &str, max_tokens: u64) -> Result<String, String> {
        let config =
            json!({"max_new_tokens": max_tokens, "stop_strings": "\n", "do_sample": false});
        let text = self.host.generate(prompt, Some(&config.to_string()))?;
        let line = text.split('\n').next().unwrap_or_default();
        let answer = line.trim();
        // The answer's probability: its tokens (as the line's text re-tokenized) after the prompt.
        let confidence = if line.is_empty() {
            1.0
        } else {
            let prompt_ids = self.host.tokenize(prompt)?;
            let line_ids = self.host.tokenize(line)?;
            self.host.score(&prompt_ids, &line_ids)?.exp()
        };
        Ok(json!({
            "answer": answer,
            "confidence": confidence,
            "in_context": !answer.is_empty() && context.contains(answer),
        })
        .to_string())
    }

    fn extract(&self, context: &str, prompt: &str, max_words: usize) -> Result<String, String> {
        let spans = answer_spans(context, max_words);
        let mut prefix = vec![GPT2_END_OF_TEXT];
        prefix.extend(self.host.tokenize(prompt)?);
        let continuations = spans
            .iter()
            .map(|&(start, end)| self.host.tokenize(&format!(" {}\n", &context[start..end])))
            .collect::<Result<Vec<_>, _>>()?;
        let mut scores = Vec::with_capacity(spans.len());
        for chunk in continuations.chunks(MAX_CONTINUATIONS) {
            scores.extend(self.host.score_continuations(&prefix, chunk)?);
        }
        let best = (0..scores.len()).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
        let top = scores[best];
        let total: f64 = scores.iter().map(|s| (s - top).exp()).sum();
        let (start, end) = spans[best];
        let chars = |byte: usize| context[..byte].chars().count();
        Ok(json!({
            "answer": &context[start..end],
            "start": chars(start),
            "end": chars(end),
            "confidence": 1.0 / total,
            "candidates": spans.len(),
        })
        .to_string())
    }
}

export_plugins!(samplers: [], task_heads: [Qa]);
