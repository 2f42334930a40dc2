//! A user's own `GPT2ForSequenceClassification` export (optimum's `text-classification` task):
//! detected by its output `logits` `[batch, num_labels]`, labels from `config.json`'s `id2label`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::error::{Error, Result};
use crate::runtime::{GraphSource, Runtime};
use crate::tasks::Classification;
use crate::tokenizer::Tokenizer;

/// Most texts one pass runs.
const BATCH: usize = 32;

/// A sequence-classification graph with its labels and tokenizer.
pub struct SequenceClassifier {
    path: PathBuf,
    session: Mutex<Session>,
    tokenizer: Tokenizer,
    labels: Vec<String>,
    /// Rows of a batch are right-padded with it; without one, texts run one at a time (as
    /// Hugging Face, which cannot find a padded row's last token without it).
    pad_token_id: Option<u32>,
    n_positions: usize,
}

impl std::fmt::Debug for SequenceClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequenceClassifier")
            .field("path", &self.path)
            .field("labels", &self.labels)
            .finish()
    }
}

/// Whether a graph's outputs are a sequence classifier's: `logits` of rank 2.
fn is_sequence_classifier(session: &Session) -> bool {
    session.outputs().iter().any(|outlet| {
        outlet.name() == "logits"
            && matches!(outlet.dtype(), ValueType::Tensor { shape, .. } if shape.len() == 2)
    })
}

impl SequenceClassifier {
    /// Load a folder (`model.onnx`, `config.json` with `id2label`, `tokenizer.json`) with the
    /// default runtime.
    pub fn load(dir: impl AsRef<Path>) -> Result<SequenceClassifier> {
        SequenceClassifier::load_with(&Runtime::default_runtime()?, dir)
    }

    /// [`SequenceClassifier::load`] with a given runtime.
    pub fn load_with(runtime: &Runtime, dir: impl AsRef<Path>) -> Result<SequenceClassifier> {
        let dir = dir.as_ref();
        let path = dir.join("model.onnx");
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| Error::model_files(&config_path, format!("cannot read: {e}")))?;
        let config: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::model_files(&config_path, format!("not JSON: {e}")))?;
        let (session, _) = runtime.open_session(&GraphSource::File(&path))?;
        let layout_error = |message: String| Error::Layout {
            path: path.clone(),
            message,
        };
        if !is_sequence_classifier(&session) {
            return Err(layout_error(
                "not a sequence-classification graph: no output `logits` [batch, num_labels]"
                    .to_string(),
            ));
        }
        for outlet in session.inputs() {
            match (outlet.name(), outlet.dtype()) {
                ("input_ids" | "attention_mask", ValueType::Tensor { ty, .. })
                    if *ty == TensorElementType::Int64 => {}
                (name, _) => {
                    return Err(layout_error(format!(
                        "unexpected input `{name}` (a text-classification export takes int64 \
                         input_ids and attention_mask)"
                    )))
                }
            }
        }
        let id2label = config["id2label"].as_object().ok_or_else(|| {
            Error::model_files(
                &config_path,
                "no `id2label`: the graph's labels are unknown",
            )
        })?;
        let mut labels = vec![String::new(); id2label.len()];
        for (id, label) in id2label {
            let slot = id
                .parse::<usize>()
                .ok()
                .and_then(|index| labels.get_mut(index))
                .ok_or_else(|| {
                    Error::model_files(&config_path, format!("`id2label` has a bad id `{id}`"))
                })?;
            *slot = label.as_str().unwrap_or_default().to_string();
        }
        crate::tasks::check_labels(&labels)
            .map_err(|e| Error::model_files(&config_path, format!("`id2label`: {e}")))?;
        let pad_token_id = config["pad_token_id"]
            .as_u64()
            .and_then(|id| u32::try_from(id).ok());
        let n_positions = config["n_positions"].as_u64().unwrap_or(1024) as usize;
        Ok(SequenceClassifier {
            tokenizer: Tokenizer::from_dir(dir)?,
            path,
            session: Mutex::new(session),
            labels,
            pad_token_id,
            n_positions,
        })
    }

    /// The labels, from `config.json`'s `id2label`.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Classify texts (none empty), in batches of right-padded rows.
    pub fn classify(&self, texts: &[&str]) -> Result<Vec<Classification>> {
        let mut sequences = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            let ids = self.tokenizer.encode(text)?;
            if ids.is_empty() {
                return Err(Error::InvalidArgument {
                    name: "text",
                    message: format!("text {index} is empty: there is nothing to classify"),
                });
            }
            if ids.len() > self.n_positions {
                return Err(Error::ContextOverflow {
                    prompt_tokens: ids.len(),
                    n_positions: self.n_positions,
                });
            }
            sequences.push(ids);
        }
        let batch = if self.pad_token_id.is_some() {
            BATCH
        } else {
            1
        };
        let mut results = Vec::with_capacity(texts.len());
        for chunk in sequences.chunks(batch) {
            results.extend(self.run(chunk)?);
        }
        Ok(results)
    }

    fn run(&self, rows: &[Vec<u32>]) -> Result<Vec<Classification>> {
        let ort_err = |e: ort::Error| Error::ort(format!("running {}", self.path.display()), e);
        let seq = rows.iter().map(Vec::len).max().unwrap_or(0);
        let pad = i64::from(self.pad_token_id.unwrap_or(0));
        let mut ids = Vec::with_capacity(rows.len() * seq);
        let mut mask = Vec::with_capacity(rows.len() * seq);
        // Right padding: the export computes positions 0.. itself, which left padding would shift;
        // the graph picks each row's last non-padding token.
        for row in rows {
            ids.extend(row.iter().map(|&id| i64::from(id)));
            ids.extend(std::iter::repeat_n(pad, seq - row.len()));
            mask.extend(std::iter::repeat_n(1i64, row.len()));
            mask.extend(std::iter::repeat_n(0i64, seq - row.len()));
        }
        let shape = [rows.len(), seq];
        let inputs = ort::inputs![
            "input_ids" => TensorRef::from_array_view((shape, ids.as_slice())).map_err(ort_err)?,
            "attention_mask" => TensorRef::from_array_view((shape, mask.as_slice())).map_err(ort_err)?,
        ];
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = session.run(inputs).map_err(ort_err)?;
        let (out_shape, logits) = outputs["logits"]
            .try_extract_tensor::<f32>()
            .map_err(ort_err)?;
        let n = self.labels.len();
        if out_shape[..] != [rows.len() as i64, n as i64] {
            return Err(Error::UnexpectedOutput {
                tensor: "logits".to_string(),
                message: format!("shape {out_shape:?}, expected [{}, {n}]", rows.len()),
            });
        }
        Ok(logits
            .chunks_exact(n)
            .map(|row| {
                let scores: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
                Classification::from_log_scores(&self.labels, &scores)
            })
            .collect())
    }
}
