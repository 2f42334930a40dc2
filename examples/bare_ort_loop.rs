//! The floor under gptrt: a bare `ort` greedy loop with a KV cache on a `single`-layout GPT-2
//! graph, no tokenizer, no sampler chain, no gptrt. `benchmarks/compare.py` runs it next to
//! `gptrt bench` on the same graph to measure the SDK's overhead.
//!
//! ```text
//! cargo run --release -p gptrt --example bare_ort_loop -- MODEL_DIR [PROMPT_TOKENS] [NEW_TOKENS] [THREADS] [RUNS]
//! ```
//!
//! The ONNX Runtime library comes from `$ORT_DYLIB_PATH`, else `.ort/` (scripts/setup.sh). After one
//! untimed warm-up run, RUNS (default 3) timed runs; prints one JSON line with the median prefill
//! and decode tokens per second, as `gptrt bench` does.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorRef};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        return Err(
            "usage: bare_ort_loop MODEL_DIR [PROMPT_TOKENS] [NEW_TOKENS] [THREADS] [RUNS]".into(),
        );
    };
    let number = |i: usize, default: usize| -> Result<usize> {
        args.get(i).map_or(Ok(default), |s| {
            s.parse()
                .map_err(|e| format!("argument {i} `{s}`: {e}").into())
        })
    };
    let (prompt_tokens, new_tokens, runs) = (number(1, 4)?, number(2, 128)?, number(4, 3)?.max(1));
    if new_tokens < 2 {
        return Err("NEW_TOKENS must be at least 2 (one prefill step, then decode)".into());
    }
    let threads = match number(3, 0)? {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let field = |name: &str| -> Result<usize> {
        config[name]
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| format!("config.json: `{name}` missing").into())
    };
    let (layers, heads, embd) = (field("n_layer")?, field("n_head")?, field("n_embd")?);

    let library = std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .or_else(|| ort_in(Path::new(".ort")))
        .ok_or("no ONNX Runtime: set ORT_DYLIB_PATH or run scripts/setup.sh")?;
    let environment = ort::init_from(&library)?.with_name("bare").build()?;
    let mut session = Session::builder(&environment)?
        .with_optimization_level(GraphOptimizationLevel::All)?
        .with_intra_threads(threads)?
        .commit_from_file(dir.join("model.onnx"))?;

    // Token ids are arbitrary: speed does not depend on them.
    let prompt: Vec<i64> = (0..prompt_tokens as i64).map(|i| 464 + i).collect();
    // models/export_fused.py's optional input; gptrt feeds it too
    let last_logits_only = session
        .overridable_initializers()
        .iter()
        .any(|initializer| initializer.name() == "logits_to_keep");
    let shape = Shape {
        layers,
        heads,
        embd,
        last_logits_only,
    };
    greedy(&mut session, &prompt, new_tokens, &shape)?;
    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (p, d) = greedy(&mut session, &prompt, new_tokens, &shape)?;
        prefill.push(p);
        decode.push(d);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{}",
        serde_json::json!({
            "prompt_tokens": prompt_tokens,
            "new_tokens": new_tokens,
            "threads": threads,
            "runs": runs,
            "prompt_tokens_per_second_median": median(prefill),
            "decode_tokens_per_second_median": median(decode),
        })
    );
    Ok(())
}

fn ort_in(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
}

/// What the loop feeds the graph.
struct Shape {
    layers: usize,
    heads: usize,
    embd: usize,
    /// Feed `logits_to_keep` = 1.
    last_logits_only: bool,
}

/// One greedy generation; returns (prefill, decode) tokens per second.
fn greedy(
    session: &mut Session,
    prompt: &[i64],
    new_tokens: usize,
    shape: &Shape,
) -> Result<(f64, f64)> {
    let Shape {
        layers,
        heads,
        embd,
        last_logits_only,
    } = *shape;
    let head_dim = embd / heads;
    let mut past: Vec<DynValue> = Vec::new();
    let mut ids = prompt.to_vec();
    let mut mask: Vec<i64> = vec![1; prompt.len()];
    let (mut prefill_seconds, started) = (0.0, Instant::now());
    for step in 0..new_tokens {
        let fed = if step == 0 {
            &ids[..]
        } else {
            &ids[ids.len() - 1..]
        };
        let first = mask.len() - fed.len();
        let positions: Vec<i64> = (first as i64..mask.len() as i64).collect();
        let mut inputs: Vec<(String, SessionInputValue<'_>)> = vec![
            (
                "input_ids".into(),
                TensorRef::from_array_view(([1, fed.len()], fed))?.into(),
            ),
            (
                "attention_mask".into(),
                TensorRef::from_array_view(([1, mask.len()], &mask[..]))?.into(),
            ),
            (
                "position_ids".into(),
                Tensor::from_array(([1, fed.len()], positions))?.into(),
            ),
        ];
        if last_logits_only {
            inputs.push((
                "logits_to_keep".into(),
                Tensor::from_array(([0usize; 0], vec![1i64]))?.into(),
            ));
        }
        for slot in 0..layers * 2 {
            let name = format!(
                "past_key_values.{}.{}",
                slot / 2,
                if slot % 2 == 0 { "key" } else { "value" }
            );
            let value: SessionInputValue<'_> = match past.get(slot) {
                Some(value) => value.into(),
                None => Tensor::from_array(([1, heads, 0, head_dim], Vec::<f32>::new()))?.into(),
            };
            inputs.push((name, value));
        }
        let mut outputs = session.run(inputs)?;
        let (shape, logits) = outputs["logits"].try_extract_tensor::<f32>()?;
        let vocab = shape[2] as usize;
        let last = &logits[logits.len() - vocab..];
        let next = (0..vocab).fold(0, |b, i| if last[i] > last[b] { i } else { b });
        let mut presents = Vec::with_capacity(layers * 2);
        for slot in 0..layers * 2 {
            let name = format!(
                "present.{}.{}",
                slot / 2,
                if slot % 2 == 0 { "key" } else { "value" }
            );
            presents.push(
                outputs
                    .remove(&name)
                    .ok_or(format!("output `{name}` missing"))?,
            );
        }
        past = presents;
        ids.push(next as i64);
        mask.push(1);
        if step == 0 {
            prefill_seconds = started.elapsed().as_secs_f64();
        }
    }
    let decode_seconds = started.elapsed().as_secs_f64() - prefill_seconds;
    Ok((
        prompt.len() as f64 / prefill_seconds,
        (new_tokens - 1) as f64 / decode_seconds,
    ))
}
