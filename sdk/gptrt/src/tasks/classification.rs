//! The typed result of classifying one text: the winning label and every label's probability.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::error::{Error, Result};

/// One text's classification: `{"label": ..., "scores": {"a": p, ...}}` in JSON, the scores in the
/// label set's order and summing to 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// The most probable label.
    pub label: String,
    /// Every label with its probability, in the label set's order.
    #[serde(serialize_with = "scores_as_map")]
    pub scores: Vec<(String, f64)>,
}

impl Classification {
    /// Normalise per-label log-scores (natural log, any offset) into probabilities: a softmax.
    pub fn from_log_scores(labels: &[String], log_scores: &[f64]) -> Classification {
        let top = log_scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = log_scores.iter().map(|s| (s - top).exp()).collect();
        let total: f64 = exps.iter().sum();
        let scores: Vec<(String, f64)> = labels
            .iter()
            .zip(&exps)
            .map(|(label, e)| (label.clone(), e / total))
            .collect();
        let label = scores
            .iter()
            .fold(None::<&(String, f64)>, |best, entry| match best {
                Some(b) if b.1 >= entry.1 => Some(b),
                _ => Some(entry),
            })
            .map(|(label, _)| label.clone())
            .unwrap_or_default();
        Classification { label, scores }
    }

    /// The probability of `label` (0 when it is not in the set).
    pub fn score(&self, label: &str) -> f64 {
        self.scores
            .iter()
            .find(|(name, _)| name == label)
            .map_or(0.0, |(_, p)| *p)
    }
}

fn scores_as_map<S: Serializer>(
    scores: &[(String, f64)],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(scores.len()))?;
    for (label, p) in scores {
        map.serialize_entry(label, p)?;
    }
    map.end()
}

/// Check a label set: at least two labels, none empty, no two alike. Errors name the label.
pub fn check_labels(labels: &[String]) -> Result<()> {
    if labels.len() < 2 {
        return Err(Error::InvalidArgument {
            name: "labels",
            message: format!(
                "a classifier needs at least two labels, got {}",
                labels.len()
            ),
        });
    }
    for (index, label) in labels.iter().enumerate() {
        if label.trim().is_empty() {
            return Err(Error::InvalidArgument {
                name: "labels",
                message: format!("label {index} is empty"),
            });
        }
        if labels[..index].contains(label) {
            return Err(Error::InvalidArgument {
                name: "labels",
                message: format!("label `{label}` appears twice"),
            });
        }
    }
    Ok(())
}
