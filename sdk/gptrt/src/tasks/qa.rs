//! Question answering over a context, two ways: generative (greedy, one line) and extractive (the
//! span of the context most likely as the answer, every candidate scored from one shared KV cache
//! of the prompt).

use serde::{Deserialize, Serialize};

use crate::config::{GenerationConfig, StopStrings};
use crate::error::{Error, Result};
use crate::generate::MAX_ROWS;
use crate::model::Model;

/// The prompt both kinds of answer continue (shared with `plugins/qa`): `{context}` and
/// `{question}` are filled in, the answer follows `Answer:` after a space and ends at the end of
/// its line.
pub use gptrt_plugin_api::qa::QA_TEMPLATE;
use gptrt_plugin_api::qa::{answer_spans, qa_prompt};

/// Options of [`Model::answer`] and [`Model::extract_answer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QaOptions {
    /// Generative: most tokens generated for the answer.
    pub max_answer_tokens: usize,
    /// Extractive: longest candidate span, in words of the context. The candidates are every run
    /// of 1 to this many whitespace-separated words (and each without its trailing punctuation),
    /// so their count grows with the context's length times this bound.
    pub max_span_words: usize,
}

impl Default for QaOptions {
    fn default() -> QaOptions {
        QaOptions {
            max_answer_tokens: 24,
            max_span_words: 6,
        }
    }
}

/// A generated answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneratedAnswer {
    /// The answer's text (its line, trimmed).
    pub answer: String,
    /// The probability of the answer's tokens under the model (their log-probabilities summed,
    /// exponentiated).
    pub confidence: f64,
    /// Whether the answer occurs word for word in the context.
    pub in_context: bool,
}

/// A span of the context chosen as the answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtractedAnswer {
    /// The span's text: `context[start..end]` in characters.
    pub answer: String,
    /// Character (Unicode scalar) offset of the span's start in the context.
    pub start: usize,
    /// Character offset just past the span's end.
    pub end: usize,
    /// The span's probability among the candidates (a softmax of their log-likelihoods).
    pub confidence: f64,
    /// How many candidate spans were scored.
    pub candidates: usize,
}

fn prompt(context: &str, question: &str) -> Result<String> {
    for (name, value) in [("context", context), ("question", question)] {
        if value.trim().is_empty() {
            return Err(Error::InvalidArgument {
                name,
                message: format!("the {name} is empty"),
            });
        }
    }
    Ok(qa_prompt(context, question))
}

impl Model {
    /// Answer `question` about `context` by greedy generation after [`QA_TEMPLATE`], stopped at
    /// the end of the line.
    pub fn answer(
        &self,
        context: &str,
        question: &str,
        options: &QaOptions,
    ) -> Result<GeneratedAnswer> {
        let prompt = prompt(context, question)?;
        let config = GenerationConfig {
            max_new_tokens: Some(options.max_answer_tokens.max(1)),
            stop_strings: Some(StopStrings::One("\n".to_string())),
            logprobs: Some(0),
            eos_token_id: self.generation_config().eos_token_id.clone(),
            ..GenerationConfig::default()
        };
        let generation = self.generate(&prompt, &config)?;
        // The answer's tokens: those before the one that brought the line break (or the end).
        let mut logprob = 0f64;
        for (index, token) in generation.logprobs.iter().flatten().enumerate() {
            let piece = self
                .tokenizer()
                .decode(&generation.token_ids[index..=index], true)?;
            if piece.contains('\n') || self.config().eos_token_id == token.token_id {
                break;
            }
            logprob += f64::from(token.logprob);
        }
        let answer = generation.text.trim().to_string();
        Ok(GeneratedAnswer {
            in_context: !answer.is_empty() && context.contains(&answer),
            confidence: logprob.exp(),
            answer,
        })
    }

    /// The span of `context` most likely as the answer to `question`: every candidate span
    /// ([`QaOptions::max_span_words`]) is scored as the continuation `" " + span + "\n"` of
    /// [`QA_TEMPLATE`], all from one KV cache of the prompt ([`Model::score_continuations`]; one
    /// more prompt pass per further 1,024 candidates).
    pub fn extract_answer(
        &self,
        context: &str,
        question: &str,
        options: &QaOptions,
    ) -> Result<ExtractedAnswer> {
        let prompt = prompt(context, question)?;
        let spans = answer_spans(context, options.max_span_words.max(1));
        let mut prefix = vec![self.config().eos_token_id];
        prefix.extend(self.tokenizer().encode(&prompt)?);
        let continuations = spans
            .iter()
            .map(|&(start, end)| {
                self.tokenizer()
                    .encode(&format!(" {}\n", &context[start..end]))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut scores = Vec::with_capacity(spans.len());
        for chunk in continuations.chunks(MAX_ROWS) {
            scores.extend(self.score_continuations(&prefix, chunk)?);
        }
        let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = scores.iter().map(|s| (s - top).exp()).sum();
        let best = scores
            .iter()
            .enumerate()
            .fold(0, |best, (i, &s)| if s > scores[best] { i } else { best });
        let (start, end) = spans[best];
        let chars = |byte: usize| context[..byte].chars().count();
        Ok(ExtractedAnswer {
            answer: context[start..end].to_string(),
            start: chars(start),
            end: chars(end),
            confidence: (scores[best] - top).exp() / total,
            candidates: spans.len(),
        })
    }
}
