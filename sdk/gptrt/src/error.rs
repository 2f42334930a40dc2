//! The one error type of the SDK.

use std::path::PathBuf;

/// Everything that can go wrong in gptrt. Each variant names the thing at fault (file, tensor, token,
/// field) and, where there is one, what to do next.
///
/// Its `Debug` form is its message (plus the chain of sources), so `fn main() -> Result<(),
/// gptrt::Error>` prints something a person can act on.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ONNX Runtime shared library could not be found or loaded.
    #[error("ONNX Runtime library not found or not loadable.\n{details}\nWhere it is looked for: {install_hint}")]
    RuntimeLibrary {
        /// Where the SDK looked and what each place answered.
        details: String,
        /// The search order, and how to ship or install the library.
        install_hint: &'static str,
    },
    /// An argument outside the bounds gptrt accepts (a runtime option, a size from outside).
    #[error("invalid argument `{name}`: {message}")]
    InvalidArgument {
        /// The argument's name (`intra_threads`, ...).
        name: &'static str,
        /// Why it is refused, with the bound.
        message: String,
    },
    /// Something inside gptrt went wrong that no input explains: an internal invariant that failed
    /// (a KV cache of the wrong shape for its batch: a bug, please report it), a worker thread
    /// that could not start, a batcher freed under a generation.
    #[error("internal error in {context}: {message}")]
    Internal {
        /// What the SDK was doing.
        context: &'static str,
        /// What did not hold.
        message: String,
    },
    /// A runtime asked for a library file other than the one this process already loaded: ONNX
    /// Runtime is loaded once per process and cannot be swapped.
    #[error(
        "ONNX Runtime is already loaded in this process from {} and cannot be replaced by {} \
         (one library per process: create every runtime with the same library_path, or none)",
        loaded.display(),
        requested.display()
    )]
    RuntimeLibraryConflict {
        /// The library in use.
        loaded: PathBuf,
        /// The library this runtime asked for.
        requested: PathBuf,
    },
    /// A strictly requested execution provider cannot be used.
    #[error("execution provider {provider} (strict) cannot be used: {message}")]
    Provider {
        /// ONNX Runtime's name of the provider.
        provider: &'static str,
        /// Why.
        message: String,
    },
    /// ONNX Runtime reported an error (loading a graph, running it).
    #[error("ONNX Runtime error while {context}: {message}")]
    Ort {
        /// What the SDK was doing.
        context: String,
        /// ONNX Runtime's own message.
        message: String,
        /// ONNX Runtime's error itself, where there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A model folder or file is missing or unreadable.
    #[error("{}: {message}", path.display())]
    ModelFiles {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `config.json` is missing a field or has a value that cannot be right.
    #[error("{}: {message}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// The field and the problem.
        message: String,
    },
    /// The graph's inputs/outputs are not a GPT-2 decoder layout the SDK can run.
    #[error("{}: unsupported graph layout: {message}", path.display())]
    Layout {
        /// The ONNX file.
        path: PathBuf,
        /// The missing or unexpected tensor.
        message: String,
    },
    /// The tokenizer could not be loaded or failed on an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary (size {vocab_size})")]
    InvalidToken {
        /// The offending id.
        id: u32,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// The prompt plus the requested tokens do not fit in the model's context window.
    #[error("prompt is {prompt_tokens} tokens but the model's context window (n_positions) is {n_positions}; shorten the prompt or enable truncation (`truncate_prompt`, CLI `--truncate`)")]
    ContextOverflow {
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// The context window.
        n_positions: usize,
    },
    /// A generation option has a value that cannot be honoured.
    #[error("invalid generation option `{field}`: {message}")]
    InvalidOption {
        /// The option's name (a Hugging Face GenerationConfig name, or `prompts` for the prompts
        /// of a generation; other arguments are [`Error::InvalidArgument`]).
        field: &'static str,
        /// Why the value is rejected.
        message: String,
    },
    /// The graph returned something the SDK did not expect (shape, type).
    #[error("unexpected model output `{tensor}`: {message}")]
    UnexpectedOutput {
        /// The output tensor.
        tensor: String,
        /// What was wrong.
        message: String,
    },
    /// A sampler of the chain failed or misbehaved.
    #[error("sampler `{sampler}`: {message}")]
    Sampler {
        /// The sampler's name.
        sampler: String,
        /// What went wrong.
        message: String,
    },
    /// A plugin could not be loaded or misbehaved.
    #[error("plugin {plugin}: {message}")]
    Plugin {
        /// The plugin (id, version and library, or the library path).
        plugin: String,
        /// The fault.
        message: String,
    },
    /// A session is running a generation: the call needs it idle or finished.
    #[error(
        "a generation is running on this session: poll it to the end, wait for it, or cancel it"
    )]
    Busy,
    /// The call does not fit the object's state (a session's result before any generation ran).
    #[error("{message}")]
    InvalidState {
        /// What the state is and what the call needed.
        message: String,
    },
    /// A generation that ran on a session (or a batcher) failed; the session's result functions
    /// return this. Shared, because every reader of the result gets the same failure.
    #[error("the generation failed: {0}")]
    GenerationFailed(std::sync::Arc<Error>),
    /// A bug in gptrt: a panic caught on a worker thread.
    #[error("{message}")]
    Panic {
        /// Where it happened and the panic's message.
        message: String,
    },
    /// A saved session state that cannot be restored: damaged, truncated, of another format
    /// version, or saved for another model (the message names both fingerprints).
    #[error("saved session state: {message}")]
    SavedState {
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Result with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An ONNX Runtime error, kept as the source.
    pub(crate) fn ort(context: impl Into<String>, err: ort::Error) -> Self {
        Error::Ort {
            context: context.into(),
            message: err.to_string(),
            source: Some(Box::new(err)),
        }
    }

    /// An ONNX Runtime failure known only by its message (ort's builder errors carry the builder,
    /// which cannot cross threads).
    pub(crate) fn ort_message(context: impl Into<String>, message: String) -> Self {
        Error::Ort {
            context: context.into(),
            message,
            source: None,
        }
    }
}

impl Error {
    /// A model file or folder that is missing, unreadable or not what it should be.
    pub(crate) fn model_files(path: &std::path::Path, message: impl Into<String>) -> Error {
        Error::ModelFiles {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// A model path that exists but is not a regular file: opening a FIFO or a device would block
    /// or read forever, and skipping it would hide that the folder is not what its owner thinks.
    pub(crate) fn not_regular_file(path: &std::path::Path) -> Error {
        Error::model_files(
            path,
            "not a regular file (a FIFO, socket, device or folder?): gptrt reads model files only \
             from regular files (symbolic links to them are fine)",
        )
    }
}

/// Whether the model file `path` is there: `Ok(true)` for a regular file (or a link to one),
/// `Ok(false)` when nothing is at the path, and [`Error::not_regular_file`] for anything else.
pub(crate) fn regular_file_present(path: &std::path::Path) -> Result<bool> {
    if path.is_file() {
        Ok(true)
    } else if path.exists() {
        Err(Error::not_regular_file(path))
    } else {
        Ok(false)
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, "\ncaused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
