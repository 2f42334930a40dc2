//! Plugin samplers in a generation: which ones (id and configuration) and the one place that puts
//! them in a generator's chains, for the CLI, sessions and the C API alike.

use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::generate::Generator;
use crate::model::Model;

use super::{PluginHost, PluginSampler};

/// A plugin host several owners use: sessions instantiate their samplers from it at every
/// generation, on their worker threads, while the program may still load libraries into it.
pub type SharedPluginHost = Arc<Mutex<PluginHost>>;

/// A sampler plugin to put in a chain: its id and its configuration JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamplerSpec {
    /// The plugin's id (as `gptrt plugins` lists it).
    pub id: String,
    /// The configuration handed to the plugin's `create`, if any.
    pub config: Option<String>,
}

impl SamplerSpec {
    /// A sampler spec from its id and optional configuration JSON.
    pub fn new(id: impl Into<String>, config: Option<String>) -> SamplerSpec {
        SamplerSpec {
            id: id.into(),
            config,
        }
    }

    /// Parse the CLI's form: `ID` or `ID:CONFIG-JSON`.
    pub fn parse(text: &str) -> SamplerSpec {
        match text.split_once(':') {
            Some((id, json)) => SamplerSpec::new(id, Some(json.to_string())),
            None => SamplerSpec::new(text, None),
        }
    }

    /// A fresh instance of this sampler from `host` (a bad id or configuration fails here).
    pub fn instantiate(&self, host: &PluginHost, model: &Arc<Model>) -> Result<PluginSampler> {
        host.sampler(&self.id, self.config.as_deref(), Some(model.clone()))
    }
}

/// Put a fresh instance of every sampler of `specs` (in order) in the chain of every row of
/// `generator`, just before each row's selector: the one wiring of plugin samplers into a
/// generation.
pub fn add_samplers(
    host: &PluginHost,
    specs: &[SamplerSpec],
    model: &Arc<Model>,
    generator: &mut Generator<'_>,
) -> Result<()> {
    for row in generator.row_ids() {
        for spec in specs {
            generator.add_sampler(row, Box::new(spec.instantiate(host, model)?))?;
        }
    }
    Ok(())
}
