//! Plugin samplers in a generation: which ones (id and configuration) and the one place that puts
//! them in a generator's chains, for the CLI, sessions and the C API alike.

use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::generate::Generator;
use crate::model::Model;
use crate::sampling::SamplerStage;

use super::{PluginHost, PluginSampler};

/// A plugin host several owners use: sessions instantiate their samplers from it at every
/// generation, on their worker threads, while the program may still load libraries into it.
pub type SharedPluginHost = Arc<Mutex<PluginHost>>;

/// A sampler plugin to put in a chain: its id, its configuration JSON, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamplerSpec {
    /// The plugin's id (as `gptrt plugins` lists it).
    pub id: String,
    /// The configuration handed to the plugin's `create`, if any.
    pub config: Option<String>,
    /// The stage the user chose; `None`: the stage the plugin declares.
    pub stage: Option<SamplerStage>,
}

impl SamplerSpec {
    /// A sampler spec from its id and optional configuration JSON.
    pub fn new(id: impl Into<String>, config: Option<String>) -> SamplerSpec {
        SamplerSpec {
            id: id.into(),
            config,
            stage: None,
        }
    }

    /// The same spec with the stage chosen by the user instead of the plugin's own.
    pub fn with_stage(mut self, stage: Option<SamplerStage>) -> SamplerSpec {
        self.stage = stage;
        self
    }

    /// Parse the CLI's form: `ID`, `ID:STAGE`, `ID:CONFIG-JSON` or `ID:STAGE:CONFIG-JSON`, where
    /// STAGE is `processor`, `warper` or `selector` (a configuration is JSON, so never one of
    /// those words).
    pub fn parse(text: &str) -> SamplerSpec {
        let Some((id, rest)) = text.split_once(':') else {
            return SamplerSpec::new(text, None);
        };
        let (head, tail) = match rest.split_once(':') {
            Some((head, tail)) => (head, Some(tail)),
            None => (rest, None),
        };
        match head.parse::<SamplerStage>() {
            Ok(stage) => SamplerSpec::new(id, tail.map(str::to_string)).with_stage(Some(stage)),
            Err(_) => SamplerSpec::new(id, Some(rest.to_string())),
        }
    }

    /// The stage this sampler goes to: the user's choice, else the plugin's declared stage.
    pub fn stage_in(&self, host: &PluginHost) -> Option<SamplerStage> {
        self.stage
            .or_else(|| host.find(&self.id).and_then(|plugin| plugin.stage))
    }

    /// A fresh instance of this sampler from `host` (a bad id or configuration fails here).
    pub fn instantiate(&self, host: &PluginHost, model: &Arc<Model>) -> Result<PluginSampler> {
        host.sampler(&self.id, self.config.as_deref(), Some(model.clone()))
    }
}

/// Put a fresh instance of every sampler of `specs` (in order) in the chain of every row of
/// `generator`, each in its stage ([`SamplerSpec::stage_in`]): the one wiring of plugin samplers
/// into a generation.
pub fn add_samplers(
    host: &PluginHost,
    specs: &[SamplerSpec],
    model: &Arc<Model>,
    generator: &mut Generator<'_>,
) -> Result<()> {
    for row in generator.row_ids() {
        for spec in specs {
            let sampler = Box::new(spec.instantiate(host, model)?);
            let stage = spec.stage_in(host).unwrap_or(SamplerStage::Warper);
            generator.add_sampler_at(row, sampler, stage)?;
        }
    }
    Ok(())
}
