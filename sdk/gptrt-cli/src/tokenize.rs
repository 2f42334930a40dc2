//! `gptrt tokenize`.

use clap::Args;
use gptrt::Tokenizer;
use serde_json::json;

use crate::args::ModelArgs;

#[derive(Args)]
pub(crate) struct TokenizeArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// The text to tokenize.
    #[arg(long)]
    pub(crate) text: String,
    /// Print {"ids": [...]}.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn tokenize(args: TokenizeArgs) -> Result<(), String> {
    let tokenizer = Tokenizer::from_dir(&args.model.dir()?).map_err(|e| e.to_string())?;
    let ids = tokenizer.encode(&args.text).map_err(|e| e.to_string())?;
    if args.json {
        say!("{}", json!({ "ids": ids }));
    } else {
        for id in ids {
            let piece = tokenizer.token_bytes(id).map_err(|e| e.to_string())?;
            say!("{id}\t{:?}", String::from_utf8_lossy(piece));
        }
    }
    Ok(())
}
