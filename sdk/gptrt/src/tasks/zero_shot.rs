//! Zero-shot classification: each label's verbalizer scored by log-likelihood after the text, the
//! text run once ([`Model::score_continuations`]), optionally calibrated against a content-free
//! input.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::tasks::classification::{check_labels, Classification};

/// How a zero-shot classifier asks the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZeroShotOptions {
    /// Put after the text, before the label: the model scores `text + template + " " + label`.
    pub template: String,
    /// Divide each label's probability by its probability after `content_free` (Zhao et al.
    /// 2021, "Calibrate before use"), which takes out the model's prior for the label words.
    pub calibrate: bool,
    /// The content-free input used by `calibrate`.
    pub content_free: String,
}

impl Default for ZeroShotOptions {
    fn default() -> ZeroShotOptions {
        ZeroShotOptions {
            template: "\nTopic:".to_string(),
            calibrate: false,
            content_free: "N/A".to_string(),
        }
    }
}

/// A zero-shot classifier over one label set: the labels' tokens and the calibration baseline are
/// computed once, then [`ZeroShot::classify`] runs one text at a time.
#[derive(Debug, Clone)]
pub struct ZeroShot {
    labels: Vec<String>,
    label_ids: Vec<Vec<u32>>,
    options: ZeroShotOptions,
    /// Per-label log-likelihood after the content-free input (zeros without calibration).
    baseline: Vec<f64>,
}

impl ZeroShot {
    /// Prepare `labels` (at least two, distinct, none empty) for `model`.
    pub fn new(model: &Model, labels: &[String], options: ZeroShotOptions) -> Result<ZeroShot> {
        check_labels(labels)?;
        let label_ids = labels
            .iter()
            .map(|label| model.tokenizer().encode(&format!(" {}", label.trim())))
            .collect::<Result<Vec<_>>>()?;
        let mut classifier = ZeroShot {
            labels: labels.to_vec(),
            label_ids,
            baseline: vec![0.0; labels.len()],
            options,
        };
        if classifier.options.calibrate {
            classifier.baseline =
                classifier.log_likelihoods(model, &classifier.options.content_free)?;
        }
        Ok(classifier)
    }

    /// The label set.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Classify one text (not empty): one forward pass over it, then the labels' tokens as the
    /// rows of one batched pass from its KV cache (none when every label is one token).
    pub fn classify(&self, model: &Model, text: &str) -> Result<Classification> {
        if text.trim().is_empty() {
            return Err(Error::InvalidArgument {
                name: "text",
                message: "the text is empty: there is nothing to classify".to_string(),
            });
        }
        let scores = self.log_likelihoods(model, text)?;
        let calibrated: Vec<f64> = scores
            .iter()
            .zip(&self.baseline)
            .map(|(score, base)| score - base)
            .collect();
        Ok(Classification::from_log_scores(&self.labels, &calibrated))
    }

    fn log_likelihoods(&self, model: &Model, text: &str) -> Result<Vec<f64>> {
        let mut context = vec![model.config().eos_token_id];
        context.extend(
            model
                .tokenizer()
                .encode(&format!("{text}{}", self.options.template))?,
        );
        model.score_continuations(&context, &self.label_ids)
    }
}
