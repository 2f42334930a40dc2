//! One pass of a graph that reads its final hidden state (`last_hidden_state`) instead of logits.

use ort::session::{OutputSelector, RunOptions};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::graph::signature::LAST_HIDDEN_STATE;
use crate::graph::{Graph, StepInput};
use crate::kv::KvCache;

impl Graph {
    /// Run `input` from an empty cache and return `last_hidden_state` (`[batch, seq, n_embd]`).
    /// Only that output is fetched, so ONNX Runtime can leave out what only the others need; with
    /// `logits_to_keep` the LM head runs on one position in any case.
    pub(crate) fn run_hidden(
        &self,
        config: &ModelConfig,
        input: &StepInput<'_>,
    ) -> Result<Vec<f32>> {
        if !self.signature.has_hidden_states {
            return Err(missing_hidden_states(self));
        }
        if self.signature.shares_kv_buffer {
            return Err(Error::Layout {
                path: self.path.clone(),
                message: format!(
                    "hidden states are read from graphs without a shared KV buffer: export with \
                     models/export_fused.py --hidden-states (without --shared-kv) to get `{LAST_HIDDEN_STATE}`"
                ),
            });
        }
        let context = || format!("running {}", self.path.display());
        let ort_err = |e: ort::Error| Error::ort(context(), e);
        let cache = KvCache::default();
        let inputs = self.feeds(config, input, &cache, false)?;
        let options = RunOptions::new()
            .map_err(ort_err)?
            .with_outputs(OutputSelector::no_default().with(LAST_HIDDEN_STATE));
        let mut session = self.session();
        let outputs = session
            .run_with_options(inputs, &options)
            .map_err(ort_err)?;
        let value = outputs
            .get(LAST_HIDDEN_STATE)
            .ok_or_else(|| Error::UnexpectedOutput {
                tensor: LAST_HIDDEN_STATE.to_string(),
                message: "missing from the run's outputs".to_string(),
            })?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(ort_err)?;
        let expected = [input.batch as i64, input.seq as i64, config.n_embd as i64];
        if shape[..] != expected {
            return Err(Error::UnexpectedOutput {
                tensor: LAST_HIDDEN_STATE.to_string(),
                message: format!("shape {shape:?}, expected {expected:?}"),
            });
        }
        Ok(data.to_vec())
    }
}

/// The error for a graph without `last_hidden_state`: which graph, and how to add the output.
pub(crate) fn missing_hidden_states(graph: &Graph) -> Error {
    let folder = graph
        .path
        .parent()
        .map_or_else(|| ".".to_string(), |dir| dir.display().to_string());
    Error::Layout {
        path: graph.path.clone(),
        message: format!(
            "the graph has no output `{LAST_HIDDEN_STATE}` (the final hidden state after ln_f), \
             which features and trained classification heads need: add it with \
             `python models/add_hidden_states.py {folder} {folder}` (or export with \
             models/export_fused.py --hidden-states)"
        ),
    }
}
