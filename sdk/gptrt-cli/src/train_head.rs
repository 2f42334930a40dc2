//! `gptrt train-head`: a linear classification head on the frozen model's pooled features,
//! multinomial logistic regression (linfa-logistic, L2) with early stopping on a validation split.

use std::path::PathBuf;

use clap::Args;
use gptrt::tasks::{LinearHead, FEATURE_BATCH};
use gptrt::{Model, Pooling};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2, Axis};
use serde_json::json;

use crate::args::{ModelArgs, RuntimeArgs};
use crate::labelled::{self, Example};

#[derive(Args)]
pub(crate) struct TrainHeadArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) runtime: RuntimeArgs,
    /// Training examples: JSON lines `{"text": ..., "label": ...}`.
    #[arg(long, value_name = "FILE")]
    pub(crate) data: PathBuf,
    /// Validation examples (same format). Without it, --valid-fraction of --data is held out.
    #[arg(long, value_name = "FILE")]
    pub(crate) valid: Option<PathBuf>,
    /// Share of --data held out for validation when --valid is absent.
    #[arg(long, default_value_t = 0.15, value_name = "F")]
    pub(crate) valid_fraction: f64,
    /// Where to write head.safetensors and labels.json.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// How a text's hidden states become its features: last or mean.
    #[arg(long, default_value = "mean", value_name = "POOLING")]
    pub(crate) pooling: Pooling,
    /// L2 penalty (linfa-logistic's alpha: the loss is summed over examples) on standardised
    /// features; 100 was best on the fortune-topic validation split with the demo model.
    #[arg(long, default_value_t = 100.0, value_name = "ALPHA")]
    pub(crate) l2: f64,
    /// Seed of the held-out split.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) seed: u64,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// L-BFGS iterations between two looks at the validation loss.
const ROUND: u64 = 10;
/// Rounds without a better validation loss before training stops.
const PATIENCE: usize = 3;
/// Most rounds.
const MAX_ROUNDS: usize = 60;

pub(crate) fn train_head(args: TrainHeadArgs) -> Result<(), String> {
    let runtime = args.runtime.runtime().map_err(|e| e.to_string())?;
    let model = Model::load_with(&runtime, args.model.dir()?).map_err(|e| e.to_string())?;
    let mut train = labelled::read(&args.data, true)?;
    let valid = match &args.valid {
        Some(path) => labelled::read(path, true)?,
        None => hold_out(&mut train, args.valid_fraction, args.seed)?,
    };
    // Sorted, so the same data gives the same head whatever the line order of labels.
    let mut labels: Vec<String> = train.iter().filter_map(|e| e.label.clone()).collect();
    labels.sort();
    labels.dedup();
    gptrt::tasks::check_labels(&labels).map_err(|e| format!("{}: {e}", args.data.display()))?;
    let class_of = |example: &Example, file: &str| -> Result<usize, String> {
        let label = example.label.as_deref().unwrap_or_default();
        labels
            .binary_search_by(|known| known.as_str().cmp(label))
            .map_err(|_| format!("{file}: label `{label}` does not occur in the training data"))
    };
    let valid_name = args
        .valid
        .as_ref()
        .map_or("the held-out split".to_string(), |p| {
            p.display().to_string()
        });
    let train_y: Vec<usize> = train
        .iter()
        .map(|e| class_of(e, &args.data.display().to_string()))
        .collect::<Result<_, _>>()?;
    let valid_y: Vec<usize> = valid
        .iter()
        .map(|e| class_of(e, &valid_name))
        .collect::<Result<_, _>>()?;

    let total = (train.len() + valid.len()) as u64;
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("features {bar:40} {pos}/{len} texts ({per_sec}, eta {eta})")
            .map_err(|e| e.to_string())?,
    );
    let train_x = features(&model, &train, args.pooling, &bar)?;
    let valid_x = features(&model, &valid, args.pooling, &bar)?;
    bar.finish_and_clear();

    // Standardised features (mean 0, std 1 per dimension, from the training split) condition
    // L-BFGS far better than GPT-2's raw hidden states, a few of whose dimensions are huge.
    let mean = train_x.mean_axis(Axis(0)).ok_or("no training examples")?;
    let std = train_x
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 1e-6 { s } else { 1.0 });
    let standardise = |x: &Array2<f64>| (x - &mean) / &std;
    let (train_s, valid_s) = (standardise(&train_x), standardise(&valid_x));
    let dataset = Dataset::new(train_s, Array1::from(train_y.clone()));

    let (hidden, classes) = (model.hidden_size(), labels.len());
    let mut params = Array2::<f64>::zeros((hidden + 1, classes));
    let (mut best, mut best_loss, mut best_round, mut stale) = (None, f64::INFINITY, 0, 0);
    for round in 1..=MAX_ROUNDS {
        let fitted = MultiLogisticRegression::default()
            .alpha(args.l2)
            .max_iterations(ROUND)
            .initial_params(params.clone())
            .fit(&dataset)
            .map_err(|e| format!("training failed: {e}"))?;
        if fitted.classes().len() != classes {
            return Err("every label needs a training example".to_string());
        }
        params
            .slice_mut(ndarray::s![..hidden, ..])
            .assign(fitted.params());
        params.row_mut(hidden).assign(fitted.intercept());
        let probabilities = fitted.predict_probabilities(&valid_s);
        let loss = -valid_y
            .iter()
            .enumerate()
            .map(|(row, &class)| probabilities[[row, class]].max(1e-12).ln())
            .sum::<f64>()
            / valid_y.len() as f64;
        if loss < best_loss - 1e-6 {
            (best, best_loss, best_round, stale) = (Some(params.clone()), loss, round, 0);
        } else {
            stale += 1;
            if stale >= PATIENCE {
                break;
            }
        }
    }
    let best = best.ok_or("training produced no model")?;
    // Fold the standardisation into the weights: the head reads raw features.
    let mut weight = vec![0f32; classes * hidden];
    let mut bias = vec![0f32; classes];
    for class in 0..classes {
        let mut b = best[[hidden, class]];
        for dim in 0..hidden {
            let w = best[[dim, class]] / std[dim];
            weight[class * hidden + dim] = w as f32;
            b -= w * mean[dim];
        }
        bias[class] = b as f32;
    }
    let head = LinearHead::new(&model, labels.clone(), args.pooling, weight, bias)
        .map_err(|e| e.to_string())?;
    head.save(&args.out).map_err(|e| e.to_string())?;

    let predicted: Vec<usize> = valid_x
        .rows()
        .into_iter()
        .map(|row| {
            let logits = head.logits(&row.iter().map(|&v| v as f32).collect::<Vec<_>>());
            argmax(&logits)
        })
        .collect();
    let report = Report::new(&labels, &valid_y, &predicted);
    if args.json {
        say!(
            "{}",
            json!({
                "out": args.out.display().to_string(),
                "labels": labels,
                "train_examples": train.len(),
                "valid_examples": valid.len(),
                "pooling": args.pooling.name(),
                "l2": args.l2,
                "iterations": best_round as u64 * ROUND,
                "valid_loss": best_loss,
                "accuracy": report.accuracy,
                "macro_f1": report.macro_f1,
                "confusion": report.confusion,
            })
        );
    } else {
        say!(
            "head written to {} ({} labels, {} training and {} validation texts, {} pooling, {} L-BFGS iterations)",
            args.out.display(),
            labels.len(),
            train.len(),
            valid.len(),
            args.pooling.name(),
            best_round as u64 * ROUND
        );
        say!(
            "validation: accuracy {:.4}, macro-F1 {:.4}, log-loss {best_loss:.4}",
            report.accuracy,
            report.macro_f1
        );
        say!("confusion matrix (rows: true label, columns: predicted):");
        for (label, row) in labels.iter().zip(&report.confusion) {
            let cells: Vec<String> = row.iter().map(|n| format!("{n:>5}")).collect();
            say!("  {label:>16} {}", cells.join(""));
        }
    }
    Ok(())
}

/// Hold out `fraction` of `train` (at least one example), chosen by a seeded shuffle.
fn hold_out(train: &mut Vec<Example>, fraction: f64, seed: u64) -> Result<Vec<Example>, String> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(format!(
            "--valid-fraction {fraction} is not between 0 and 1"
        ));
    }
    if train.len() < 2 {
        return Err("at least two examples are needed to hold one out for validation".to_string());
    }
    // A fixed generator (splitmix64) written out, not a crate's: the split must stay the same
    // across versions for "same data and seed, same head" to hold.
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..train.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        train.swap(i, j);
    }
    let held = ((train.len() as f64 * fraction).round() as usize).clamp(1, train.len() - 1);
    Ok(train.split_off(train.len() - held))
}

fn features(
    model: &Model,
    examples: &[Example],
    pooling: Pooling,
    bar: &ProgressBar,
) -> Result<Array2<f64>, String> {
    let width = model.hidden_size();
    let mut out = Array2::<f64>::zeros((examples.len(), width));
    for (chunk_index, chunk) in examples.chunks(FEATURE_BATCH * 4).enumerate() {
        let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
        let pooled = model.features(&texts, pooling).map_err(|e| e.to_string())?;
        for (offset, vector) in pooled.iter().enumerate() {
            let row = chunk_index * FEATURE_BATCH * 4 + offset;
            for (dim, value) in vector.iter().enumerate() {
                out[[row, dim]] = f64::from(*value);
            }
        }
        bar.inc(chunk.len() as u64);
    }
    Ok(out)
}

pub(crate) fn argmax(values: &[f64]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

/// Accuracy, macro-F1 and the confusion matrix of predictions.
pub(crate) struct Report {
    pub(crate) accuracy: f64,
    pub(crate) macro_f1: f64,
    /// `[true label][predicted label]` counts.
    pub(crate) confusion: Vec<Vec<usize>>,
}

impl Report {
    pub(crate) fn new(labels: &[String], truth: &[usize], predicted: &[usize]) -> Report {
        let n = labels.len();
        let mut confusion = vec![vec![0usize; n]; n];
        for (&t, &p) in truth.iter().zip(predicted) {
            confusion[t][p] += 1;
        }
        let correct: usize = (0..n).map(|i| confusion[i][i]).sum();
        let f1: Vec<f64> = (0..n)
            .map(|i| {
                let tp = confusion[i][i] as f64;
                let predicted_i: usize = (0..n).map(|t| confusion[t][i]).sum();
                let actual_i: usize = confusion[i].iter().sum();
                if predicted_i + actual_i == 0 {
                    0.0
                } else {
                    2.0 * tp / (predicted_i + actual_i) as f64
                }
            })
            .collect();
        Report {
            accuracy: correct as f64 / truth.len().max(1) as f64,
            macro_f1: f1.iter().sum::<f64>() / n.max(1) as f64,
            confusion,
        }
    }
}
