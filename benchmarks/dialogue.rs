//! Dialogue sessions against the targets of issue 17: time to first token after a long history
//! vs a short one (same new-token count), forking a persona vs prefilling it, 8 NPCs from one
//! persona vs 8 prefills, saved-state bytes per token (without KV, fp16 KV), restoring with KV vs
//! running the same tokens again.
//!
//!     cargo run --release -p gptrt --example dialogue -- [MODEL_DIR] [ROUNDS]
//!
//! MODEL_DIR defaults to models/demo (256 positions: the long history is 200 tokens there; with a
//! 1024-position model such as gpt2-small it is 800). Prints one JSON object; times are medians
//! in milliseconds.

use std::sync::Arc;
use std::time::Instant;

use gptrt::{GenerationConfig, Model, SavedKv, Session};

/// Tokens each measured turn appends (a user line and the tags).
const NEW_TOKENS: usize = 16;
const SHORT_HISTORY: usize = 32;
const PERSONA_TOKENS: usize = 200;
const NPCS: usize = 8;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn main() -> gptrt::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model_dir = args.get(1).map_or(repo.join("models/demo"), Into::into);
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(10);
    let model = Arc::new(Model::load(&model_dir)?);
    let heldout = repo.join("models/demo/heldout.txt");
    let text = std::fs::read_to_string(&heldout).map_err(|source| gptrt::Error::Io {
        path: heldout.clone(),
        source,
    })?;
    // The held-out text, repeated as needed: the timings depend on the count of tokens only.
    let once = model.tokenizer().encode(&text)?;
    let corpus: Vec<u32> = once.iter().copied().cycle().take(2048).collect();
    let window = model.config().n_positions;
    let long_history = if window >= 1024 { 800 } else { window - 56 };
    let one_token = GenerationConfig {
        max_new_tokens: Some(1),
        ..Default::default()
    };

    // Time to first token of a turn: history in the cache, NEW_TOKENS appended, one token out.
    // The short and long histories take turns, so a busy machine slows both alike.
    let ready = |history: usize| -> gptrt::Result<Session> {
        let session = Session::new(model.clone())?;
        session.append_tokens(&corpus[..history])?;
        session.prefill()?;
        Ok(session)
    };
    let turn = |session: &Session, history: usize| -> gptrt::Result<f64> {
        session.rewind(history)?;
        session.append_tokens(&corpus[history..history + NEW_TOKENS])?;
        let start = Instant::now();
        session.generate_turn(&one_token, &mut |_| true)?;
        Ok(ms(start))
    };
    let (short, long) = (ready(SHORT_HISTORY)?, ready(long_history)?);
    turn(&short, SHORT_HISTORY)?;
    turn(&long, long_history)?;
    let (mut short_samples, mut long_samples) = (Vec::new(), Vec::new());
    for _ in 0..rounds * 2 {
        short_samples.push(turn(&short, SHORT_HISTORY)?);
        long_samples.push(turn(&long, long_history)?);
    }
    let (ttft_short, ttft_long) = (median(short_samples), median(long_samples));
    drop((short, long));

    // A persona: prefilled, or forked from a session that holds it.
    let persona = &corpus[..PERSONA_TOKENS.min(window - 8)];
    let prefill = || -> gptrt::Result<f64> {
        let session = Session::new(model.clone())?;
        session.append_tokens(persona)?;
        let start = Instant::now();
        session.prefill()?;
        Ok(ms(start))
    };
    prefill()?;
    let prefill_ms = median(
        (0..rounds)
            .map(|_| prefill())
            .collect::<gptrt::Result<_>>()?,
    );
    let source = Session::new(model.clone())?;
    source.append_tokens(persona)?;
    source.prefill()?;
    let fork_ms = median(
        (0..rounds)
            .map(|_| {
                let start = Instant::now();
                let fork = source.fork()?;
                let elapsed = ms(start);
                drop(fork);
                Ok(elapsed)
            })
            .collect::<gptrt::Result<_>>()?,
    );
    // Forking without the session's worker thread start: the cache copy alone is what a fork
    // costs on top of making a session (which hosts do while loading).
    let new_session_ms = median(
        (0..rounds)
            .map(|_| {
                let start = Instant::now();
                let session = Session::new(model.clone())?;
                let elapsed = ms(start);
                drop(session);
                Ok(elapsed)
            })
            .collect::<gptrt::Result<_>>()?,
    );

    // 8 NPCs: one prefill and 8 forks, against 8 prefills.
    let start = Instant::now();
    let base = Session::new(model.clone())?;
    base.append_tokens(persona)?;
    base.prefill()?;
    let forked: Vec<Session> = (0..NPCS)
        .map(|_| base.fork())
        .collect::<gptrt::Result<_>>()?;
    let npcs_forked_ms = ms(start);
    drop(forked);
    let start = Instant::now();
    let separate: Vec<Session> = (0..NPCS)
        .map(|_| {
            let session = Session::new(model.clone())?;
            session.append_tokens(persona)?;
            session.prefill()?;
            Ok(session)
        })
        .collect::<gptrt::Result<_>>()?;
    let npcs_prefilled_ms = ms(start);
    drop(separate);

    // Saved-state sizes and restore time, for a long dialogue.
    let dialogue = Session::new(model.clone())?;
    dialogue.append_tokens(&corpus[..long_history])?;
    dialogue.prefill()?;
    let plain = dialogue.save(SavedKv::None)?;
    let half = dialogue.save(SavedKv::F16)?;
    let full = dialogue.save(SavedKv::F32)?;
    let empty = Session::new(model.clone())?.save(SavedKv::None)?.len();
    let c = model.config();
    let minimum = 2 * c.n_layer * c.n_embd * 2;
    let restore = |bytes: &[u8]| -> gptrt::Result<f64> {
        let target = Session::new(model.clone())?;
        let mut samples = Vec::new();
        for _ in 0..rounds {
            let start = Instant::now();
            target.restore(bytes)?;
            samples.push(ms(start));
        }
        Ok(median(samples))
    };
    let rerun = || -> gptrt::Result<f64> {
        let mut samples = Vec::new();
        for _ in 0..rounds {
            let session = Session::new(model.clone())?;
            session.append_tokens(&corpus[..long_history])?;
            let start = Instant::now();
            session.prefill()?;
            samples.push(ms(start));
        }
        Ok(median(samples))
    };
    let restore_f16_ms = restore(&half)?;
    let restore_f32_ms = restore(&full)?;
    let restore_plain_ms = restore(&plain)?;
    let rerun_ms = rerun()?;

    let report = serde_json::json!({
        "model": model_dir.display().to_string(),
        "layout": model.layout().name(),
        "n_positions": window,
        "rounds": rounds,
        "ttft": {
            "new_tokens": NEW_TOKENS,
            "short_history_tokens": SHORT_HISTORY,
            "long_history_tokens": long_history,
            "short_ms": ttft_short,
            "long_ms": ttft_long,
            "ratio_long_to_short": ttft_long / ttft_short,
        },
        "fork": {
            "persona_tokens": persona.len(),
            "prefill_ms": prefill_ms,
            "fork_ms": fork_ms,
            "new_session_ms": new_session_ms,
            "fork_share_of_prefill": fork_ms / prefill_ms,
            "npcs": NPCS,
            "npcs_one_prefill_and_forks_ms": npcs_forked_ms,
            "npcs_separate_prefills_ms": npcs_prefilled_ms,
        },
        "saved_state": {
            "tokens": long_history,
            "empty_session_bytes": empty,
            "without_kv_bytes": plain.len(),
            "without_kv_bytes_per_token": (plain.len() - empty) as f64 / long_history as f64,
            "fp16_kv_bytes": half.len(),
            "fp16_kv_bytes_per_token": (half.len() - empty) as f64 / long_history as f64,
            "fp16_physical_minimum_per_token": minimum,
            "fp16_ratio_to_minimum": (half.len() - empty) as f64 / (long_history * minimum) as f64,
            "fp32_kv_bytes": full.len(),
        },
        "restore": {
            "tokens": long_history,
            "restore_fp16_kv_ms": restore_f16_ms,
            "restore_fp32_kv_ms": restore_f32_ms,
            "restore_without_kv_ms": restore_plain_ms,
            "rerun_prefill_ms": rerun_ms,
            "restore_fp16_share_of_rerun": restore_f16_ms / rerun_ms,
            "restore_fp32_share_of_rerun": restore_f32_ms / rerun_ms,
        },
    });
    println!("{report:#}");
    Ok(())
}
