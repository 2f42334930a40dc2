//! A loaded model: its graph(s), layout, `config.json`, generation defaults and tokenizer.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{OutputSelector, RunOptions, Session, SessionInputValue};
use ort::value::{Tensor, TensorRef, TensorValueType};

use crate::config::{GenerationConfig, ModelConfig};
use crate::error::{Error, Result};
use crate::layout::{
    past_name, present_name, Layout, Signature, LOGITS_TO_KEEP, PAST_SEQUENCE_LENGTH,
};
use crate::provider::ProviderChoice;
use crate::runtime::Runtime;
use crate::tokenizer::Tokenizer;

/// File names of the standard exports, in the order a model folder is searched.
const MERGED_FILE: &str = "decoder_model_merged.onnx";
const SINGLE_FILE: &str = "model.onnx";
const PROMPT_FILE: &str = "decoder_model.onnx";
const WITH_PAST_FILE: &str = "decoder_with_past_model.onnx";

/// One ONNX graph and its checked signature.
pub(crate) struct Graph {
    path: PathBuf,
    session: Mutex<Session>,
    signature: Signature,
    provider: ProviderChoice,
}

/// Where a graph comes from: a file, or bytes in memory (named for messages).
pub(crate) enum GraphSource<'a> {
    File(&'a Path),
    Memory { name: &'a Path, bytes: &'a [u8] },
}

impl GraphSource<'_> {
    pub(crate) fn path(&self) -> &Path {
        match self {
            GraphSource::File(path) | GraphSource::Memory { name: path, .. } => path,
        }
    }
}

impl Graph {
    fn open(runtime: &Runtime, source: &GraphSource<'_>, config: &ModelConfig) -> Result<Graph> {
        let path = source.path();
        if let GraphSource::Memory { bytes, .. } = source {
            if let Some((initializer, file)) = crate::graph_bytes::external_initializer(bytes) {
                return Err(files_error(
                    path,
                    format!(
                        "initializer {initializer} keeps its data in the separate file {file}, which a \
                         graph loaded from bytes cannot reach: load the model's folder with \
                         Model::load, or export the graph with its weights inside \
                         (models/export_fused.py --single-file)"
                    ),
                ));
            }
        }
        let (session, provider) = runtime.open_session(source)?;
        let mut signature = Signature::read(&session, path, config)?;
        signature.batch_dependent_ops = match source {
            GraphSource::File(path) => crate::graph_bytes::batch_dependent_ops_in_file(path),
            GraphSource::Memory { bytes, .. } => crate::graph_bytes::batch_dependent_ops(bytes),
        };
        Ok(Graph {
            path: path.to_path_buf(),
            session: Mutex::new(session),
            signature,
            provider,
        })
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        // A panic while running a graph leaves the session itself intact.
        self.session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The key/value cache of a batch: one tensor per layer and kind, `[batch, heads, length, head_dim]`,
/// the previous step's present outputs fed back as the next step's past inputs without copying; or,
/// for graphs that share the past/present buffer, [`SharedKv`]. Either way the tensors live on the
/// [`CacheDevice`] of the session's provider.
#[derive(Default)]
pub(crate) struct KvCache {
    values: Vec<Tensor<f32>>,
    shared: Option<SharedKv>,
}

/// Where a session keeps its KV cache between steps: the memory of the device its provider runs
/// on, so a GPU step neither downloads nor uploads the cache (for the CPU provider, host memory).
/// Only the logits come back to the host.
#[derive(Debug, Clone)]
struct CacheDevice {
    device: AllocationDevice<'static>,
    id: i32,
}

impl CacheDevice {
    fn for_provider(choice: &ProviderChoice) -> CacheDevice {
        CacheDevice {
            device: choice.provider.memory_device(),
            id: choice.device_id,
        }
    }

    /// Where `tensor` lives.
    fn of(tensor: &Tensor<f32>) -> CacheDevice {
        let info = tensor.memory_info();
        CacheDevice {
            device: AllocationDevice::new(info.allocation_device().as_str()),
            id: info.device_id(),
        }
    }

    fn is_host(&self) -> bool {
        self.device == AllocationDevice::CPU
    }

    /// The session's allocator for this device's memory.
    fn allocator(&self, session: &Session) -> ort::Result<Allocator> {
        let info = MemoryInfo::new(
            self.device.clone(),
            self.id,
            AllocatorType::Device,
            MemoryType::Default,
        )?;
        Allocator::new(session, info)
    }

    /// `tensor`, which is in host memory, on this device.
    fn place(&self, tensor: Tensor<f32>) -> ort::Result<Tensor<f32>> {
        if self.is_host() {
            Ok(tensor)
        } else {
            tensor.to(self.device.clone(), self.id)
        }
    }
}

/// Run `f` on a cache tensor's shape and data in host memory: in place, or on a copy when the
/// tensor lives on a device (the cache operations of batching and beam search run on the host).
fn with_host_data<R>(
    tensor: &Tensor<f32>,
    what: &str,
    f: impl FnOnce(&[i64], &[f32]) -> R,
) -> Result<R> {
    if tensor.memory_info().is_cpu_accessible() {
        let (shape, data) = tensor.extract_tensor();
        return Ok(f(shape, data));
    }
    let host = tensor
        .to(AllocationDevice::CPU, 0)
        .map_err(|e| Error::ort(format!("{what} the KV cache (copying it to the host)"), e))?;
    let (shape, data) = host.extract_tensor();
    Ok(f(shape, data))
}

/// A cache tensor holding `data` on `device`.
fn cache_tensor(
    dims: Vec<i64>,
    data: Vec<f32>,
    device: &CacheDevice,
    what: &str,
) -> Result<Tensor<f32>> {
    let err = |e| Error::ort(format!("{what} the KV cache"), e);
    device
        .place(Tensor::from_array((dims, data)).map_err(err)?)
        .map_err(err)
}

/// The cache of a shared-buffer graph (`Signature::shares_kv_buffer`): one ONNX Runtime tensor per
/// layer and kind, `[batch, heads, capacity, head_dim]`, bound as both the past input and the present
/// output, so each step writes only its new positions. The first `len` positions are filled.
struct SharedKv {
    tensors: Vec<Tensor<f32>>,
    device: CacheDevice,
    batch: usize,
    heads: usize,
    head_dim: usize,
    capacity: usize,
    len: usize,
}

/// One cache tensor as a plain `[batch, heads, len, head_dim]` array.
type Contiguous = (Vec<i64>, Vec<f32>);

impl SharedKv {
    /// Room for `needed` positions and then some: growing copies the cache once, so it leaves a
    /// quarter (at least 64 positions) of headroom.
    fn capacity_for(needed: usize) -> usize {
        (needed + (needed / 4).max(64)).div_ceil(64) * 64
    }

    /// Cache tensors on `device` for `batch` rows holding `parts` (each
    /// `[batch, heads, len, head_dim]`, possibly empty), with room for `capacity` positions.
    fn from_contiguous(
        parts: Vec<Contiguous>,
        heads: usize,
        head_dim: usize,
        capacity: usize,
        device: CacheDevice,
    ) -> Result<SharedKv> {
        let err = |e| Error::ort("allocating the shared KV cache", e);
        let (mut batch, mut len) = (0, 0);
        let mut tensors = Vec::with_capacity(parts.len());
        for (dims, data) in parts {
            batch = dims[0] as usize;
            len = dims[2] as usize;
            let capacity = capacity.max(len);
            let allocator = ort::memory::Allocator::default();
            let mut tensor =
                Tensor::<f32>::new(&allocator, [batch, heads, capacity, head_dim]).map_err(err)?;
            let (_, buffer) = tensor.extract_tensor_mut();
            // Positions past `len` are never read (a step reads `past_sequence_length + seq` of
            // them; ort's `Tensor::new` has zeroed them); debug builds make them NaN so that any
            // read of them fails the tests.
            if cfg!(debug_assertions) {
                buffer.fill(f32::NAN);
            }
            if len > 0 {
                for (row, block) in data.chunks_exact(len * head_dim).enumerate() {
                    let at = row * capacity * head_dim;
                    buffer[at..at + block.len()].copy_from_slice(block);
                }
            }
            // a copy made by ONNX Runtime, so it can be bound as an output like the host tensor
            tensors.push(device.place(tensor).map_err(err)?);
        }
        Ok(SharedKv {
            tensors,
            device,
            batch,
            heads,
            head_dim,
            capacity: capacity.max(len),
            len,
        })
    }

    /// Every tensor's filled positions as `[batch, heads, len, head_dim]` arrays in host memory.
    fn contiguous(&self, what: &str) -> Result<Vec<Contiguous>> {
        let (len, width) = (self.len, self.head_dim);
        let dims = vec![
            self.batch as i64,
            self.heads as i64,
            len as i64,
            width as i64,
        ];
        self.tensors
            .iter()
            .map(|tensor| {
                with_host_data(tensor, what, |_, data| {
                    let mut out = Vec::with_capacity(self.batch * self.heads * len * width);
                    for block in data.chunks_exact(self.capacity * width) {
                        out.extend_from_slice(&block[..len * width]);
                    }
                    (dims.clone(), out)
                })
            })
            .collect()
    }
}

impl KvCache {
    fn is_empty(&self) -> bool {
        self.values.is_empty() && self.shared.is_none()
    }

    /// Apply `f` to every cache tensor's `(shape, data)`, replacing the tensor with its result.
    fn rebuild(
        &mut self,
        what: &str,
        mut f: impl FnMut(&[i64], &[f32]) -> (Vec<i64>, Vec<f32>),
    ) -> Result<()> {
        if let Some(shared) = self.shared.take() {
            let parts: Vec<Contiguous> = shared
                .contiguous(what)?
                .into_iter()
                .map(|(dims, data)| f(&dims, &data))
                .collect();
            let len = parts.first().map_or(0, |(dims, _)| dims[2] as usize);
            self.shared = Some(SharedKv::from_contiguous(
                parts,
                shared.heads,
                shared.head_dim,
                SharedKv::capacity_for(len + 1).max(shared.capacity),
                shared.device,
            )?);
            return Ok(());
        }
        for value in &mut self.values {
            let device = CacheDevice::of(value);
            let (dims, data) = with_host_data(value, what, &mut f)?;
            *value = cache_tensor(dims, data, &device, what)?;
        }
        Ok(())
    }

    /// Insert `extra` zero positions at the start of the sequence axis of every row (left padding,
    /// masked out by the attention mask).
    pub(crate) fn pad_left(&mut self, extra: usize) -> Result<()> {
        self.rebuild("padding", |shape, data| {
            let (outer, len, inner) = (
                shape[0] as usize * shape[1] as usize,
                shape[2] as usize,
                shape[3] as usize,
            );
            let mut out = Vec::with_capacity(outer * (len + extra) * inner);
            for block in data.chunks_exact(len * inner).take(outer) {
                out.extend(std::iter::repeat_n(0.0, extra * inner));
                out.extend_from_slice(block);
            }
            (
                vec![shape[0], shape[1], (len + extra) as i64, shape[3]],
                out,
            )
        })
    }

    /// Drop the first `count` positions of the sequence axis (padding no row needs any more).
    pub(crate) fn drop_left(&mut self, count: usize) -> Result<()> {
        self.rebuild("trimming", |shape, data| {
            let (outer, len, inner) = (
                shape[0] as usize * shape[1] as usize,
                shape[2] as usize,
                shape[3] as usize,
            );
            let mut out = Vec::with_capacity(outer * (len - count) * inner);
            for block in data.chunks_exact(len * inner).take(outer) {
                out.extend_from_slice(&block[count * inner..]);
            }
            (
                vec![shape[0], shape[1], (len - count) as i64, shape[3]],
                out,
            )
        })
    }

    /// Append another cache's rows (same sequence length) after this one's.
    pub(crate) fn append_rows(&mut self, other: KvCache) -> Result<()> {
        if let (Some(mine), Some(theirs)) = (&self.shared, &other.shared) {
            if mine.len != theirs.len || mine.tensors.len() != theirs.tensors.len() {
                return Err(Error::UnexpectedOutput {
                    tensor: "present".to_string(),
                    message: format!(
                        "cannot merge shared caches of {} and {} positions",
                        mine.len, theirs.len
                    ),
                });
            }
            let parts = mine
                .contiguous("merging")?
                .into_iter()
                .zip(theirs.contiguous("merging")?)
                .map(|((mut dims, mut data), (extra_dims, extra))| {
                    dims[0] += extra_dims[0];
                    data.extend_from_slice(&extra);
                    (dims, data)
                })
                .collect();
            let (heads, head_dim, capacity) = (mine.heads, mine.head_dim, mine.capacity);
            let device = mine.device.clone();
            self.shared = Some(SharedKv::from_contiguous(
                parts, heads, head_dim, capacity, device,
            )?);
            return Ok(());
        }
        if self.values.len() != other.values.len() {
            return Err(Error::UnexpectedOutput {
                tensor: "present".to_string(),
                message: "caches of different layer counts cannot be merged".to_string(),
            });
        }
        for (value, extra) in self.values.iter_mut().zip(other.values) {
            let (shape, extra_shape) = (value.shape().to_vec(), extra.shape().to_vec());
            if shape[1..] != extra_shape[1..] {
                return Err(Error::UnexpectedOutput {
                    tensor: "present".to_string(),
                    message: format!("cannot merge caches of shapes {shape:?} and {extra_shape:?}"),
                });
            }
            let mut dims = shape;
            dims[0] += extra_shape[0];
            let merged = with_host_data(value, "merging", |_, data| {
                with_host_data(&extra, "merging", |_, extra_data| {
                    data.iter().chain(extra_data).copied().collect::<Vec<f32>>()
                })
            })??;
            *value = cache_tensor(dims, merged, &CacheDevice::of(value), "merging")?;
        }
        Ok(())
    }

    /// Rebuild the cache so that row `i` holds the old row `rows[i]` (beam search reordering).
    /// Copies only when the order actually changes.
    pub(crate) fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        let batch = match (&self.shared, self.values.first()) {
            (Some(shared), _) => shared.batch,
            (None, Some(value)) => value.shape()[0] as usize,
            (None, None) => return Ok(()),
        };
        if rows.len() == batch && rows.iter().enumerate().all(|(i, &row)| i == row) {
            return Ok(());
        }
        let mut result = Ok(());
        self.rebuild("reordering", |shape, data| {
            let batch = shape[0] as usize;
            if rows.iter().any(|&row| row >= batch) {
                result = Err(Error::UnexpectedOutput {
                    tensor: "present".to_string(),
                    message: format!("KV cache batch {batch} cannot be reordered to rows {rows:?}"),
                });
                return (shape.to_vec(), data.to_vec());
            }
            let row_len = data.len() / batch.max(1);
            let mut gathered = Vec::with_capacity(row_len * rows.len());
            for &row in rows {
                gathered.extend_from_slice(&data[row * row_len..(row + 1) * row_len]);
            }
            let mut dims = shape.to_vec();
            dims[0] = rows.len() as i64;
            (dims, gathered)
        })?;
        result
    }
}

/// One forward pass over a `[batch, seq]` block of ids.
pub(crate) struct StepInput<'a> {
    pub batch: usize,
    pub seq: usize,
    pub input_ids: &'a [i64],
    /// `[batch, past + seq]`.
    pub attention_mask: &'a [i64],
    /// `[batch, seq]`.
    pub position_ids: &'a [i64],
}

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

fn files_error(path: &Path, message: impl Into<String>) -> Error {
    Error::ModelFiles {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Which graph file(s) a model path means: `(first graph, optional with-past sibling)`.
fn find_graphs(path: &Path) -> Result<(PathBuf, PathBuf, Option<PathBuf>)> {
    if !path.exists() {
        return Err(files_error(path, "model path does not exist"));
    }
    let (dir, first) = if path.is_file() {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        (dir, path.to_path_buf())
    } else if !path.is_dir() {
        return Err(not_regular(path));
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
                    return Err(files_error(
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
            return Err(not_regular(graph));
        }
    }
    Ok((dir, first, with_past))
}

/// A model path that exists but is not a regular file or folder: opening a FIFO or a device would
/// block or read forever, so gptrt reads regular files only (symbolic links to them are fine).
fn not_regular(path: &Path) -> Error {
    files_error(
        path,
        "not a regular file (a FIFO, socket or device?): gptrt reads model files only from regular files",
    )
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
        if !config_path.is_file() {
            return Err(files_error(&dir, "missing config.json (the model's n_layer, n_head, n_embd, n_positions, vocab_size)"));
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
        let parse_error = |file: &str, message: String| Error::Config {
            path: dir.join(file),
            message,
        };
        let config: ModelConfig = serde_json::from_slice(files.config_json)
            .map_err(|e| parse_error("config.json", format!("not a GPT-2 config.json: {e}")))?;
        config.check(&dir.join("config.json"))?;
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
        })
    }

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
    /// [`Model::batch_dependent_ops`] (a dynamic int8 export; requantize it weight-only with
    /// `models/quantize.py`).
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
             requantize the fp32 export weight-only (models/quantize.py) to batch it safely",
            ops.join(", ")
        )
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

    /// Logits for the token after `ids` (one forward pass over the whole sequence, no cache).
    pub fn next_token_logits(&self, ids: &[u32]) -> Result<Vec<f32>> {
        if ids.is_empty() {
            return Err(Error::InvalidOption {
                field: "input_ids",
                message: "at least one token is needed".to_string(),
            });
        }
        if ids.len() > self.config.n_positions {
            return Err(Error::ContextOverflow {
                prompt_tokens: ids.len(),
                n_positions: self.config.n_positions,
            });
        }
        self.check_ids(ids)?;
        let input_ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        let attention_mask = vec![1i64; ids.len()];
        let position_ids: Vec<i64> = (0..ids.len() as i64).collect();
        let mut cache = KvCache::default();
        let mut logits = Vec::new();
        self.forward(
            &StepInput {
                batch: 1,
                seq: ids.len(),
                input_ids: &input_ids,
                attention_mask: &attention_mask,
                position_ids: &position_ids,
            },
            &mut cache,
            &mut logits,
        )?;
        Ok(logits)
    }

    /// Log-likelihood (natural log) of `continuation` following `context`: the sum over the
    /// continuation's tokens of log-softmax of the model's logits. One forward pass, no cache.
    pub fn score(&self, context: &[u32], continuation: &[u32]) -> Result<f64> {
        let per_token = self.token_logprobs(context, continuation)?;
        Ok(per_token.iter().map(|&lp| f64::from(lp)).sum())
    }

    /// Perplexity of `text`: `exp` of the mean negative log-likelihood of every token after the
    /// first (the first is the context of the second).
    pub fn perplexity(&self, text: &str) -> Result<f64> {
        let ids = self.tokenizer.encode(text)?;
        if ids.len() < 2 {
            return Err(Error::InvalidOption {
                field: "text",
                message: "perplexity needs at least two tokens".to_string(),
            });
        }
        let logprobs = self.token_logprobs(&ids[..1], &ids[1..])?;
        let mean = logprobs.iter().map(|&lp| f64::from(lp)).sum::<f64>() / logprobs.len() as f64;
        Ok((-mean).exp())
    }

    /// Log-probability of each `continuation` token after `context` (and the tokens before it).
    pub fn token_logprobs(&self, context: &[u32], continuation: &[u32]) -> Result<Vec<f32>> {
        if context.is_empty() {
            return Err(Error::InvalidOption {
                field: "context",
                message: "at least one context token is needed (GPT-2 uses <|endoftext|>)"
                    .to_string(),
            });
        }
        let ids: Vec<u32> = context.iter().chain(continuation).copied().collect();
        if ids.len() > self.config.n_positions {
            return Err(Error::ContextOverflow {
                prompt_tokens: ids.len(),
                n_positions: self.config.n_positions,
            });
        }
        self.check_ids(&ids)?;
        let input_ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        let attention_mask = vec![1i64; ids.len()];
        let position_ids: Vec<i64> = (0..ids.len() as i64).collect();
        let mut logits = Vec::new();
        self.forward_positions(
            &StepInput {
                batch: 1,
                seq: ids.len(),
                input_ids: &input_ids,
                attention_mask: &attention_mask,
                position_ids: &position_ids,
            },
            &mut KvCache::default(),
            &mut logits,
            true,
        )?;
        let vocab = self.config.vocab_size;
        Ok(continuation
            .iter()
            .enumerate()
            .map(|(i, &token)| {
                let row = &logits[(context.len() + i - 1) * vocab..(context.len() + i) * vocab];
                row[token as usize] - crate::sampling::log_sum_exp(row.iter().copied())
            })
            .collect())
    }

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
    /// `all_positions`.
    pub(crate) fn forward_positions(
        &self,
        input: &StepInput<'_>,
        cache: &mut KvCache,
        logits: &mut Vec<f32>,
        all_positions: bool,
    ) -> Result<()> {
        let first_step = cache.is_empty();
        let graph = match (&self.step_graph, first_step) {
            (Some(step), false) => step,
            _ => &self.prompt_graph,
        };
        let signature = &graph.signature;
        let context = || format!("running {}", graph.path.display());
        let ort_err = |e: ort::Error| Error::ort(context(), e);
        let (batch, seq) = (input.batch, input.seq);
        let past_len = input.attention_mask.len() / batch - seq;
        if signature.shares_kv_buffer {
            return self.forward_shared(graph, input, cache, logits, all_positions);
        }

        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(signature.inputs.len());
        inputs.push((
            "input_ids".into(),
            TensorRef::from_array_view(([batch, seq], input.input_ids))
                .map_err(ort_err)?
                .into(),
        ));
        if signature.has_attention_mask {
            inputs.push((
                "attention_mask".into(),
                TensorRef::from_array_view(([batch, past_len + seq], input.attention_mask))
                    .map_err(ort_err)?
                    .into(),
            ));
        }
        if signature.has_position_ids {
            inputs.push((
                "position_ids".into(),
                TensorRef::from_array_view(([batch, seq], input.position_ids))
                    .map_err(ort_err)?
                    .into(),
            ));
        }
        if signature.has_use_cache_branch {
            let use_cache = Tensor::from_array(([1usize], vec![!first_step])).map_err(ort_err)?;
            inputs.push(("use_cache_branch".into(), use_cache.into()));
        }
        if signature.has_logits_to_keep && (signature.logits_to_keep_is_input || !all_positions) {
            let keep = Tensor::from_array(([0usize; 0], vec![i64::from(!all_positions)]))
                .map_err(ort_err)?;
            inputs.push((LOGITS_TO_KEEP.into(), keep.into()));
        }
        if signature.has_past {
            let layers = self.config.n_layer;
            if first_step {
                let shape = [batch, self.config.n_head, 0, self.config.head_dim()];
                for slot in 0..layers * 2 {
                    let empty = Tensor::from_array((shape, Vec::<f32>::new())).map_err(ort_err)?;
                    inputs.push((past_name(slot / 2, slot % 2 == 0).into(), empty.into()));
                }
            } else {
                for (slot, value) in cache.values.iter().enumerate() {
                    inputs.push((past_name(slot / 2, slot % 2 == 0).into(), value.into()));
                }
            }
        }

        let mut session = graph.session();
        // On a GPU the presents are written straight into tensors in its memory, where the next
        // step reads them as its past; outputs not given a tensor (the logits) come to the host.
        // On the host, the outputs ONNX Runtime allocates from its arena already are where the
        // cache belongs, while a tensor made here would be zeroed first (ort's `Tensor::new`
        // writes every byte: 10-25 % of a 16-row decode step of gpt2-small).
        let cache_device = CacheDevice::for_provider(&graph.provider);
        let options;
        let mut outputs = if self.uses_cache() && !cache_device.is_host() {
            let allocator = cache_device.allocator(&session).map_err(ort_err)?;
            let shape = [
                batch,
                self.config.n_head,
                past_len + seq,
                self.config.head_dim(),
            ];
            let mut presents = OutputSelector::default();
            for slot in 0..self.config.n_layer * 2 {
                let present = Tensor::<f32>::new(&allocator, shape).map_err(ort_err)?;
                presents = presents.preallocate(present_name(slot / 2, slot % 2 == 0), present);
            }
            options = RunOptions::new().map_err(ort_err)?.with_outputs(presents);
            session.run_with_options(inputs, &options)
        } else {
            session.run(inputs)
        }
        .map_err(ort_err)?;
        self.read_logits(&outputs, input, logits, all_positions, &context)?;
        if self.uses_cache() {
            cache.values.clear();
            for slot in 0..self.config.n_layer * 2 {
                let name = present_name(slot / 2, slot % 2 == 0);
                let value = outputs
                    .remove(&name)
                    .ok_or_else(|| Error::UnexpectedOutput {
                        tensor: name.clone(),
                        message: "missing from the run's outputs".to_string(),
                    })?
                    .downcast::<TensorValueType<f32>>()
                    .map_err(|e| Error::UnexpectedOutput {
                        tensor: name.clone(),
                        message: format!("not a float32 tensor ({e})"),
                    })?;
                cache.values.push(value);
            }
        }
        Ok(())
    }

    /// Copy the logits a step needs out of its outputs: the last position of each row, or every
    /// position when `all_positions`.
    fn read_logits(
        &self,
        outputs: &ort::session::SessionOutputs<'_>,
        input: &StepInput<'_>,
        logits: &mut Vec<f32>,
        all_positions: bool,
        context: &dyn Fn() -> String,
    ) -> Result<()> {
        let (batch, seq) = (input.batch, input.seq);
        let value = outputs
            .get("logits")
            .ok_or_else(|| Error::UnexpectedOutput {
                tensor: "logits".to_string(),
                message: "missing from the run's outputs".to_string(),
            })?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::ort(context(), e))?;
        let vocab = self.config.vocab_size;
        let out_seq = shape.get(1).copied().unwrap_or(-1);
        if shape.len() != 3
            || shape[0] as usize != batch
            || shape[2] as usize != vocab
            || out_seq < 1
        {
            return Err(Error::UnexpectedOutput {
                tensor: "logits".to_string(),
                message: format!("shape {shape:?}, expected [{batch}, {seq}, {vocab}]"),
            });
        }
        let out_seq = out_seq as usize;
        logits.clear();
        if all_positions {
            logits.extend_from_slice(&data[..batch * out_seq * vocab]);
        } else {
            for row in 0..batch {
                let last = (row * out_seq + out_seq - 1) * vocab;
                logits.extend_from_slice(&data[last..last + vocab]);
            }
        }
        Ok(())
    }

    /// [`Model::forward_positions`] for a shared-buffer graph: the cache tensors are bound as both
    /// past inputs and present outputs (ONNX Runtime IO binding), so the step writes only its new
    /// positions into them.
    fn forward_shared(
        &self,
        graph: &Graph,
        input: &StepInput<'_>,
        cache: &mut KvCache,
        logits: &mut Vec<f32>,
        all_positions: bool,
    ) -> Result<()> {
        let context = || format!("running {}", graph.path.display());
        let ort_err = |e: ort::Error| Error::ort(context(), e);
        let (batch, seq) = (input.batch, input.seq);
        let past_len = input.attention_mask.len() / batch - seq;
        let (heads, head_dim) = (self.config.n_head, self.config.head_dim());
        let shared = match cache.shared.take() {
            None => {
                let empty = (
                    vec![batch as i64, heads as i64, 0, head_dim as i64],
                    Vec::new(),
                );
                SharedKv::from_contiguous(
                    vec![empty; self.config.n_layer * 2],
                    heads,
                    head_dim,
                    SharedKv::capacity_for(seq),
                    CacheDevice::for_provider(&graph.provider),
                )?
            }
            Some(shared) if shared.batch != batch || shared.len != past_len => {
                return Err(Error::UnexpectedOutput {
                    tensor: "present".to_string(),
                    message: format!(
                        "the shared KV cache holds {} rows x {} positions, the step expects {batch} x {past_len}",
                        shared.batch, shared.len
                    ),
                })
            }
            Some(shared) if past_len + seq > shared.capacity => SharedKv::from_contiguous(
                shared.contiguous("growing")?,
                heads,
                head_dim,
                SharedKv::capacity_for(past_len + seq),
                shared.device,
            )?,
            Some(shared) => shared,
        };
        let shared = cache.shared.insert(shared);

        let mut session = graph.session();
        let mut binding = session.create_binding().map_err(ort_err)?;
        let owned_i64 =
            |shape: [usize; 2], data: &[i64]| Tensor::from_array((shape, data.to_vec()));
        binding
            .bind_input(
                "input_ids",
                &owned_i64([batch, seq], input.input_ids).map_err(ort_err)?,
            )
            .map_err(ort_err)?;
        binding
            .bind_input(
                "attention_mask",
                &owned_i64([batch, past_len + seq], input.attention_mask).map_err(ort_err)?,
            )
            .map_err(ort_err)?;
        if graph.signature.has_position_ids {
            binding
                .bind_input(
                    "position_ids",
                    &owned_i64([batch, seq], input.position_ids).map_err(ort_err)?,
                )
                .map_err(ort_err)?;
        }
        let filled = i32::try_from(past_len).map_err(|_| Error::ContextOverflow {
            prompt_tokens: past_len,
            n_positions: self.config.n_positions,
        })?;
        binding
            .bind_input(
                PAST_SEQUENCE_LENGTH,
                &Tensor::from_array(([1usize], vec![filled])).map_err(ort_err)?,
            )
            .map_err(ort_err)?;
        if graph.signature.has_logits_to_keep {
            let keep = Tensor::from_array(([0usize; 0], vec![i64::from(!all_positions)]))
                .map_err(ort_err)?;
            binding.bind_input(LOGITS_TO_KEEP, &keep).map_err(ort_err)?;
        }
        for (slot, tensor) in shared.tensors.iter_mut().enumerate() {
            let key = slot % 2 == 0;
            binding
                .bind_input(past_name(slot / 2, key), &*tensor)
                .map_err(ort_err)?;
            binding
                .bind_output(present_name(slot / 2, key), &mut *tensor)
                .map_err(ort_err)?;
        }
        let cpu = ort::memory::MemoryInfo::new(
            ort::memory::AllocationDevice::CPU,
            0,
            ort::memory::AllocatorType::Device,
            ort::memory::MemoryType::Default,
        )
        .map_err(ort_err)?;
        binding
            .bind_output_to_device("logits", &cpu)
            .map_err(ort_err)?;
        let outputs = session.run_binding(&binding).map_err(ort_err)?;
        self.read_logits(&outputs, input, logits, all_positions, &context)?;
        shared.len = past_len + seq;
        Ok(())
    }
}
