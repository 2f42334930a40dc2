//! Four NPCs talking at once from one frame loop, in Rust, without the C API: each NPC is a
//! `gptrt::Session` on one shared `gptrt::Batcher` (one forward pass per step for all of them);
//! the loop polls them every frame (never waiting for a forward pass) and cancels one halfway.
//!
//! ```text
//! cargo run --release -p gptrt --example sessions -- models/fixtures/tiny-random-gpt2/single
//! cargo run --release -p gptrt --example sessions -- models/demo
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use gptrt::{Batcher, GenerationConfig, Model, Session, SessionState};

fn main() -> Result<(), gptrt::Error> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "models/fixtures/tiny-random-gpt2/single".to_string());
    let model = Arc::new(Model::load(&dir)?);
    let batcher = Batcher::new(model.clone())?;
    let config = GenerationConfig {
        max_new_tokens: Some(24),
        ..model.generation_config().clone()
    };
    let lines = [
        "The blacksmith said:",
        "The guard said:",
        "The innkeeper said:",
        "The merchant said:",
    ];
    let npcs: Vec<Session> = lines
        .iter()
        .map(|_| Session::new_batched(&batcher))
        .collect();
    for (npc, line) in npcs.iter().zip(lines) {
        npc.start(line, &config)?;
    }
    let mut said = vec![String::new(); npcs.len()];
    let mut done = vec![false; npcs.len()];
    let began = Instant::now();
    let mut frames = 0u32;
    while done.iter().any(|d| !d) {
        frames += 1;
        for (i, npc) in npcs.iter().enumerate() {
            if !done[i] && npc.poll(&mut said[i]) != SessionState::Running {
                done[i] = true;
            }
        }
        // The guard is interrupted once it has said a few words.
        if !done[1] && said[1].split_whitespace().count() >= 4 {
            npcs[1].cancel();
        }
        std::thread::sleep(Duration::from_millis(16)); // the rest of the frame
    }
    for (npc, line) in npcs.iter().zip(lines) {
        let result = npc.result()?;
        println!("{line}{}  [{}]", result.text, result.stop_reason);
    }
    let stats = batcher.stats();
    println!(
        "{frames} frames in {:.2} s; {} tokens in {} forward passes ({:.1} rows per pass)",
        began.elapsed().as_secs_f64(),
        stats.tokens,
        stats.forward_passes,
        stats.mean_rows_per_pass()
    );
    Ok(())
}
