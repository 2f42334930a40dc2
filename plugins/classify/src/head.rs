//! A head folder written by `gptrt train-head`, read through the host's hidden-state capability.

use std::path::Path;

use gptrt_plugin_api::{Host, Pooling};
use safetensors::tensor::{Dtype, SafeTensors};
use serde::Deserialize;

/// The same bound as the SDK's `PROBE_MIN_COSINE`.
const PROBE_MIN_COSINE: f32 = 0.98;

#[derive(Deserialize)]
struct HeadInfo {
    format: u32,
    labels: Vec<String>,
    pooling: String,
    hidden_size: usize,
    #[allow(dead_code)]
    n_layer: usize,
    vocab_size: usize,
    probe_text: String,
}

pub(crate) struct TrainedHead {
    host: Host,
    labels: Vec<String>,
    pooling: Pooling,
    hidden: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl TrainedHead {
    pub(crate) fn load(host: &Host, dir: &Path) -> Result<TrainedHead, String> {
        let hidden_states = host.hidden_states().ok_or(
            "the host offers no hidden states (capability org.gptrt.hidden_states): the model's \
             graph needs a `last_hidden_state` output (models/add_hidden_states.py adds it)",
        )?;
        let info_path = dir.join("labels.json");
        let text = std::fs::read_to_string(&info_path)
            .map_err(|e| format!("{}: {e}", info_path.display()))?;
        let info: HeadInfo = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a head's labels.json: {e}", info_path.display()))?;
        if info.format != 1 {
            return Err(format!(
                "{}: head format {}",
                info_path.display(),
                info.format
            ));
        }
        crate::check_labels(&info.labels).map_err(|e| format!("{}: {e}", info_path.display()))?;
        let pooling = match info.pooling.as_str() {
            "last" => Pooling::Last,
            "mean" => Pooling::Mean,
            other => {
                return Err(format!(
                    "{}: unknown pooling `{other}`",
                    info_path.display()
                ))
            }
        };
        if info.hidden_size != hidden_states.hidden_size() {
            return Err(format!(
                "{}: this head was trained for a model with hidden size (n_embd) {}, but the host's \
                 model has {}",
                dir.display(),
                info.hidden_size,
                hidden_states.hidden_size()
            ));
        }
        if let Some(vocab) = host
            .model_config_json()
            .ok()
            .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
            .and_then(|config| config["vocab_size"].as_u64())
        {
            if vocab as usize != info.vocab_size {
                return Err(format!(
                    "{}: this head was trained for a model with vocabulary size {}, the host's has {vocab}",
                    dir.display(),
                    info.vocab_size
                ));
            }
        }
        let path = dir.join("head.safetensors");
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let tensors = SafeTensors::deserialize(&bytes)
            .map_err(|e| format!("{}: not a safetensors file: {e}", path.display()))?;
        let (labels, hidden) = (info.labels.len(), info.hidden_size);
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
            let tensor = tensors
                .tensor(name)
                .map_err(|e| format!("{}: missing tensor `{name}`: {e}", path.display()))?;
            if tensor.dtype() != Dtype::F32 || tensor.shape() != shape {
                return Err(format!(
                    "{}: tensor `{name}` is {:?} {:?}, expected F32 {shape:?}",
                    path.display(),
                    tensor.dtype(),
                    tensor.shape()
                ));
            }
            Ok(tensor
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let probe = read("probe", &[hidden])?;
        let head = TrainedHead {
            host: *host,
            weight: read("weight", &[labels, hidden])?,
            bias: read("bias", &[labels])?,
            labels: info.labels,
            pooling,
            hidden,
        };
        let ids = host.tokenize(&info.probe_text)?;
        let now = hidden_states
            .features(&[ids], pooling)?
            .pop()
            .unwrap_or_default();
        let dot: f32 = probe.iter().zip(&now).map(|(a, b)| a * b).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cosine = dot / (norm(&probe) * norm(&now));
        if cosine.is_nan() || cosine < PROBE_MIN_COSINE {
            return Err(format!(
                "{}: this head was trained for another model: the host model's features of the \
                 probe text differ from the head's fingerprint (cosine similarity {cosine:.3})",
                dir.display()
            ));
        }
        Ok(head)
    }

    pub(crate) fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Each sequence's logits (`weight · features + bias`).
    pub(crate) fn logits(&self, sequences: &[Vec<u32>]) -> Result<Vec<Vec<f64>>, String> {
        let hidden_states = self
            .host
            .hidden_states()
            .ok_or("the host no longer offers hidden states")?;
        let features = hidden_states.features(sequences, self.pooling)?;
        Ok(features
            .iter()
            .map(|f| {
                self.weight
                    .chunks_exact(self.hidden.max(1))
                    .zip(&self.bias)
                    .map(|(row, b)| {
                        f64::from(*b)
                            + row
                                .iter()
                                .zip(f)
                                .map(|(w, x)| f64::from(*w) * f64::from(*x))
                                .sum::<f64>()
                    })
                    .collect()
            })
            .collect())
    }
}
