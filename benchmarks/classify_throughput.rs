//! Classification throughput with the demo model: texts of exactly 64 tokens classified by a
//! trained head (features in batches of 32, `Model::features`), and zero-shot over 5 labels
//! (the text once, every label from its KV cache) against one forward pass over the text.
//!
//!     cargo run --release -p gptrt --example classify_throughput -- [MODEL_DIR] [TEXTS]
//!
//! Prints one JSON object. The head is random (its weights do not change the cost).

use std::time::Instant;

use gptrt::tasks::{LinearHead, ZeroShot, ZeroShotOptions};
use gptrt::{Model, Pooling};

const TEXT_TOKENS: usize = 64;
const LABELS: [&str; 5] = ["computers", "food", "law", "politics", "science"];

fn main() -> gptrt::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model_dir = args.get(1).map_or(repo.join("models/demo"), Into::into);
    let count: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(320);
    let model = Model::load(&model_dir)?;
    let source = repo.join("benchmarks/data/topics/train.jsonl");
    let lines = std::fs::read_to_string(&source).map_err(|e| gptrt::Error::Io {
        path: source.clone(),
        source: e,
    })?;
    // Every text exactly 64 tokens: the training texts' tokens, back to back, cut into windows.
    let tokenizer = model.tokenizer();
    let mut stream = Vec::new();
    for line in lines.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        stream.extend(tokenizer.encode(value["text"].as_str().unwrap_or_default())?);
    }
    let windows: Vec<Vec<u32>> = stream
        .chunks_exact(TEXT_TOKENS)
        .cycle()
        .take(count)
        .map(<[u32]>::to_vec)
        .collect();

    let hidden = model.hidden_size();
    let labels: Vec<String> = LABELS.iter().map(|l| l.to_string()).collect();
    let weight: Vec<f32> = (0..labels.len() * hidden)
        .map(|i| (i % 13) as f32 / 100.0)
        .collect();
    let head = LinearHead::new(
        &model,
        labels.clone(),
        Pooling::Mean,
        weight,
        vec![0.0; labels.len()],
    )?;
    model.features_of_ids(&windows[..32.min(windows.len())], Pooling::Mean)?; // warm-up
    let started = Instant::now();
    let features = model.features_of_ids(&windows, Pooling::Mean)?;
    let scored: usize = features.iter().map(|f| head.logits(f).len()).sum();
    let head_seconds = started.elapsed().as_secs_f64();
    assert_eq!(scored, windows.len() * labels.len());

    // Zero-shot against one plain forward pass over the same text, one text at a time.
    let texts: Vec<String> = windows
        .iter()
        .take(40)
        .map(|ids| tokenizer.decode(ids, false))
        .collect::<gptrt::Result<_>>()?;
    let zero_shot = ZeroShot::new(&model, &labels, ZeroShotOptions::default())?;
    zero_shot.classify(&model, &texts[0])?; // warm-up
    let started = Instant::now();
    for text in &texts {
        zero_shot.classify(&model, text)?;
    }
    let zero_shot_seconds = started.elapsed().as_secs_f64() / texts.len() as f64;
    let started = Instant::now();
    for text in &texts {
        let mut ids = vec![model.config().eos_token_id];
        ids.extend(tokenizer.encode(&format!("{text}{}", ZeroShotOptions::default().template))?);
        model.next_token_logits(&ids)?;
    }
    let forward_seconds = started.elapsed().as_secs_f64() / texts.len() as f64;
    let label_tokens: Vec<usize> = LABELS
        .iter()
        .map(|l| tokenizer.encode(&format!(" {l}")).map(|ids| ids.len()))
        .collect::<gptrt::Result<_>>()?;
    println!(
        "{}",
        serde_json::json!({
            "model": model_dir.display().to_string(),
            "texts": windows.len(),
            "text_tokens": TEXT_TOKENS,
            "batch": gptrt::tasks::FEATURE_BATCH,
            "head_texts_per_second": windows.len() as f64 / head_seconds,
            "zero_shot_labels": LABELS.len(),
            "zero_shot_label_tokens": label_tokens,
            "zero_shot_ms_per_text": zero_shot_seconds * 1e3,
            "one_forward_ms_per_text": forward_seconds * 1e3,
            "zero_shot_cost_vs_one_forward": zero_shot_seconds / forward_seconds,
        })
    );
    Ok(())
}
