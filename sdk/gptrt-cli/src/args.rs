//! Flags several commands share: the model, the runtime, plugins; and reporting the provider.

use std::path::{Path, PathBuf};

use clap::Args;
use gptrt::{Allowlist, PluginHost, Runtime, RuntimeOptions};
use serde_json::json;

#[derive(Args)]
pub(crate) struct ModelArgs {
    /// Model folder (config.json, tokenizer, ONNX graph(s)) or one .onnx file in it.
    /// Default: $GPTRT_MODEL, else the model bundled in this repository.
    #[arg(long, value_name = "DIR")]
    pub(crate) model: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct RuntimeArgs {
    /// ONNX Runtime library to load (else $ORT_DYLIB_PATH, next to gptrt, then .ort/ of the source tree).
    #[arg(long, value_name = "FILE")]
    pub(crate) ort_library: Option<PathBuf>,
    /// Threads inside one operator (0 = one per core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) threads: usize,
    /// Execution provider to try, in order (repeatable): cpu, cuda, tensorrt, directml, each
    /// optionally `:strict` (fail instead of falling back) and `:DEVICE`. CPU ends every list.
    #[arg(long = "provider", value_name = "NAME[:strict][:DEVICE]", value_parser = gptrt::ProviderRequest::parse)]
    pub(crate) providers: Vec<gptrt::ProviderRequest>,
    /// Save graphs after ONNX Runtime optimised them in DIR and load those next time (faster start).
    #[arg(long, value_name = "DIR")]
    pub(crate) optimized_cache: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct PluginArgs {
    /// Load a plugin library (repeatable); libraries in $GPTRT_PLUGIN_PATH load too.
    #[arg(long = "plugin", value_name = "PATH")]
    pub(crate) plugins: Vec<PathBuf>,
    /// Only accept plugin libraries pinned in this SHA-256 allowlist (`sha256sum` format).
    #[arg(long, value_name = "FILE")]
    pub(crate) plugin_allowlist: Option<PathBuf>,
}

/// Where the bundled models live in this repository, best first.
pub(crate) fn default_model_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("GPTRT_MODEL").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    ["models/demo", "models/fixtures/tiny-random-gpt2/single"]
        .iter()
        .map(|dir| repo.join(dir))
        .find(|dir| dir.join("config.json").is_file())
        .ok_or_else(|| "no --model given and no bundled model found; pass --model DIR".to_string())
}

impl ModelArgs {
    pub(crate) fn dir(&self) -> Result<PathBuf, String> {
        match &self.model {
            Some(dir) => Ok(dir.clone()),
            None => default_model_dir(),
        }
    }
}

impl RuntimeArgs {
    pub(crate) fn runtime(&self) -> gptrt::Result<Runtime> {
        Runtime::new(RuntimeOptions {
            library_path: self.ort_library.clone(),
            intra_threads: self.threads,
            providers: self.providers.clone(),
            optimized_cache_dir: self.optimized_cache.clone(),
            ..RuntimeOptions::default()
        })
    }
}

impl PluginArgs {
    pub(crate) fn host(&self) -> Result<PluginHost, String> {
        let mut host = PluginHost::new();
        if let Some(path) = &self.plugin_allowlist {
            host = host.with_allowlist(Allowlist::from_file(path).map_err(|e| e.to_string())?);
        }
        for error in host.load_from_env() {
            eprintln!("warning: {error}");
        }
        for path in &self.plugins {
            host.load(path).map_err(|e| e.to_string())?;
        }
        Ok(host)
    }
}

/// Providers tried before the one that ran, and why each was skipped.
pub(crate) fn skipped_json(choice: &gptrt::ProviderChoice) -> serde_json::Value {
    choice
        .skipped
        .iter()
        .map(|(provider, reason)| json!({"provider": provider.name(), "reason": reason}))
        .collect()
}

/// Warn on stderr about providers that were asked for but not used.
pub(crate) fn warn_skipped(choice: &gptrt::ProviderChoice) {
    for (provider, reason) in &choice.skipped {
        eprintln!("note: {provider} not used: {reason}; falling back");
    }
}
