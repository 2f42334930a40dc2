//! Loading a model: which files a folder holds, reading them (or bytes in memory), opening the
//! graph(s) and telling the layout from their signatures.

use std::path::{Path, PathBuf};

use crate::config::{GenerationConfig, ModelConfig};
use crate::error::{regular_file_present, Error, Result};
use crate::graph::signature::{past_name, present_name, Layout};
use crate::graph::Graph;
use crate::model::{Model, ModelBytes};
use crate::runtime::{GraphSource, Runtime};
use crate::tokenizer::Tokenizer;

/// File names of the standard exports, in the order a model folder is searched.
const MERGED_FILE: &str = "decoder_model_merged.onnx";
const SINGLE_FILE: &str = "model.onnx";
const PROMPT_FILE: &str = "decoder_model.onnx";
const WITH_PAST_FILE: &str = "decoder_with_past_model.onnx";

/// Which graph file(s) a model path means: `(first graph, optional with-past sibling)`.
fn find_graphs(path: &Path) -> Result<(PathBuf, PathBuf, Option<PathBuf>)> {
    if !path.exists() {
        return Err(Error::model_files(path, "model path does not exist"));
    }
    let (dir, first) = if path.is_file() {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        (dir, path.to_path_buf())
    } else if !path.is_dir() {
        return Err(Error::not_regular_file(path));
    } else {
        let candidates = [MERGED_FILE, SINGLE_FILE, PROMPT_FILE];
        let named = candidates
            .iter()
            .map(|name| path.join(name))
            .find(|p| p.exists());
        let first = match named {
            Some(first) => first,
            None => {
                let entries = std::fs::read_dir(path).map_err(|source| Error::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                let mut onnx: Vec<PathBuf> = entries
                    .filter_map(|entry| entry.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|ext| ext == "onnx"))
                    .collect();
                onnx.sort();
                if onnx.len() != 1 {
                    return Err(Error::model_files(
                        path,
                        format!(
                            "{} ONNX graph(s) found; expected {MERGED_FILE}, {SINGLE_FILE}, or \
                             {PROMPT_FILE} + {WITH_PAST_FILE} (export one with models/make_fixtures.py \
                             or optimum-cli export onnx)",
                            onnx.len()
                        ),
                    ));
                }
                onnx.remove(0)
            }
        };
        (path.to_path_buf(), first)
    };
    let sibling = dir.join(WITH_PAST_FILE);
    let with_past = (sibling.exists() && sibling != first).then_some(sibling);
    for graph in std::iter::once(&first).chain(&with_past) {
        if !graph.is_file() {
            return Err(Error::not_regular_file(graph));
        }
    }
    Ok((dir, first, with_past))
}

impl Model {
    /// Load a model from an export folder (or one `.onnx` file inside it) with the default runtime.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Model::load_with(&Runtime::default_runtime()?, path)
    }

    /// Load a model with a given runtime.
    ///
    /// The folder holds `config.json`, a tokenizer (`tokenizer.json` or `vocab.json` + `merges.txt`),
    /// optionally `generation_config.json`, and the graph(s). The layout is detected from the
    /// graph's inputs and outputs and checked against `config.json`.
    pub fn load_with(runtime: &Runtime, path: impl AsRef<Path>) -> Result<Model> {
        let (dir, first, with_past) = find_graphs(path.as_ref())?;
        let config_path = dir.join("config.json");
        if !regular_file_present(&config_path)? {
            return Err(Error::model_files(&dir, "missing config.json (the model's n_layer, n_head, n_embd, n_positions, vocab_size)"));
        }
        let config = ModelConfig::from_file(&config_path)?;
        let generation_config = GenerationConfig::from_dir_or_default(&dir)?;
        let tokenizer = Tokenizer::from_dir(&dir)?;
        let with_past_source = with_past.as_deref().map(GraphSource::File);
        Model::assemble(
            runtime,
            dir,
            config,
            generation_config,
            tokenizer,
            GraphSource::File(&first),
            with_past_source,
        )
    }

    /// Load a model from bytes in memory: `config.json`, `tokenizer.json`, optionally
    /// `generation_config.json`, the graph, and for a split export the with-past graph. The graph
    /// must hold its weights: one that keeps them in a `.data` file beside it (as
    /// `models/export_fused.py` writes by default; `--single-file` does not) loads only from a
    /// folder, and is refused here with an error naming the initializer and the file.
    pub fn load_from_memory(runtime: &Runtime, files: &ModelBytes<'_>) -> Result<Model> {
        let dir = PathBuf::from("<memory>");
        let config = ModelConfig::from_json_bytes(files.config_json, &dir.join("config.json"))?;
        let generation_config = match files.generation_config_json {
            Some(bytes) => {
                GenerationConfig::from_json_bytes(bytes, &dir.join("generation_config.json"))?
            }
            None => GenerationConfig::default(),
        };
        let tokenizer = Tokenizer::from_bytes(files.tokenizer_json)?;
        let first = dir.join("model.onnx");
        let second = dir.join(WITH_PAST_FILE);
        Model::assemble(
            runtime,
            dir,
            config,
            generation_config,
            tokenizer,
            GraphSource::Memory {
                name: &first,
                bytes: files.graph,
            },
            files.with_past_graph.map(|bytes| GraphSource::Memory {
                name: &second,
                bytes,
            }),
        )
    }

    fn assemble(
        runtime: &Runtime,
        dir: PathBuf,
        config: ModelConfig,
        generation_config: GenerationConfig,
        tokenizer: Tokenizer,
        first: GraphSource<'_>,
        with_past: Option<GraphSource<'_>>,
    ) -> Result<Model> {
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(Error::Config {
                path: dir.join("config.json"),
                message: format!(
                    "the tokenizer has {} tokens but vocab_size is {}",
                    tokenizer.vocab_size(),
                    config.vocab_size
                ),
            });
        }
        let prompt_graph = Graph::open(runtime, &first, &config)?;
        let signature = &prompt_graph.signature;
        let (layout, step_graph) = if signature.has_past {
            let layout = if signature.has_use_cache_branch {
                Layout::Merged
            } else {
                Layout::Single
            };
            (layout, None)
        } else if let Some(with_past) = with_past {
            if !signature.has_present {
                return Err(Error::Layout {
                    path: first.path().to_path_buf(),
                    message: format!("missing output `{}`: the prompt graph of a split export returns present key/values", present_name(0, true)),
                });
            }
            let step = Graph::open(runtime, &with_past, &config)?;
            if !step.signature.has_past {
                return Err(Error::Layout {
                    path: with_past.path().to_path_buf(),
                    message: format!("missing input `{}`: the with-past graph of a split export takes past key/values", past_name(0, true)),
                });
            }
            (Layout::Split, Some(step))
        } else {
            (Layout::NoPast, None)
        };
        Ok(Model {
            runtime: runtime.clone(),
            dir,
            config,
            generation_config,
            tokenizer,
            layout,
            prompt_graph,
            step_graph,
            fingerprint: std::sync::OnceLock::new(),
        })
    }
}
