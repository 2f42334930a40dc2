//! The plugin host: finds, checks (ABI version, struct sizes, required slots, optional SHA-256
//! pin), loads and never unloads plugin libraries; turns their samplers into links of the sampler
//! chain and runs their task heads. Every fault of a plugin becomes an [`Error::Plugin`] naming the
//! plugin; the session stays usable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gptrt_plugin_api::*;

mod open;

pub use crate::generate::calls::PluginCallWatch;

mod samplers;
pub use samplers::{add_samplers, SamplerSpec, SharedPluginHost};

mod allowlist;
mod host_api;
mod host_hidden;
mod host_model;
mod host_output;
mod host_sessions;
mod instances;
pub(crate) mod loader;
mod stop;

pub use allowlist::Allowlist;
pub use instances::{PluginSampler, TaskHead};
pub use loader::{libraries_in, load_library};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::sampling::{Candidate, SamplerStage};

/// The environment variable listing plugin folders (separated by `:`).
pub const PLUGIN_PATH_ENV: &str = "GPTRT_PLUGIN_PATH";

const _: () = {
    assert!(std::mem::size_of::<Candidate>() == std::mem::size_of::<GptrtCandidate>());
    assert!(std::mem::align_of::<Candidate>() == std::mem::align_of::<GptrtCandidate>());
};

fn plugin_error(plugin: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Plugin {
        plugin: plugin.into(),
        message: message.into(),
    }
}

/// What kind of plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// A sampler: a link of the sampler chain.
    Sampler,
    /// A task head: JSON in, JSON out.
    TaskHead,
}

impl PluginKind {
    /// `sampler` or `task_head`.
    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Sampler => "sampler",
            PluginKind::TaskHead => "task_head",
        }
    }
}

enum Vtable {
    Sampler(GptrtSamplerVtable),
    TaskHead(GptrtTaskHeadVtable),
}

/// One plugin a library offers, checked and ready to instantiate.
pub struct PluginInfo {
    /// The library file.
    pub library: PathBuf,
    /// Reverse-domain id.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// One line on what it does.
    pub description: String,
    /// Sampler or task head.
    pub kind: PluginKind,
    /// The ABI version it was built for.
    pub abi: (u32, u32),
    /// A sampler's stage as the plugin declares it ([`SamplerStage::Warper`] for plugins built
    /// for ABI 1.0/1.1); `None` for a task head.
    pub stage: Option<SamplerStage>,
    vtable: Vtable,
}

impl std::fmt::Debug for PluginInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInfo")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("library", &self.library)
            .finish()
    }
}

impl PluginInfo {
    /// `id@version (library)`, for messages.
    pub fn label(&self) -> String {
        format!("{}@{} ({})", self.id, self.version, self.library.display())
    }
}

/// A loaded library and what it offers.
#[derive(Debug)]
pub struct PluginLibrary {
    /// The file.
    pub path: PathBuf,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// The ABI version the library declares.
    pub abi: (u32, u32),
    /// Its plugins.
    pub plugins: Vec<Arc<PluginInfo>>,
}

/// The plugins a process has loaded, found by id.
#[derive(Debug, Default)]
pub struct PluginHost {
    libraries: Vec<PluginLibrary>,
    allowlist: Option<Allowlist>,
}

impl PluginHost {
    /// A host with no plugins and no allowlist.
    pub fn new() -> PluginHost {
        PluginHost::default()
    }

    /// Only load libraries pinned in this allowlist.
    pub fn with_allowlist(mut self, allowlist: Allowlist) -> PluginHost {
        self.allowlist = Some(allowlist);
        self
    }

    /// Load one library (explicit path).
    pub fn load(&mut self, path: &Path) -> Result<&PluginLibrary> {
        let library = load_library(path, self.allowlist.as_ref())?;
        for plugin in &library.plugins {
            if let Some(existing) = self.find(&plugin.id) {
                return Err(plugin_error(
                    plugin.label(),
                    format!("id already provided by {}", existing.label()),
                ));
            }
        }
        self.libraries.push(library);
        Ok(self.libraries.last().expect("just pushed"))
    }

    /// Load every library in `$GPTRT_PLUGIN_PATH` folders; returns the failures (a bad plugin does
    /// not stop the others).
    pub fn load_from_env(&mut self) -> Vec<Error> {
        let Some(value) = std::env::var_os(PLUGIN_PATH_ENV) else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        for dir in std::env::split_paths(&value).filter(|d| !d.as_os_str().is_empty()) {
            match libraries_in(&dir) {
                Ok(files) => {
                    for file in files {
                        if let Err(e) = self.load(&file) {
                            errors.push(e);
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    /// Every loaded library.
    pub fn libraries(&self) -> &[PluginLibrary] {
        &self.libraries
    }

    /// A loaded plugin by id.
    pub fn find(&self, id: &str) -> Option<&Arc<PluginInfo>> {
        self.libraries
            .iter()
            .flat_map(|l| &l.plugins)
            .find(|p| p.id == id)
    }

    fn find_kind(&self, id: &str, kind: PluginKind) -> Result<Arc<PluginInfo>> {
        let plugin = self.find(id).ok_or_else(|| {
            let known: Vec<&str> = self
                .libraries
                .iter()
                .flat_map(|l| &l.plugins)
                .map(|p| p.id.as_str())
                .collect();
            plugin_error(
                id,
                format!(
                    "no such plugin loaded (loaded: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })?;
        if plugin.kind != kind {
            return Err(plugin_error(
                plugin.label(),
                format!("is a {}, not a {}", plugin.kind.name(), kind.name()),
            ));
        }
        Ok(plugin.clone())
    }

    /// An instance of a sampler plugin, ready to join a [`crate::SamplerChain`].
    pub fn sampler(
        &self,
        id: &str,
        config_json: Option<&str>,
        model: Option<Arc<Model>>,
    ) -> Result<PluginSampler> {
        PluginSampler::new(self.find_kind(id, PluginKind::Sampler)?, config_json, model)
    }

    /// An instance of a task-head plugin over `model`.
    pub fn task_head(
        &self,
        id: &str,
        config_json: Option<&str>,
        model: Arc<Model>,
    ) -> Result<TaskHead> {
        TaskHead::new(
            self.find_kind(id, PluginKind::TaskHead)?,
            config_json,
            model,
        )
    }
}
