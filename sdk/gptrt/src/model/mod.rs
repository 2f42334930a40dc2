//! A loaded model: its graph(s), layout, `config.json`, generation defaults and tokenizer.

use std::path::{Path, PathBuf};

use crate::config::{GenerationConfig, ModelConfig};
use crate::error::{Error, Result};
use crate::graph::signature::{Layout, Signature};
use crate::graph::Graph;
use crate::provider::ProviderChoice;
use crate::runtime::Runtime;
use crate::tokenizer::Tokenizer;

mod fingerprint;
mod forward;
mod load;

pub use fingerprint::Fingerprint;

/// A model's files as bytes, for [`Model::load_from_memory`] (e.g. embedded in a binary or read
/// from an archive).
#[derive(Debug, Clone, Copy)]
pub struct ModelBytes<'a> {
    /// `config.json`.
    pub config_json: &'a [u8],
    /// `tokenizer.json`.
    pub tokenizer_json: &'a [u8],
    /// `generation_config.json`, if any.
    pub generation_config_json: Option<&'a [u8]>,
    /// The graph (merged, single, no-past, or the prompt graph of a split export).
    pub graph: &'a [u8],
    /// The with-past graph of a split export.
    pub with_past_graph: Option<&'a [u8]>,
}

/// A GPT-2 model loaded from an export folder. Load once, share across threads (`Send + Sync`).
pub struct Model {
    runtime: Runtime,
    dir: PathBuf,
    config: ModelConfig,
    generation_config: GenerationConfig,
    tokenizer: Tokenizer,
    layout: Layout,
    prompt_graph: Graph,
    /// The with-past graph of a split export; every other layout uses `prompt_graph` throughout.
    step_graph: Option<Graph>,
    /// Computed on first use (hashing the weights takes a moment).
    fingerprint: std::sync::OnceLock<Fingerprint>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("dir", &self.dir)
            .field("layout", &self.layout)
            .field("config", &self.config)
            .finish()
    }
}

impl Model {
    /// The model folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// `config.json`.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
    /// The folder's `generation_config.json` (defaults when absent).
    pub fn generation_config(&self) -> &GenerationConfig {
        &self.generation_config
    }
    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
    /// The detected export layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }
    /// The runtime the model was loaded with.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
    /// The execution provider the model's sessions really got (ONNX Runtime's name).
    pub fn provider(&self) -> &'static str {
        self.prompt_graph.provider.provider.name()
    }

    /// The provider choice in full: what ran and why earlier providers of the list were skipped.
    pub fn provider_choice(&self) -> &ProviderChoice {
        &self.prompt_graph.provider
    }
    /// Each graph file with its signature (one, or two for a split export).
    pub fn graphs(&self) -> Vec<(&Path, &Signature)> {
        std::iter::once(&self.prompt_graph)
            .chain(self.step_graph.as_ref())
            .map(|graph| (graph.path.as_path(), &graph.signature))
            .collect()
    }

    /// The operators of the model's graph(s) that make a row's result depend on the other rows of
    /// its batch ([`Signature::batch_dependent_ops`], each once), e.g. `DynamicQuantizeLinear`.
    pub fn batch_dependent_ops(&self) -> Vec<String> {
        let mut ops: Vec<String> = Vec::new();
        for (_, signature) in self.graphs() {
            for op in &signature.batch_dependent_ops {
                if !ops.contains(op) {
                    ops.push(op.clone());
                }
            }
        }
        ops
    }

    /// Whether each sequence of a batch gets what it gets alone: true unless the graph has
    /// [`Model::batch_dependent_ops`] (a dynamic int8 export; requantize the fp32 export with
    /// `models/quantize.py`: its default per-row scales, or `--method int8-static`).
    pub fn is_batch_invariant(&self) -> bool {
        self.batch_dependent_ops().is_empty()
    }

    /// [`Model::is_batch_invariant`] in a sentence, for people (`gptrt inspect`, the C API's model
    /// info).
    pub fn batching_note(&self) -> String {
        let ops = self.batch_dependent_ops();
        if ops.is_empty() {
            return "batch-invariant: each sequence of a batch computes what it computes alone"
                .to_string();
        }
        format!(
            "NOT batch-invariant: {} computes one scale over all rows of a batch (dynamic int8 \
             quantization), so a sequence batched with others (several prompts, \
             num_return_sequences, a gptrt_batcher_t) can get other tokens than alone; \
             requantize the fp32 export with models/quantize.py (the default int8-rows, or \
             --method int8-static) to batch it safely",
            ops.join(", ")
        )
    }

    /// The graph that runs a sequence's first step (the only graph of every layout but split).
    pub(crate) fn prompt_graph(&self) -> &Graph {
        &self.prompt_graph
    }

    /// Check that every id is inside the vocabulary.
    pub(crate) fn check_ids(&self, ids: &[u32]) -> Result<()> {
        match ids
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            Some(&id) => Err(Error::InvalidToken {
                id,
                vocab_size: self.config.vocab_size,
            }),
            None => Ok(()),
        }
    }
}
