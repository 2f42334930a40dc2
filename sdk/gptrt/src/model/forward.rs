//! The model's forward pass: which of its graphs runs a step.

use crate::error::Result;
use crate::graph::signature::Layout;
use crate::graph::StepInput;
use crate::kv::KvCache;
use crate::model::Model;

impl Model {
    /// Whether the layout carries a KV cache from step to step.
    pub(crate) fn uses_cache(&self) -> bool {
        self.layout != Layout::NoPast
    }

    /// Run one step. On return `logits` holds `[batch, vocab]` (the last position of each row) and
    /// `cache` holds the graph's `present` outputs (layouts with a cache).
    pub(crate) fn forward(
        &self,
        input: &StepInput<'_>,
        cache: &mut KvCache,
        logits: &mut Vec<f32>,
    ) -> Result<()> {
        self.forward_positions(input, cache, logits, false)
    }

    /// [`Model::forward`], keeping the logits of every fed position (`[batch, seq, vocab]`) when
    /// `all_positions`. The first step of a split export runs its prompt graph, every later one its
    /// with-past graph; other layouts run their one graph throughout.
    pub(crate) fn forward_positions(
        &self,
        input: &StepInput<'_>,
        cache: &mut KvCache,
        logits: &mut Vec<f32>,
        all_positions: bool,
    ) -> Result<()> {
        let graph = match (&self.step_graph, cache.is_empty()) {
            (Some(step), false) => step,
            _ => &self.prompt_graph,
        };
        graph.run(
            &self.config,
            self.uses_cache(),
            input,
            cache,
            logits,
            all_positions,
        )
    }
}
