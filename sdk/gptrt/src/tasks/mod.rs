//! What task heads share: scoring several continuations of one context with the context run once
//! ([`crate::Model::score_continuations`]), which the multiple-choice head (`plugins/choice`) and
//! zero-shot classification build on, and hidden-state features ([`crate::Model::features`]), which
//! trained classification heads read.

mod features;
mod scoring;

pub use features::{Pooling, FEATURE_BATCH};
