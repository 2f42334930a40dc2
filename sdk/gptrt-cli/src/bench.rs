//! `gptrt bench`.

use clap::Args;
use gptrt::{GenerationConfig, Model};
use serde_json::json;

use crate::args::{ModelArgs, RuntimeArgs};

#[derive(Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) runtime: RuntimeArgs,
    /// Prompt text (its token count is the prompt length, unless --prompt-tokens is given).
    #[arg(long, default_value = "Once upon a time")]
    pub(crate) prompt: String,
    /// Prompt length in tokens: the prompt's tokens repeated (or cut) to exactly N.
    #[arg(long, value_name = "N")]
    pub(crate) prompt_tokens: Option<usize>,
    /// Tokens to decode per run.
    #[arg(long, default_value_t = 128, value_name = "N")]
    pub(crate) new_tokens: usize,
    /// Timed runs after one untimed warm-up run; the best and the median are reported.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub(crate) runs: usize,
    /// Sequences decoded together in one batch (aggregate tokens/s is reported).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) batch: usize,
    /// Decode with the full sampling chain (temperature 0.8, top-k 40, top-p 0.95, repetition
    /// penalty 1.2, seeded draw) instead of greedy, and report its share of each decode step.
    #[arg(long)]
    pub(crate) sample: bool,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn bench(args: BenchArgs) -> Result<(), String> {
    if args.runs == 0 {
        return Err("--runs must be at least 1".to_string());
    }
    if args.batch == 0 {
        return Err("--batch must be at least 1".to_string());
    }
    let runtime = args.runtime.runtime().map_err(|e| e.to_string())?;
    let began = std::time::Instant::now();
    let model = Model::load_with(&runtime, args.model.dir()?).map_err(|e| e.to_string())?;
    let load_seconds = began.elapsed().as_secs_f64();
    let config = GenerationConfig {
        max_new_tokens: Some(args.new_tokens),
        // No end token: every run decodes exactly --new-tokens tokens.
        eos_token_id: Some(gptrt::TokenIds::Many(Vec::new())),
        do_sample: args.sample,
        temperature: if args.sample { 0.8 } else { 1.0 },
        top_k: if args.sample { 40 } else { 50 },
        top_p: if args.sample { 0.95 } else { 1.0 },
        repetition_penalty: if args.sample { 1.2 } else { 1.0 },
        seed: Some(0),
        ..GenerationConfig::default()
    };
    let mut prompt_ids = model
        .tokenizer()
        .encode(&args.prompt)
        .map_err(|e| e.to_string())?;
    if let Some(length) = args.prompt_tokens {
        if length == 0 || prompt_ids.is_empty() {
            return Err("--prompt-tokens needs N >= 1 and a non-empty --prompt".to_string());
        }
        prompt_ids = prompt_ids.iter().copied().cycle().take(length).collect();
    }
    let context = model.config().n_positions;
    if prompt_ids.len() + args.new_tokens > context {
        return Err(format!(
            "prompt ({} tokens) + --new-tokens ({}) exceed the model's context window ({context} tokens)",
            prompt_ids.len(),
            args.new_tokens
        ));
    }
    let mut runs = Vec::with_capacity(args.runs);
    let mut first_token_seconds = Vec::with_capacity(args.runs);
    for run in 0..=args.runs {
        let started = std::time::Instant::now();
        let mut first_token = None;
        let mut out = model
            .generate_ids(vec![prompt_ids.clone(); args.batch], &config, &mut |_| {
                first_token.get_or_insert_with(|| started.elapsed().as_secs_f64());
                true
            })
            .map_err(|e| e.to_string())?;
        if out.len() != args.batch {
            return Err(format!(
                "asked for {} sequences, got {}",
                args.batch,
                out.len()
            ));
        }
        if run > 0 {
            runs.push(out.swap_remove(0));
            first_token_seconds.push(first_token.unwrap_or(f64::NAN));
        }
    }
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let decode = sorted(
        runs.iter()
            .map(|r| r.stats.decode_tokens_per_second())
            .collect(),
    );
    let prompt = sorted(
        runs.iter()
            .map(|r| r.stats.prompt_tokens_per_second())
            .collect(),
    );
    let first_token_ms = sorted(first_token_seconds.iter().map(|s| s * 1e3).collect());
    let sampling_ms: Vec<f64> = runs
        .iter()
        .map(|r| 1e3 * r.stats.sampling_seconds / (r.token_ids.len() * args.batch).max(1) as f64)
        .collect();
    let chain_share = runs
        .iter()
        .map(|r| r.stats.sampling_seconds / (r.stats.decode_seconds + r.stats.prompt_seconds))
        .fold(0.0f64, f64::max);
    let median = |v: &[f64]| v[v.len() / 2];
    let best = |v: &[f64]| v[v.len() - 1];
    let peak_rss = peak_rss_bytes();
    let first = &runs[0];
    if args.json {
        let output = json!({
            "model": model.dir().display().to_string(),
            "layout": model.layout().name(),
            "provider": model.provider(),
            "threads": args.runtime.threads,
            "batch": args.batch,
            "prompt_tokens": first.prompt_token_ids.len(),
            "new_tokens": first.token_ids.len(),
            "runs": args.runs,
            "load_seconds": load_seconds,
            "peak_rss_bytes": peak_rss,
            "time_to_first_token_ms_median": median(&first_token_ms),
            "time_to_first_token_ms_best": first_token_ms[0],
            "prompt_tokens_per_second_best": best(&prompt),
            "prompt_tokens_per_second_median": median(&prompt),
            "decode_tokens_per_second_best": best(&decode),
            "decode_tokens_per_second_median": median(&decode),
            "chain": if args.sample { "temperature+top_k+top_p+repetition_penalty+dist" } else { "greedy" },
            "chain_ms_per_token": sampling_ms.iter().copied().fold(0.0f64, f64::max),
            "chain_share_of_step_worst": chain_share,
        });
        say!("{output}");
    } else {
        say!(
            "{} ({} layout, {}): batch {}, prompt {} tokens, {} new tokens, {} runs",
            model.dir().display(),
            model.layout(),
            model.provider(),
            args.batch,
            first.prompt_token_ids.len(),
            first.token_ids.len(),
            args.runs
        );
        say!(
            "  load: {load_seconds:.2} s, peak RSS: {}",
            peak_rss.map_or("unknown".to_string(), |b| format!(
                "{:.0} MB",
                b as f64 / 1e6
            ))
        );
        say!(
            "  time to first token: median {:.1} ms, best {:.1} ms",
            median(&first_token_ms),
            first_token_ms[0]
        );
        say!(
            "  prompt: best {:.1} tok/s, median {:.1} tok/s",
            best(&prompt),
            median(&prompt)
        );
        say!(
            "  decode: best {:.1} tok/s, median {:.1} tok/s{}",
            best(&decode),
            median(&decode),
            if args.batch > 1 { " (all rows)" } else { "" }
        );
        say!(
            "  chain ({}): worst {:.3} ms per token, {:.2}% of a step",
            if args.sample {
                "temperature + top-k + top-p + repetition penalty + draw"
            } else {
                "greedy"
            },
            sampling_ms.iter().copied().fold(0.0f64, f64::max),
            100.0 * chain_share
        );
    }
    Ok(())
}

/// The process's peak resident set size (Linux `VmHWM`); `None` where the OS does not say.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
