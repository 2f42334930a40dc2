//! The machine's memory read bandwidth: THREADS threads each sum their share of a 1 GiB buffer
//! (far larger than any cache), best of five passes. Single-stream decode of a model whose weights
//! do not fit in cache reads every weight once per token, so this / weight bytes is the ceiling on
//! its tokens per second. `benchmarks/compare.py` runs it in every round.
//!
//! ```text
//! cargo run --release -p gptrt --example memory_bandwidth -- [THREADS]
//! ```
//!
//! Prints one JSON line: `{"threads": N, "bytes": B, "gb_per_second": X}`.

use std::time::Instant;

fn main() -> Result<(), String> {
    let threads = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse::<usize>()
            .map_err(|e| format!("THREADS `{arg}`: {e}"))?
            .max(1),
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let words = (1usize << 30) / 8;
    // Distinct values, so no page is shared and nothing can be folded away.
    let buffer: Vec<u64> = (0..words as u64).collect();
    let chunk = words.div_ceil(threads);
    let mut best = 0.0f64;
    let mut checksum = 0u64;
    for _ in 0..5 {
        let started = Instant::now();
        let total: u64 = std::thread::scope(|scope| {
            let handles: Vec<_> = buffer
                .chunks(chunk)
                .map(|part| scope.spawn(move || sum(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0))
                .fold(0u64, u64::wrapping_add)
        });
        let seconds = started.elapsed().as_secs_f64();
        best = best.max((words * 8) as f64 / seconds / 1e9);
        checksum = checksum.wrapping_add(total);
    }
    println!(
        "{{\"threads\": {threads}, \"bytes\": {}, \"gb_per_second\": {best:.2}, \"checksum\": {checksum}}}",
        words * 8
    );
    Ok(())
}

/// Eight independent accumulators keep several loads in flight, so memory, not the adder chain,
/// is the limit.
fn sum(words: &[u64]) -> u64 {
    let mut lanes = [0u64; 8];
    let mut blocks = words.chunks_exact(8);
    for block in &mut blocks {
        for (lane, &word) in lanes.iter_mut().zip(block) {
            *lane = lane.wrapping_add(word);
        }
    }
    let tail = blocks
        .remainder()
        .iter()
        .fold(0u64, |a, &w| a.wrapping_add(w));
    lanes.iter().fold(tail, |a, &l| a.wrapping_add(l))
}
