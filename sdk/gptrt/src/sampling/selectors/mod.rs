//! Selectors: the last link of a chain, which chooses the token.

mod dist;
mod greedy;

pub use dist::{Dist, Rng};
pub use greedy::Greedy;

pub(crate) fn max_ignoring_nan(max: f32, value: f32) -> f32 {
    if value > max {
        value
    } else {
        max
    }
}

/// Whether a token with this logit may be chosen: not `-inf` (a ban), not NaN, and not
/// `f32::MIN`, which `remove_invalid_values` writes in place of `-inf`.
pub(crate) fn is_allowed(logit: f32) -> bool {
    logit > f32::MIN
}

/// Index of the largest value, the first on ties (`torch.argmax`); NaN never wins, and when no
/// value is above `-inf` the first does. `None` only when there is no value.
pub(crate) fn highest(mut values: impl Iterator<Item = f32>) -> Option<usize> {
    let first = values.next()?;
    let (mut best, mut max) = (0, max_ignoring_nan(f32::NEG_INFINITY, first));
    for (i, value) in values.enumerate() {
        if value > max {
            (best, max) = (i + 1, value);
        }
    }
    Some(best)
}
