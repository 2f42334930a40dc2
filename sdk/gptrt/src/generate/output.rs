//! What a generation hands back: its tokens and text ([`Generation`], streamed as
//! [`TokenEvent`]s), why it stopped, its timing and its log-probabilities, and its JSON form.

/// Why a sequence stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// An end token (`eos_token_id`) was generated; it is the last of `token_ids`.
    Eos,
    /// `max_new_tokens` (or `max_length`) was reached.
    MaxNewTokens,
    /// The context window (`n_positions`) is full.
    ContextFull,
    /// The token callback returned `false`.
    Callback,
    /// A stop string appeared in the generated text (see [`Generation::stop_string`]).
    StopString,
    /// `max_time` ran out.
    MaxTime,
    /// [`CancelToken::cancel`](crate::generate::CancelToken::cancel) was called.
    Cancelled,
    /// A sampler ended the sequence before the step's token, with its own reason (e.g. the
    /// grammar plugin's `grammar_complete` or `grammar_incomplete`; `[a-z0-9_]`, at most 48
    /// characters).
    Sampler(&'static str),
}

impl StopReason {
    /// Stable name used in JSON output and the C API.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::MaxNewTokens => "max_new_tokens",
            StopReason::ContextFull => "context_full",
            StopReason::Callback => "callback",
            StopReason::StopString => "stop_string",
            StopReason::MaxTime => "max_time",
            StopReason::Cancelled => "cancelled",
            StopReason::Sampler(name) => name,
        }
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One generated token, as handed to a streaming callback.
#[derive(Debug, Clone, Copy)]
pub struct TokenEvent<'a> {
    /// Which prompt of the batch (0 for a single prompt).
    pub row: usize,
    /// The token id.
    pub token_id: u32,
    /// The text this token completed (may be empty: part of a multi-byte character, or a special
    /// token). Concatenating every event's text gives the final `text`, except when a generation
    /// stops because a plugin call was skipped (cancelled or out of time): text held back until
    /// then (an unfinished character, a possible stop-string start) goes into `text` only.
    pub text: &'a str,
}

/// Timing of one generation call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationStats {
    /// Prompt tokens processed in the first forward pass (all rows, padding excluded).
    pub prompt_tokens: usize,
    /// Seconds spent in the first forward pass.
    pub prompt_seconds: f64,
    /// Tokens fed in the following forward passes (one per active row per step).
    pub decode_tokens: usize,
    /// Seconds spent in the following forward passes and token selection.
    pub decode_seconds: f64,
    /// Seconds spent in the sampler chains (all steps, all rows), part of the times above.
    pub sampling_seconds: f64,
}

impl GenerationStats {
    /// Prompt tokens per second.
    pub fn prompt_tokens_per_second(&self) -> f64 {
        rate(self.prompt_tokens, self.prompt_seconds)
    }
    /// Decode tokens per second.
    pub fn decode_tokens_per_second(&self) -> f64 {
        rate(self.decode_tokens, self.decode_seconds)
    }
}

fn rate(tokens: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        tokens as f64 / seconds
    } else {
        0.0
    }
}

/// The result for one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The prompt's ids as fed to the model (after truncation; `[bos]` for an empty prompt).
    pub prompt_token_ids: Vec<u32>,
    /// Generated ids only (an end token that stopped generation is included, as in Hugging Face).
    pub token_ids: Vec<u32>,
    /// The generated text (special tokens left out).
    pub text: String,
    /// Why generation stopped.
    pub stop_reason: StopReason,
    /// The stop string that ended generation, when `stop_reason` is `StopString`.
    pub stop_string: Option<String>,
    /// Per-token log-probabilities, when `logprobs` was requested.
    pub logprobs: Option<Vec<TokenLogprob>>,
    /// The sampling seed used (when sampling), so the run can be repeated.
    pub seed: Option<u64>,
    /// Beam search's score of this sequence (`sum_logprobs / length ** length_penalty`).
    pub score: Option<f32>,
    /// Timing of the call (shared by all rows of a batch).
    pub stats: GenerationStats,
}

impl Generation {
    /// The result as JSON, the one form the CLI's `--json` and the C API share: `text`,
    /// `token_ids`, `prompt_token_ids`, `stop_reason`, the timing, and when present `stop_string`,
    /// `seed`, `score` and `logprobs` (each token with its text).
    pub fn to_json(&self, tokenizer: &crate::tokenizer::Tokenizer) -> serde_json::Value {
        use serde_json::json;
        let piece = |id: u32| {
            tokenizer
                .token_bytes(id)
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .unwrap_or_default()
        };
        let stats = &self.stats;
        let mut output = json!({
            "text": self.text,
            "prompt_token_ids": self.prompt_token_ids,
            "token_ids": self.token_ids,
            "stop_reason": self.stop_reason.name(),
            "prompt_tokens": stats.prompt_tokens,
            "prompt_seconds": stats.prompt_seconds,
            "prompt_tokens_per_second": stats.prompt_tokens_per_second(),
            "decode_tokens": stats.decode_tokens,
            "decode_seconds": stats.decode_seconds,
            "decode_tokens_per_second": stats.decode_tokens_per_second(),
        });
        if let Some(stop) = &self.stop_string {
            output["stop_string"] = json!(stop);
        }
        if let Some(seed) = self.seed {
            output["seed"] = json!(seed);
        }
        if let Some(score) = self.score {
            output["score"] = json!(score);
        }
        if let Some(logprobs) = &self.logprobs {
            output["logprobs"] = logprobs
                .iter()
                .map(|lp| {
                    let top: Vec<_> = lp
                        .top
                        .iter()
                        .map(|&(id, logprob)| json!({"token_id": id, "token": piece(id), "logprob": logprob}))
                        .collect();
                    json!({"token_id": lp.token_id, "token": piece(lp.token_id), "logprob": lp.logprob, "top": top})
                })
                .collect();
        }
        output
    }
}

/// Log-probability of a generated token under the model (log-softmax of the raw logits, before
/// any processor), with the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The chosen token.
    pub token_id: u32,
    /// Its natural-log probability.
    pub logprob: f32,
    /// The `logprobs` most likely tokens and their log-probabilities, best first.
    pub top: Vec<(u32, f32)>,
}
