//! Logits processors (Hugging Face `LogitsProcessor`s): change or mask logits, never drop a
//! candidate. Applied for greedy, beam search and sampling alike.

mod bias;
mod length;
mod ngram;
mod penalties;
mod suppress;

pub use bias::SequenceBias;
pub use length::{ForcedEos, MinLength};
pub use ngram::NoRepeatNgram;
pub use penalties::{PresenceFrequencyPenalty, RepetitionPenalty};
pub use suppress::{RemoveInvalidValues, SuppressTokens, SuppressTokensAtBegin};
