//! # gptrt
//!
//! Run GPT-2 graphs exported to ONNX through ONNX Runtime, with GPT-2's real byte-level BPE
//! tokenizer and a KV cache.
//!
//! Data flows one way:
//!
//! ```text
//! text -> Tokenizer -> ids -> Model::forward (prompt) -> logits -> greedy -> token
//!                              |  KV cache (present -> past, no copy)  |
//!                              +------ Model::forward (next token) <---+
//! token -> StreamDecoder (UTF-8 safe) -> your callback
//! ```
//!
//! ```no_run
//! use gptrt::{GenerationConfig, Model};
//!
//! # fn main() -> gptrt::Result<()> {
//! let model = Model::load("models/fixtures/tiny-random-gpt2/single")?;
//! let config = GenerationConfig { max_new_tokens: Some(16), ..model.generation_config().clone() };
//! let out = model.generate_with("Once upon a time", &config, |event| {
//!     print!("{}", event.text);
//!     true // return false to stop
//! })?;
//! println!("\n{} tokens, stopped by {}", out.token_ids.len(), out.stop_reason);
//! # Ok(())
//! # }
//! ```
//!
//! For hosts with a frame loop, a [`Session`] runs generations on its own worker thread (start,
//! poll without waiting for a forward pass, cancel, wait), and a [`Batcher`] steps many sessions
//! together in one continuously batched forward pass. Task heads build on
//! [`Model::score_continuations`] (one context, many continuations, the context run once).
//!
//! The ONNX Runtime shared library is loaded at run time (see [`Runtime`] for where it is looked
//! for); `scripts/setup.sh` installs it.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod batch;
pub mod config;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
pub mod graph;
mod kv;
/// The graph layouts gptrt detects (moved to [`graph::signature`]; this path stays).
pub use graph::signature as layout;
pub mod model;
pub mod plugin;
pub mod provider;
pub mod runtime;
pub mod sampling;
pub mod session;
pub mod tasks;
pub mod tokenizer;
mod worker;

pub use batch::{Batcher, BatcherStats};
pub use config::{EarlyStopping, GenerationConfig, ModelConfig, StopStrings, TokenIds};
pub use error::{Error, Result};
pub use generate::{
    CancelToken, Generation, GenerationStats, Generator, StopReason, TokenEvent, TokenLogprob,
    ROW_ALIGNMENT,
};
pub use layout::{Layout, Signature, TensorInfo};
pub use model::{Fingerprint, Model, ModelBytes};
pub use plugin::{
    Allowlist, PluginHost, PluginInfo, PluginKind, PluginLibrary, PluginSampler, SamplerSpec,
    SharedPluginHost, TaskHead,
};
pub use provider::{ExecutionProvider, ProviderChoice, ProviderRequest};
pub use runtime::{OptimizationLevel, Runtime, RuntimeBuilder, RuntimeOptions};
pub use sampling::{Candidate, Candidates, Sampler, SamplerChain, SamplerContext, SamplerStage};
pub use session::{SavedKv, Session, SessionState};
pub use tasks::Pooling;
pub use tokenizer::{StreamDecoder, Tokenizer};
