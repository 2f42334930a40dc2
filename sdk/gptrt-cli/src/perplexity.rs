//! `gptrt perplexity`.

use std::path::PathBuf;

use clap::Args;
use gptrt::Model;
use serde_json::json;

use crate::args::{ModelArgs, RuntimeArgs};

#[derive(Args)]
pub(crate) struct PerplexityArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) runtime: RuntimeArgs,
    /// The text to score.
    #[arg(long, value_name = "FILE")]
    pub(crate) text_file: PathBuf,
}

pub(crate) fn perplexity(args: PerplexityArgs) -> Result<(), String> {
    let runtime = args.runtime.runtime().map_err(|e| e.to_string())?;
    let model = Model::load_with(&runtime, args.model.dir()?).map_err(|e| e.to_string())?;
    let bytes =
        std::fs::read(&args.text_file).map_err(|e| format!("{}: {e}", args.text_file.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{}: not valid UTF-8 (invalid byte at offset {})",
            args.text_file.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let tokens = model
        .tokenizer()
        .encode(&text)
        .map_err(|e| e.to_string())?
        .len();
    let value = model.perplexity(&text).map_err(|e| e.to_string())?;
    say!(
        "{}",
        json!({"perplexity": value, "tokens": tokens, "model": model.dir().display().to_string()})
    );
    Ok(())
}
