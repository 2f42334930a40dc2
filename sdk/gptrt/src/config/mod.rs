//! `config.json` (the model's shape) and `generation_config.json` (Hugging Face generation defaults).

mod generation;
mod model;
mod values;

pub use generation::{GenerationConfig, MAX_SEQUENCES_PER_PROMPT};
pub use model::{ModelConfig, MAX_EMBD, MAX_HEADS, MAX_LAYERS, MAX_POSITIONS, MAX_VOCAB};
pub use values::{EarlyStopping, StopStrings, TokenIds};
