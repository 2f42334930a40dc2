//! `gptrt classify`: one JSON object per input text, in input order, from a trained head
//! (`--head`) or zero-shot over a label set (`--labels`).

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use gptrt::tasks::{
    Classification, LinearHead, SequenceClassifier, ZeroShot, ZeroShotOptions, FEATURE_BATCH,
};
use gptrt::Model;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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
        let results = classify_all(&texts, FEATURE_BATCH * 4, None, |part| {
            classifier.classify(part)
        })?;
        return print(&results, args.json);
    }
    let model = Model::load_with(&runtime, args.model.dir()?).map_err(|e| e.to_string())?;
    let provider = Some(model.provider());
    let results = if let Some(dir) = &args.head {
        let head = LinearHead::load(dir, &model).map_err(|e| e.to_string())?;
        classify_all(&texts, FEATURE_BATCH * 4, provider, |part| {
            head.classify(&model, part)
        })?
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
        classify_all(&texts, 1, provider, |part| {
            part.iter()
                .map(|text| zero_shot.classify(&model, text))
                .collect()
        })?
    };
    print(&results, args.json)
}

/// Classifies `texts` `chunk` at a time with a progress bar (on a terminal), then says on stderr
/// how many took how long, and on which execution provider when known.
fn classify_all(
    texts: &[String],
    chunk: usize,
    provider: Option<&str>,
    mut classify: impl FnMut(&[&str]) -> gptrt::Result<Vec<Classification>>,
) -> Result<Vec<Classification>, String> {
    let started = Instant::now();
    let bar = ProgressBar::with_draw_target(Some(texts.len() as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("classify {bar:40} {pos}/{len} texts ({per_sec}, eta {eta})")
            .map_err(|e| e.to_string())?,
    );
    let mut results = Vec::with_capacity(texts.len());
    for (index, part) in texts.chunks(chunk).enumerate() {
        let refs: Vec<&str> = part.iter().map(String::as_str).collect();
        let classified = classify(&refs).map_err(|e| {
            let problem = match e {
                gptrt::Error::ContextOverflow {
                    prompt_tokens,
                    n_positions,
                } => format!(
                    "a text of {prompt_tokens} tokens is longer than the model's context window \
                     ({n_positions}): shorten it"
                ),
                other => other.to_string(),
            };
            let first = index * chunk + 1;
            match (texts.len(), part.len()) {
                (1, _) => problem,
                (_, 1) => format!("text {first}: {problem}"),
                (_, n) => format!("texts {first}-{}: {problem}", first + n - 1),
            }
        })?;
        results.extend(classified);
        bar.inc(part.len() as u64);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let provider = provider.map_or(String::new(), |name| format!(" | provider: {name}"));
    eprintln!(
        "[{} texts in {seconds:.2} s | {:.1} texts/s{provider}]",
        texts.len(),
        texts.len() as f64 / seconds.max(1e-9)
    );
    Ok(results)
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
