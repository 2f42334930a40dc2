//! One pass of a graph that reads its final hidden state (`last_hidden_state`) instead of logits.

use ort::session::{OutputSelector, RunOptions};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::graph::signature::LAST_HIDDEN_STATE;
use crate::graph::step::read_hidden;
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
            // The past/present buffer must be bound even for one pass from an empty cache.
            let mut hidden = Vec::new();
            self.run_shared(
                config,
                input,
                &mut KvCache::default(),
                &mut Vec::new(),
                false,
                Some(&mut hidden),
            )?;
            return Ok(hidden);
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
        read_hidden(config, &outputs, input, &context)
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
