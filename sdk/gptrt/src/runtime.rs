//! The ONNX Runtime environment: where the shared library comes from, threads, graph optimisation.
//!
//! ONNX Runtime allows one environment per process, so the first [`Runtime`] made in a process loads
//! the library and owns the environment; later calls hand out the same one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;

use crate::error::{Error, Result};
use crate::provider::{ExecutionProvider, ProviderChoice, ProviderRequest};

/// The ONNX Runtime release gptrt is built and tested against (`ort` 2.0.0-rc.15, API 31).
pub const ONNXRUNTIME_VERSION: &str = "1.31.1";

/// The file name of the ONNX Runtime library shipped in PyPI's `onnxruntime==1.31.1` wheel.
pub const ONNXRUNTIME_LIBRARY: &str = "libonnxruntime.so.1.31.1";

/// Where a program finds the library, and how to put it there: shown with every failed search.
pub const INSTALL_HINT: &str = "a program looks for libonnxruntime.so.1.31.1 (ONNX Runtime 1.31.1, \
from PyPI's onnxruntime==1.31.1 wheel) in this order: the runtime options' library path (Rust \
RuntimeOptions::library_path, C gptrt_runtime_options_t.library_path, CLI --ort-library), else \
$ORT_DYLIB_PATH, else next to the executable, else (development builds only) the .ort/ folder of the \
source tree it was built from. To ship a program, put the library next to its executable or point \
ORT_DYLIB_PATH at it; in the source tree, scripts/setup.sh installs it into .ort/.";

/// The folder of the source tree this crate was built from where `scripts/setup.sh` installs the
/// library: a development convenience, searched last, and absent on any machine the program is
/// copied to.
pub fn setup_library_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ort")
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

/// How far ONNX Runtime rewrites the graph before running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OptimizationLevel {
    /// No rewriting.
    Disabled,
    /// Constant folding and redundant node removal.
    Basic,
    /// Basic plus node fusions.
    Extended,
    /// Everything, including layout changes (the default).
    #[default]
    All,
}

/// Options for the process-wide runtime. Build them with [`Runtime::builder`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Explicit path to the ONNX Runtime shared library; searched first.
    pub library_path: Option<PathBuf>,
    /// Threads used inside one operator (0 = one per available core).
    pub intra_threads: usize,
    /// Threads used across independent operators (0 = ONNX Runtime's choice).
    pub inter_threads: usize,
    /// Graph optimisation level.
    pub optimization_level: OptimizationLevel,
    /// Execution providers in priority order; CPU ends every list. Empty = CPU only.
    pub providers: Vec<ProviderRequest>,
    /// Save each graph after ONNX Runtime optimised it in this folder, and load the saved one next
    /// time instead of optimising again (keyed by file, size, mtime, level and ONNX Runtime).
    pub optimized_cache_dir: Option<PathBuf>,
}

/// Builder for [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeBuilder {
    options: RuntimeOptions,
}

impl RuntimeBuilder {
    /// Use this ONNX Runtime library file before looking anywhere else.
    pub fn library_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.library_path = Some(path.into());
        self
    }
    /// Threads inside one operator (0 = one per core).
    pub fn intra_threads(mut self, threads: usize) -> Self {
        self.options.intra_threads = threads;
        self
    }
    /// Threads across operators (0 = ONNX Runtime's default).
    pub fn inter_threads(mut self, threads: usize) -> Self {
        self.options.inter_threads = threads;
        self
    }
    /// Graph optimisation level.
    pub fn optimization_level(mut self, level: OptimizationLevel) -> Self {
        self.options.optimization_level = level;
        self
    }
    /// Cache optimised graphs in this folder (see [`RuntimeOptions::optimized_cache_dir`]).
    pub fn optimized_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.optimized_cache_dir = Some(dir.into());
        self
    }
    /// Execution providers in priority order (each strict or fallback); CPU ends the list.
    pub fn providers(mut self, providers: impl IntoIterator<Item = ProviderRequest>) -> Self {
        self.options.providers = providers.into_iter().collect();
        self
    }
    /// Load the library (once per process) and return the runtime.
    pub fn build(self) -> Result<Runtime> {
        Runtime::new(self.options)
    }
}

struct Environment {
    env: ort::environment::Environment,
    library_path: PathBuf,
}

/// A handle to the process's ONNX Runtime environment plus per-handle session options.
/// Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Runtime {
    environment: Arc<Environment>,
    options: RuntimeOptions,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library_path", &self.environment.library_path)
            .field("options", &self.options)
            .finish()
    }
}

static ENVIRONMENT: Mutex<Option<Arc<Environment>>> = Mutex::new(None);

impl Runtime {
    /// A builder with default options.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Load ONNX Runtime (the first call in a process) and return a runtime with these options.
    ///
    /// The library is searched in this order: `options.library_path`, `$ORT_DYLIB_PATH`, next to
    /// the executable, then the setup folder of the source tree this crate was built from (`.ort/`,
    /// for development: a program copied to another machine does not have it). An explicit path
    /// (the first two) that cannot be loaded is an error rather than a reason to look elsewhere.
    /// The first runtime made in a process fixes the library; later calls reuse it and only change
    /// the session options, and a later `library_path` naming another file is an error
    /// ([`Error::RuntimeLibraryConflict`]), never silently swapped for the loaded one.
    pub fn new(options: RuntimeOptions) -> Result<Runtime> {
        check_threads(&options)?;
        let mut slot = ENVIRONMENT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(environment) = slot.as_ref() {
            if let Some(requested) = &options.library_path {
                let same =
                    requested.canonicalize().ok().as_ref() == Some(&environment.library_path);
                if !same {
                    return Err(Error::RuntimeLibraryConflict {
                        loaded: environment.library_path.clone(),
                        requested: requested.clone(),
                    });
                }
            }
            return Ok(Runtime {
                environment: environment.clone(),
                options,
            });
        }
        let environment = Arc::new(load_environment(&options)?);
        *slot = Some(environment.clone());
        Ok(Runtime {
            environment,
            options,
        })
    }

    /// The runtime with default options (loads the library on first use).
    pub fn default_runtime() -> Result<Runtime> {
        Runtime::new(RuntimeOptions::default())
    }

    /// The ONNX Runtime library file in use.
    pub fn library_path(&self) -> &Path {
        &self.environment.library_path
    }

    /// The options of this handle.
    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// Create an ONNX Runtime session for one graph, with this runtime's options, on the first
    /// provider of the list that can be used.
    pub(crate) fn open_session(
        &self,
        source: &GraphSource<'_>,
    ) -> Result<(Session, ProviderChoice)> {
        let path = source.path();
        let context = || format!("loading {}", path.display());
        let cached = match source {
            GraphSource::File(file) => self.optimized_cache_file(file),
            GraphSource::Memory { .. } => None,
        };
        let reuse = cached.as_ref().is_some_and(|c| c.is_file());
        let mut builder = self
            .session_builder(reuse)
            .map_err(|e| Error::ort_message(context(), e))?;
        if let (Some(cache), false) = (&cached, reuse) {
            if let Some(dir) = cache.parent() {
                std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            // the weights go beside the cached graph, so its later loads map them from disk
            let weights = external_data_file(cache);
            let weights_name = weights
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            builder = builder
                .with_optimized_model_path(cache)
                .map_err(|e| Error::ort_message(context(), e.to_string()))?
                .with_config_entry(
                    "session.optimized_model_external_initializers_file_name",
                    weights_name,
                )
                .map_err(|e| Error::ort_message(context(), e.to_string()))?
                .with_config_entry(
                    "session.optimized_model_external_initializers_min_size_in_bytes",
                    "1024",
                )
                .map_err(|e| Error::ort_message(context(), e.to_string()))?;
        }
        let mut skipped = Vec::new();
        let (mut chosen, mut device_id) = (ExecutionProvider::Cpu, 0);
        for request in &self.options.providers {
            match crate::provider::register(&mut builder, request, self.library_path()) {
                Ok(()) => {
                    chosen = request.provider;
                    if chosen != ExecutionProvider::Cpu {
                        device_id = request.device_id;
                    }
                    break;
                }
                Err(reason) if request.strict => {
                    return Err(Error::Provider {
                        provider: request.provider.name(),
                        message: reason,
                    })
                }
                Err(reason) => skipped.push((request.provider, reason)),
            }
        }
        let session = match (source, &cached) {
            (GraphSource::File(_), Some(cache)) if reuse => builder.commit_from_file(cache),
            (GraphSource::File(file), _) => builder.commit_from_file(file),
            (GraphSource::Memory { bytes, .. }, _) => builder.commit_from_memory(bytes),
        }
        .map_err(|e| Error::ort(context(), e))?;
        Ok((
            session,
            ProviderChoice {
                provider: chosen,
                device_id,
                skipped,
            },
        ))
    }

    /// Where the optimised form of `file` is cached, if caching is on.
    fn optimized_cache_file(&self, file: &Path) -> Option<PathBuf> {
        use std::hash::{Hash, Hasher};
        // FNV-1a: stable across runs and processes, unlike std's hasher.
        struct Fnv(u64);
        impl Hasher for Fnv {
            fn finish(&self) -> u64 {
                self.0
            }
            fn write(&mut self, bytes: &[u8]) {
                for &b in bytes {
                    self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
                }
            }
        }
        let dir = self.options.optimized_cache_dir.as_ref()?;
        let meta = std::fs::metadata(file).ok()?;
        let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
        file.canonicalize().ok()?.hash(&mut hasher);
        meta.len().hash(&mut hasher);
        meta.modified().ok()?.hash(&mut hasher);
        // new weights in external data beside an unchanged graph must not reuse the old cache
        if let Ok(weights) = std::fs::metadata(external_data_file(file)) {
            weights.len().hash(&mut hasher);
            weights.modified().ok()?.hash(&mut hasher);
        }
        format!("{:?}", self.options.optimization_level).hash(&mut hasher);
        ONNXRUNTIME_VERSION.hash(&mut hasher);
        let stem = file.file_stem()?.to_string_lossy();
        Some(dir.join(format!("{stem}-{:016x}.optimized.onnx", hasher.finish())))
    }

    /// A session builder with this runtime's options; `already_optimized` turns graph rewriting
    /// off (the graph is a saved, optimised one).
    fn session_builder(
        &self,
        already_optimized: bool,
    ) -> std::result::Result<SessionBuilder, String> {
        let level = match self.options.optimization_level {
            _ if already_optimized => GraphOptimizationLevel::Disable,
            OptimizationLevel::Disabled => GraphOptimizationLevel::Disable,
            OptimizationLevel::Basic => GraphOptimizationLevel::Level1,
            OptimizationLevel::Extended => GraphOptimizationLevel::Level2,
            OptimizationLevel::All => GraphOptimizationLevel::All,
        };
        let mut builder = Session::builder(&self.environment.env)
            .map_err(|e| e.to_string())?
            .with_optimization_level(level)
            .map_err(|e| e.to_string())?;
        // ONNX Runtime's own default measured 15-60% slower decode here than one thread per core.
        let intra_threads = match self.options.intra_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        builder = builder
            .with_intra_threads(intra_threads)
            .map_err(|e| e.to_string())?
            .with_operators(crate::graph::attention::operators().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        if self.options.inter_threads > 0 {
            builder = builder
                .with_inter_threads(self.options.inter_threads)
                .map_err(|e| e.to_string())?;
        }
        Ok(builder)
    }
}

/// More threads than this many per core only slow ONNX Runtime down, and huge counts exhaust the
/// process's thread or memory limits inside ONNX Runtime, where no error comes back.
const MAX_THREADS_PER_CORE: usize = 4;

/// Thread counts are bounded by the machine's cores before ONNX Runtime sees them.
fn check_threads(options: &RuntimeOptions) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let limit = cores * MAX_THREADS_PER_CORE;
    for (name, value) in [
        ("intra_threads", options.intra_threads),
        ("inter_threads", options.inter_threads),
    ] {
        if value > limit {
            return Err(Error::InvalidArgument {
                name,
                message: format!(
                    "{value} threads on a machine with {cores} cores; the limit is {limit} \
                     ({MAX_THREADS_PER_CORE} per core; 0 = one per core)"
                ),
            });
        }
    }
    Ok(())
}

/// Where a graph's weights live when they are kept outside it (`<name>.data`, as
/// `models/export_fused.py` writes them, and as the optimised-graph cache stores its graphs).
fn external_data_file(graph: &Path) -> PathBuf {
    let mut name = graph.file_name().unwrap_or_default().to_os_string();
    name.push(".data");
    graph.with_file_name(name)
}

/// Every place the library is looked for, in order, with where each candidate came from. An
/// explicit path (options, then `$ORT_DYLIB_PATH`) is the only candidate when given: a wrong explicit
/// path is reported, never silently replaced by another library.
fn library_candidates(options: &RuntimeOptions) -> Vec<(String, PathBuf)> {
    if let Some(path) = &options.library_path {
        return vec![("runtime options library_path".to_string(), path.clone())];
    }
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return vec![("$ORT_DYLIB_PATH".to_string(), PathBuf::from(path))];
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        for name in [ONNXRUNTIME_LIBRARY, "libonnxruntime.so"] {
            candidates.push(("next to the executable".to_string(), dir.join(name)));
        }
    }
    candidates.push((
        "the source tree's setup folder (development builds)".to_string(),
        setup_library_dir().join(ONNXRUNTIME_LIBRARY),
    ));
    candidates
}

fn load_environment(options: &RuntimeOptions) -> Result<Environment> {
    load_first(library_candidates(options))
}

/// Load the first candidate that is a loadable library; the error lists every candidate and what
/// it answered.
fn load_first(candidates: Vec<(String, PathBuf)>) -> Result<Environment> {
    let mut report = Vec::new();
    for (origin, path) in candidates {
        if !path.is_file() {
            report.push(format!("  {origin}: {} (not found)", path.display()));
            continue;
        }
        match ort::init_from(&path) {
            Ok(builder) => {
                let env = builder
                    .with_name("gptrt")
                    .build()
                    .map_err(|e| Error::ort("creating the ONNX Runtime environment", e))?;
                let library_path = path.canonicalize().unwrap_or(path);
                return Ok(Environment { env, library_path });
            }
            Err(e) => report.push(format!("  {origin}: {} ({e})", path.display())),
        }
    }
    Err(Error::RuntimeLibrary {
        details: format!("Looked in:\n{}", report.join("\n")),
        install_hint: INSTALL_HINT,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_search_lists_each_place_and_states_the_rule_for_shipped_programs() {
        // Only places where nothing is found: this test binary may already hold an environment
        // (another test loaded a model), and ONNX Runtime allows one per process.
        let dir = std::env::temp_dir().join(format!("gptrt-ort-search-{}", std::process::id()));
        let beside = dir.join("bin").join(ONNXRUNTIME_LIBRARY);
        let missing = dir.join("missing").join(ONNXRUNTIME_LIBRARY);
        let error = match load_first(vec![
            ("next to the executable".to_string(), beside.clone()),
            ("setup folder".to_string(), missing.clone()),
        ]) {
            Err(error) => error,
            Ok(_) => panic!("a library loaded from a folder that does not exist"),
        };
        let text = error.to_string();
        for (origin, path) in [
            ("next to the executable", &beside),
            ("setup folder", &missing),
        ] {
            assert!(
                text.contains(&format!("{origin}: {} (not found)", path.display())),
                "{text}"
            );
        }
        for rule in [
            "library path",
            "$ORT_DYLIB_PATH",
            "next to its executable",
            "ORT_DYLIB_PATH at it",
        ] {
            assert!(
                text.contains(rule),
                "the error does not say `{rule}`: {text}"
            );
        }
        // `fn main() -> Result<(), gptrt::Error>` prints the Debug form: it must read like the message.
        assert_eq!(format!("{error:?}"), text);
    }

    #[test]
    fn the_executable_folder_comes_before_the_development_folder() {
        let origins: Vec<String> = library_candidates(&RuntimeOptions::default())
            .into_iter()
            .map(|(origin, _)| origin)
            .collect();
        if std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| !p.is_empty()) {
            assert_eq!(origins, ["$ORT_DYLIB_PATH"]);
            return;
        }
        let exe = origins.iter().position(|o| o == "next to the executable");
        let dev = origins.iter().position(|o| o.contains("development"));
        assert!(exe.is_some() && exe < dev, "{origins:?}");
    }
}
