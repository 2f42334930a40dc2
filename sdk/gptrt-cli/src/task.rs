//! `gptrt task`.

use std::sync::Arc;

use clap::Args;
use gptrt::Model;

use crate::args::{ModelArgs, PluginArgs, RuntimeArgs};

#[derive(Args)]
pub(crate) struct TaskArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) runtime: RuntimeArgs,
    #[command(flatten)]
    pub(crate) plugins: PluginArgs,
    /// The task-head plugin id (e.g. org.gptrt.choice).
    #[arg(long, value_name = "ID")]
    pub(crate) task: String,
    /// The task's configuration (JSON).
    #[arg(long, value_name = "JSON")]
    pub(crate) config: Option<String>,
    /// The task's input (JSON).
    #[arg(long, value_name = "JSON")]
    pub(crate) input: String,
}

pub(crate) fn task(args: TaskArgs) -> Result<(), String> {
    let runtime = args.runtime.runtime().map_err(|e| e.to_string())?;
    let model = Arc::new(Model::load_with(&runtime, args.model.dir()?).map_err(|e| e.to_string())?);
    let host = args.plugins.host()?;
    let mut head = host
        .task_head(&args.task, args.config.as_deref(), model)
        .map_err(|e| e.to_string())?;
    let output = head.run(&args.input).map_err(|e| e.to_string())?;
    say!("{output}");
    Ok(())
}
