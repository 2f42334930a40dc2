//! A trained linear classification head over pooled hidden-state features, kept in a folder:
//! `head.safetensors` (weight `[labels, hidden]`, bias `[labels]`, probe `[hidden]`) and
//! `labels.json` (labels, pooling, the model's dimensions). The probe is the features of a fixed
//! text under the model the head was trained on: a head loaded over another model (whose features
//! of that text differ) is refused instead of giving confident nonsense.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::tasks::classification::{check_labels, Classification};
use crate::tasks::Pooling;

/// The head's weights.
pub const HEAD_FILE: &str = "head.safetensors";
/// The head's labels and the model it belongs to.
pub const LABELS_FILE: &str = "labels.json";
/// The text whose features fingerprint the model a head was trained on.
pub const PROBE_TEXT: &str = "The quick brown fox jumps over the lazy dog. 1, 2, 3: probe!";
/// The least cosine similarity between the stored and the recomputed probe features: the same
/// model (int8 or fp32 copies of it included) stays far above it, another one falls far below.
pub const PROBE_MIN_COSINE: f32 = 0.98;

/// `labels.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadInfo {
    /// File format version (1).
    pub format: u32,
    /// The labels, in the order of the weight's rows.
    pub labels: Vec<String>,
    /// How a text's hidden states were pooled into its features.
    pub pooling: Pooling,
    /// The model's `n_embd`: the features' width.
    pub hidden_size: usize,
    /// The model's `n_layer`.
    pub n_layer: usize,
    /// The model's `vocab_size`.
    pub vocab_size: usize,
    /// The text of the probe.
    pub probe_text: String,
}

/// A linear head: `softmax(weight · features + bias)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    info: HeadInfo,
    /// `[labels, hidden]`, row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
    probe: Vec<f32>,
}

impl LinearHead {
    /// A head for `model` from trained weights (`[labels, hidden]` row-major) and biases.
    pub fn new(
        model: &Model,
        labels: Vec<String>,
        pooling: Pooling,
        weight: Vec<f32>,
        bias: Vec<f32>,
    ) -> Result<LinearHead> {
        check_labels(&labels)?;
        let hidden = model.hidden_size();
        if weight.len() != labels.len() * hidden || bias.len() != labels.len() {
            return Err(Error::InvalidArgument {
                name: "weight",
                message: format!(
                    "{} weights and {} biases for {} labels x hidden size {hidden}",
                    weight.len(),
                    bias.len(),
                    labels.len()
                ),
            });
        }
        let probe = model
            .features(&[PROBE_TEXT], pooling)?
            .pop()
            .unwrap_or_default();
        let config = model.config();
        Ok(LinearHead {
            info: HeadInfo {
                format: 1,
                labels,
                pooling,
                hidden_size: hidden,
                n_layer: config.n_layer,
                vocab_size: config.vocab_size,
                probe_text: PROBE_TEXT.to_string(),
            },
            weight,
            bias,
            probe,
        })
    }

    /// Load a head folder and check that it belongs to `model` (hidden size, layers, vocabulary
    /// and the probe's features). Every refusal names the folder and the mismatch.
    pub fn load(dir: impl AsRef<Path>, model: &Model) -> Result<LinearHead> {
        let dir = dir.as_ref();
        let files_error = |path: &Path, message: String| Error::ModelFiles {
            path: path.to_path_buf(),
            message,
        };
        let info_path = dir.join(LABELS_FILE);
        let text = std::fs::read_to_string(&info_path)
            .map_err(|e| files_error(&info_path, format!("cannot read the head's labels: {e}")))?;
        let info: HeadInfo = serde_json::from_str(&text)
            .map_err(|e| files_error(&info_path, format!("not a head's labels.json: {e}")))?;
        if info.format != 1 {
            return Err(files_error(
                &info_path,
                format!("head format {} (this gptrt reads format 1)", info.format),
            ));
        }
        check_labels(&info.labels)
            .map_err(|e| files_error(&info_path, format!("bad label set: {e}")))?;
        let config = model.config();
        for (what, head, ours) in [
            (
                "hidden size (n_embd)",
                info.hidden_size,
                model.hidden_size(),
            ),
            ("layer count (n_layer)", info.n_layer, config.n_layer),
            ("vocabulary size", info.vocab_size, config.vocab_size),
        ] {
            if head != ours {
                return Err(files_error(
                    dir,
                    format!(
                        "this head was trained for a model with {what} {head}, but {} has {ours}: \
                         train a head for this model (gptrt train-head)",
                        model.dir().display()
                    ),
                ));
            }
        }
        let weights_path = dir.join(HEAD_FILE);
        let bytes = std::fs::read(&weights_path)
            .map_err(|e| files_error(&weights_path, format!("cannot read the head: {e}")))?;
        let tensors = SafeTensors::deserialize(&bytes)
            .map_err(|e| files_error(&weights_path, format!("not a safetensors file: {e}")))?;
        let (labels, hidden) = (info.labels.len(), info.hidden_size);
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let tensor = tensors
                .tensor(name)
                .map_err(|e| files_error(&weights_path, format!("missing tensor `{name}`: {e}")))?;
            if tensor.dtype() != Dtype::F32 || tensor.shape() != shape {
                return Err(files_error(
                    &weights_path,
                    format!(
                        "tensor `{name}` is {:?} {:?}, expected F32 {shape:?}",
                        tensor.dtype(),
                        tensor.shape()
                    ),
                ));
            }
            Ok(tensor
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let head = LinearHead {
            weight: read("weight", &[labels, hidden])?,
            bias: read("bias", &[labels])?,
            probe: read("probe", &[hidden])?,
            info,
        };
        let recomputed = model
            .features(&[head.info.probe_text.as_str()], head.info.pooling)?
            .pop()
            .unwrap_or_default();
        let cosine = cosine(&head.probe, &recomputed);
        if cosine.is_nan() || cosine < PROBE_MIN_COSINE {
            return Err(files_error(
                dir,
                format!(
                    "this head was trained for another model: {}'s features of the probe text \
                     differ from the head's fingerprint (cosine similarity {cosine:.3}, at least \
                     {PROBE_MIN_COSINE} expected); train a head for this model (gptrt train-head)",
                    model.dir().display()
                ),
            ));
        }
        Ok(head)
    }

    /// Write `head.safetensors` and `labels.json` into `dir` (created if needed). The same head
    /// gives the same bytes.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let io_error = |path: &Path, e: std::io::Error| Error::ModelFiles {
            path: path.to_path_buf(),
            message: format!("cannot write: {e}"),
        };
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let as_bytes =
            |values: &[f32]| -> Vec<u8> { values.iter().flat_map(|v| v.to_le_bytes()).collect() };
        let (labels, hidden) = (self.info.labels.len(), self.info.hidden_size);
        let buffers = [
            ("weight", as_bytes(&self.weight), vec![labels, hidden]),
            ("bias", as_bytes(&self.bias), vec![labels]),
            ("probe", as_bytes(&self.probe), vec![hidden]),
        ];
        let mut views = Vec::new();
        for (name, data, shape) in &buffers {
            let view =
                TensorView::new(Dtype::F32, shape.clone(), data).map_err(|e| Error::Internal {
                    context: "saving a head",
                    message: e.to_string(),
                })?;
            views.push((name.to_string(), view));
        }
        let bytes =
            safetensors::serialize(views, None::<HashMap<String, String>>).map_err(|e| {
                Error::Internal {
                    context: "saving a head",
                    message: e.to_string(),
                }
            })?;
        let weights_path = dir.join(HEAD_FILE);
        std::fs::write(&weights_path, bytes).map_err(|e| io_error(&weights_path, e))?;
        let info_path = dir.join(LABELS_FILE);
        let mut json = serde_json::to_string_pretty(&self.info).map_err(|e| Error::Internal {
            context: "saving a head",
            message: e.to_string(),
        })?;
        json.push('\n');
        std::fs::write(&info_path, json).map_err(|e| io_error(&info_path, e))
    }

    /// The labels, in the order of the scores.
    pub fn labels(&self) -> &[String] {
        &self.info.labels
    }

    /// How texts are pooled for this head.
    pub fn pooling(&self) -> Pooling {
        self.info.pooling
    }

    /// `labels.json`'s contents.
    pub fn info(&self) -> &HeadInfo {
        &self.info
    }

    /// The head's log-scores (logits) for one feature vector.
    pub fn logits(&self, features: &[f32]) -> Vec<f64> {
        self.weight
            .chunks_exact(self.info.hidden_size.max(1))
            .zip(&self.bias)
            .map(|(row, bias)| {
                f64::from(*bias)
                    + row
                        .iter()
                        .zip(features)
                        .map(|(w, x)| f64::from(*w) * f64::from(*x))
                        .sum::<f64>()
            })
            .collect()
    }

    /// Classify texts (none empty), their features extracted in batches.
    pub fn classify(&self, model: &Model, texts: &[&str]) -> Result<Vec<Classification>> {
        let features = model.features(texts, self.info.pooling)?;
        Ok(features
            .iter()
            .map(|f| Classification::from_log_scores(&self.info.labels, &self.logits(f)))
            .collect())
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return f32::NAN;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}
