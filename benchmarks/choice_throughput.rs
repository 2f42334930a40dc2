//! Multiple choice throughput: 4 choices after a 200-token context, scored the way the 1.0 choice
//! head did (one full forward pass per choice) and the way `plugins/choice` does now (the context
//! once, every choice continuing from its KV cache in one batched pass), through the plugin host.
//!
//!     cargo build --release -p gptrt-plugin-choice
//!     cargo run --release -p gptrt --example choice_throughput -- [MODEL_DIR] [ROUNDS]
//!
//! Prints one JSON object: choices per second for both, and their ratio.

use std::time::Instant;

use gptrt::{Model, PluginHost};

const CHOICES: [&str; 4] = [" yes", " no", " not at all", " I do not know"];
const CONTEXT_TOKENS: usize = 200;

fn main() -> gptrt::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model_dir = args.get(1).map_or(repo.join("models/demo"), Into::into);
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(20);
    let model = std::sync::Arc::new(Model::load(&model_dir)?);
    let text = std::fs::read_to_string(repo.join("models/demo/heldout.txt")).map_err(|source| {
        gptrt::Error::Io {
            path: repo.join("models/demo/heldout.txt"),
            source,
        }
    })?;
    let tokenizer = model.tokenizer();
    let mut context = vec![model.config().bos_token_id];
    context.extend(
        tokenizer
            .encode(&text)?
            .into_iter()
            .take(CONTEXT_TOKENS - 1),
    );
    let prompt = tokenizer.decode(&context[1..], false)?;
    let choices: Vec<Vec<u32>> = CHOICES
        .iter()
        .map(|c| tokenizer.encode(c))
        .collect::<gptrt::Result<_>>()?;

    let library = repo.join("target/release/libgptrt_plugin_choice.so");
    let mut host = PluginHost::new();
    host.load(&library)?;
    let mut head = host.task_head("org.gptrt.choice", None, model.clone())?;
    let input = serde_json::json!({"prompt": prompt, "choices": CHOICES}).to_string();

    let per_choice = || -> gptrt::Result<f64> {
        let start = Instant::now();
        for _ in 0..rounds {
            for choice in &choices {
                std::hint::black_box(model.score(&context, choice)?);
            }
        }
        Ok((rounds * CHOICES.len()) as f64 / start.elapsed().as_secs_f64())
    };
    let mut shared_head = || -> gptrt::Result<f64> {
        let start = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(head.run(&input)?);
        }
        Ok((rounds * CHOICES.len()) as f64 / start.elapsed().as_secs_f64())
    };
    // Warm up both, then alternate so the machine's drift hits both alike.
    per_choice()?;
    shared_head()?;
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        before.push(per_choice()?);
        after.push(shared_head()?);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (before, after) = (median(&mut before), median(&mut after));
    println!(
        "{}",
        serde_json::json!({
            "model": model_dir.display().to_string(),
            "context_tokens": context.len(),
            "choices": CHOICES.len(),
            "choices_per_second_one_pass_per_choice": before,
            "choices_per_second_shared_context_plugin": after,
            "speedup": after / before,
        })
    );
    Ok(())
}
