//! Warpers (Hugging Face `LogitsWarper`s): reshape or cut the distribution; applied only when
//! sampling.

use crate::sampling::Candidates;

mod cutoff;
mod normalization;
mod temperature;
mod top_k;
mod top_p;
mod typical;

pub use cutoff::{EpsilonCutoff, EtaCutoff};
pub use normalization::LogitNormalization;
pub use temperature::Temperature;
pub use top_k::TopK;
pub use top_p::{MinP, TopP};
pub use typical::Typical;

/// Drop tokens with `p < threshold`, except the `min_keep` best (by logit, ties kept).
pub(super) fn cut_below(candidates: &mut Candidates, threshold: f32, min_keep: usize) {
    let min_keep = min_keep.max(1).min(candidates.len());
    let kth = candidates.top_scratch(min_keep)[min_keep - 1].logit;
    candidates.retain(|c| !(c.p < threshold && c.logit < kth));
}
