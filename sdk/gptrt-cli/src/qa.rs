//! `gptrt qa`: answer a question about a context, generated (default) or extracted as a span.

use clap::Args;
use gptrt::tasks::QaOptions;
use gptrt::Model;

use crate::args::{ModelArgs, RuntimeArgs};

#[derive(Args)]
pub(crate) struct QaArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) runtime: RuntimeArgs,
    /// The text the answer is about.
    #[arg(long, value_name = "TEXT")]
    pub(crate) context: String,
    /// The question.
    #[arg(long, value_name = "TEXT")]
    pub(crate) question: String,
    /// Pick the most likely span of the context (with character offsets) instead of generating.
    #[arg(long)]
    pub(crate) extractive: bool,
    /// Extractive: longest candidate span in words.
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub(crate) max_span_words: usize,
    /// Generative: most answer tokens.
    #[arg(long, default_value_t = 24, value_name = "N")]
    pub(crate) max_answer_tokens: usize,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn qa(args: QaArgs) -> Result<(), String> {
    let runtime = args.runtime.runtime().map_err(|e| e.to_string())?;
    let model = Model::load_with(&runtime, args.model.dir()?).map_err(|e| e.to_string())?;
    let options = QaOptions {
        max_answer_tokens: args.max_answer_tokens,
        max_span_words: args.max_span_words,
    };
    let (answer, json) = if args.extractive {
        let found = model
            .extract_answer(&args.context, &args.question, &options)
            .map_err(|e| e.to_string())?;
        (found.answer.clone(), serde_json::to_string(&found))
    } else {
        let found = model
            .answer(&args.context, &args.question, &options)
            .map_err(|e| e.to_string())?;
        (found.answer.clone(), serde_json::to_string(&found))
    };
    if args.json {
        say!("{}", json.map_err(|e| e.to_string())?);
    } else {
        say!("{answer}");
    }
    Ok(())
}
