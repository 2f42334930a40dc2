//! `gptrt classify`: one JSON object per input text, in input order, from a trained head
//! (`--head`) or zero-shot over a label set (`--labels`).

use std::path::PathBuf;

use clap::Args;
use gptrt::tasks::{Classification, LinearHead, SequenceClassifier, ZeroShot, ZeroShotOptions};
use gptrt::Model;

use crate::args::{ModelArgs, RuntimeArgs};
use crate::labelled;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("classifier").args(["head", "labels"])))]
#[command(group(clap::ArgGroup::new("input").required(true).args(["text", "input_file"])))]
pub(crate) struct ClassifyArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) runtime: RuntimeArgs,
    /// A head folder written by `gptrt train-head` (without --head or --labels, --model must be a
    /// sequence-classification export, e.g. optimum's `text-classification` task) (head.safetensors + labels.json).
    #[arg(long, value_name = "DIR")]
    pub(crate) head: Option<PathBuf>,
    /// Zero-shot over these labels (comma-separated): each scored by its log-likelihood after
    /// the text and --template.
    #[arg(long, value_name = "A,B,C", value_delimiter = ',')]
    pub(crate) labels: Option<Vec<String>>,
    /// Zero-shot prompt put between the text and the label.
    #[arg(long, default_value = "\nTopic:", value_name = "TEXT")]
    pub(crate) template: String,
    /// Zero-shot: calibrate against the content-free input "N/A".
    #[arg(long)]
    pub(crate) calibrate: bool,
    /// The text to classify.
    #[arg(long, value_name = "TEXT")]
    pub(crate) text: Option<String>,
    /// JSON lines `{"text": ...}` (a "label" field is ignored), classified in order.
    #[arg(long, value_name = "FILE")]
    pub(crate) input_file: Option<PathBuf>,
    /// Print one JSON object per input (`{"label": ..., "scores": {...}}`); else `label<TAB>p`.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn classify(args: ClassifyArgs) -> Result<(), String> {
    let texts: Vec<String> = match (&args.text, &args.input_file) {
        (Some(text), _) => {
            if text.trim().is_empty() {
                return Err("--text is empty: there is nothing to classify".to_string());
            }
            vec![text.clone()]
        }
        (None, Some(path)) => labelled::read(path, false)?
            .into_iter()
            .map(|e| e.text)
            .collect(),
        (None, None) => return Err("give --text or --input-file".to_string()),
    };
    let runtime = args.runtime.runtime().map_err(|e| e.to_string())?;
    if args.head.is_none() && args.labels.is_none() {
        let classifier = SequenceClassifier::load_with(&runtime, args.model.dir()?).map_err(|e| {
            format!("give --head or --labels, or a --model that is a sequence-classification export: {e}")
        })?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let results = classifier.classify(&refs).map_err(|e| e.to_string())?;
        return print(&results, args.json);
    }
    let model = Model::load_with(&runtime, args.model.dir()?).map_err(|e| e.to_string())?;
    let results: Vec<Classification> = if let Some(dir) = &args.head {
        let head = LinearHead::load(dir, &model).map_err(|e| e.to_string())?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        head.classify(&model, &refs).map_err(|e| e.to_string())?
    } else {
        let labels: Vec<String> = args
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|label| label.trim().to_string())
            .collect();
        let options = ZeroShotOptions {
            template: args.template.clone(),
            calibrate: args.calibrate,
            ..ZeroShotOptions::default()
        };
        let zero_shot = ZeroShot::new(&model, &labels, options).map_err(|e| e.to_string())?;
        texts
            .iter()
            .map(|text| zero_shot.classify(&model, text))
            .collect::<gptrt::Result<_>>()
            .map_err(|e| e.to_string())?
    };
    print(&results, args.json)
}

fn print(results: &[Classification], json: bool) -> Result<(), String> {
    for result in results {
        if json {
            say!(
                "{}",
                serde_json::to_string(result).map_err(|e| e.to_string())?
            );
        } else {
            say!("{}\t{:.4}", result.label, result.score(&result.label));
        }
    }
    Ok(())
}
