//! Task heads' shared logic: scoring several continuations of one context with the context run
//! once ([`crate::Model::score_continuations`]), which the multiple-choice head (`plugins/choice`),
//! zero-shot classification ([`ZeroShot`]) and extractive QA build on; hidden-state features
//! ([`crate::Model::features`]), which trained classification heads ([`LinearHead`]) read.

mod classification;
mod features;
mod head;
mod qa;
mod scoring;
mod sequence_classifier;
mod zero_shot;

pub use classification::{check_labels, Classification};
pub use features::{Pooling, FEATURE_BATCH};
pub use head::{HeadInfo, LinearHead, HEAD_FILE, LABELS_FILE, PROBE_MIN_COSINE, PROBE_TEXT};
pub use qa::{ExtractedAnswer, GeneratedAnswer, QaOptions, QA_TEMPLATE};
pub use sequence_classifier::SequenceClassifier;
pub use zero_shot::{ZeroShot, ZeroShotOptions};
