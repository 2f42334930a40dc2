//! Soak: thousands of short generations, each in a session created and freed, driven through the
//! poll API, half of them batched, and every fourth a dialogue saved (with or without its KV
//! cache) and restored into a new session that runs one more turn; the resident set
//! (`/proc/self/statm`) must not grow with them.
//! The suite runs a short soak; `scripts/soak.sh` runs the long one (the ignored test), with
//! `GPTRT_SOAK_GENERATIONS` generations (default 3,000).

mod common;

use std::sync::Arc;

use gptrt::{Batcher, GenerationConfig, Model, SavedKv, Session, SessionState};

/// Resident bytes of this process.
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("resident pages");
    pages * 4096
}

fn generate(session: &Session, i: usize) {
    let config = GenerationConfig {
        max_new_tokens: Some(4),
        do_sample: i.is_multiple_of(2),
        seed: Some(i as u64),
        ..Default::default()
    };
    session.start("Once upon a time", &config).expect("start");
    let mut text = String::new();
    let mut ids = Vec::new();
    loop {
        let state = session.poll(&mut text);
        session.poll_tokens(&mut ids);
        if state != SessionState::Running {
            break;
        }
        std::thread::yield_now();
    }
    let generation = session.result().expect("result");
    assert_eq!(generation.token_ids.len(), 4);
}

/// One turn on the session's sequence through the poll API; its new tokens.
fn turn(session: &Session) -> usize {
    let config = GenerationConfig {
        max_new_tokens: Some(4),
        ..Default::default()
    };
    session.start_turn(&config).expect("start turn");
    let mut text = String::new();
    while session.poll(&mut text) == SessionState::Running {
        std::thread::yield_now();
    }
    session.wait().expect("turn");
    session.result().expect("result").token_ids.len()
}

/// A dialogue turn, saved (no cache, fp16 or fp32 cache, by `i`) with the caller's data, the
/// session freed; a new session restores it and runs one more turn, then is freed too.
fn save_restore(model: &Arc<Model>, batcher: &Batcher, i: usize) {
    let new_session = || {
        if i.is_multiple_of(2) {
            Session::new(model.clone()).unwrap()
        } else {
            Session::new_batched(batcher)
        }
    };
    let session = new_session();
    session.append_text("User: Hello\nBot:").unwrap();
    assert_eq!(turn(&session), 4);
    let kv = [SavedKv::None, SavedKv::F16, SavedKv::F32][i % 3];
    let bytes = session.save_with_data(kv, b"turns: [5]").unwrap();
    let saved_len = session.context_len().unwrap();
    drop(session);
    let restored = new_session();
    assert_eq!(restored.restore_with_data(&bytes).unwrap(), b"turns: [5]");
    restored.append_text("\nUser: again\nBot:").unwrap();
    assert_eq!(turn(&restored), 4);
    assert!(restored.context_len().unwrap() > saved_len + 4);
}

/// Runs `generations` short generations after a warm-up; returns the resident set before and
/// after, and fails when it grew by more than `bound` bytes.
fn soak(generations: usize, bound: usize) -> (usize, usize) {
    let model = Arc::new(common::load("single"));
    let batcher = Batcher::new(model.clone()).unwrap();
    let session = |i: usize| {
        if i.is_multiple_of(2) {
            Session::new(model.clone()).unwrap()
        } else {
            Session::new_batched(&batcher)
        }
    };
    let step = |i: usize| {
        if i % 4 == 3 {
            save_restore(&model, &batcher, i / 4);
        } else {
            generate(&session(i), i);
        }
    };
    // Warm-up: ONNX Runtime's arenas, the allocator's pools and thread stacks reach their size.
    for i in 0..100 {
        step(i);
    }
    let start = rss_bytes();
    for i in 0..generations {
        step(i);
    }
    let end = rss_bytes();
    eprintln!(
        "soak: {generations} generations ({} of them save/restore cycles), RSS {} KB -> {} KB ({:+} KB)",
        generations / 4,
        start / 1024,
        end / 1024,
        (end as i64 - start as i64) / 1024
    );
    assert!(
        end <= start + bound,
        "RSS grew from {start} to {end} bytes over {generations} generations (bound {bound})"
    );
    (start, end)
}

#[test]
fn short_soak_does_not_grow_the_resident_set() {
    soak(300, 8 << 20);
}

#[test]
#[ignore = "long: run by scripts/soak.sh"]
fn long_soak_does_not_grow_the_resident_set() {
    let generations = std::env::var("GPTRT_SOAK_GENERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    soak(generations, 8 << 20);
}
