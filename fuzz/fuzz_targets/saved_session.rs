//! Saved-session bytes (docs/saved-sessions.md) restored into a session over the tiny fixture
//! model: a clean error or a valid restore, never a panic, an abort, a huge allocation or a hang.
//!
//! The first input byte picks how much of the header the target repairs before restoring, so the
//! fuzzer gets past the checks a random mutation almost never passes and reaches the payload
//! parser behind them:
//! - 0: the bytes as given (the magic, version, length and SHA-256 checks themselves);
//! - 1: the payload length and SHA-256 recomputed over the fuzzed payload;
//! - 2: as 1, and magic, version and the model's fingerprint written in too (only the flags and
//!   the payload stay fuzzed).
//!
//! A state that restores must save again, and the saved bytes must restore to the same state
//! (saving twice gives the same bytes); one in four restored states then runs a 1-token turn.
#![no_main]
use std::sync::{Arc, OnceLock};

use gptrt::{GenerationConfig, Model, SavedKv, Session};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const HEADER_LEN: usize = 152;

struct Fixture {
    session: Session,
    /// Magic, version, flags (0) and fingerprint of a real state: the first 112 bytes.
    header: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = gptrt::Runtime::builder()
            .intra_threads(1)
            .inter_threads(1)
            .build()
            .expect("ONNX Runtime loads (scripts/setup.sh installs it)");
        let model = Arc::new(
            Model::load_with(&runtime, gptrt_fuzz::fixture_dir()).expect("the fixture loads"),
        );
        let session = Session::new(model).expect("a session");
        let header = session.save(SavedKv::None).expect("an empty state saves")[..112].to_vec();
        Fixture { session, header }
    })
}

/// The input as the mode byte says: as given, or with parts of the header repaired.
fn state(data: &[u8]) -> Option<Vec<u8>> {
    let (&mode, rest) = data.split_first()?;
    let mut bytes = rest.to_vec();
    let mode = mode % 3;
    if mode == 0 || bytes.len() < HEADER_LEN {
        return Some(bytes);
    }
    if mode == 2 {
        let header = &fixture().header;
        bytes[..12].copy_from_slice(&header[..12]);
        bytes[16..112].copy_from_slice(&header[16..112]);
    }
    let payload_len = (bytes.len() - HEADER_LEN) as u64;
    let checksum = Sha256::digest(&bytes[HEADER_LEN..]);
    bytes[112..120].copy_from_slice(&payload_len.to_le_bytes());
    bytes[120..HEADER_LEN].copy_from_slice(&checksum);
    Some(bytes)
}

fn kv_of(bytes: &[u8]) -> SavedKv {
    match bytes[12] {
        1 => SavedKv::F32,
        2 => SavedKv::F16,
        _ => SavedKv::None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(bytes) = state(data) else {
        return;
    };
    let session = &fixture().session;
    let Ok(app_data) = session.restore_with_data(&bytes) else {
        return;
    };
    // Restored: it saves again, and that state is a fixed point.
    let kv = kv_of(&bytes);
    let again = session
        .save_with_data(kv, &app_data)
        .unwrap_or_else(|e| panic!("a restored state does not save: {e}"));
    let data_back = session
        .restore_with_data(&again)
        .unwrap_or_else(|e| panic!("a state this build saved does not restore: {e}"));
    assert_eq!(data_back, app_data, "the caller's data changed");
    let third = session.save_with_data(kv, &app_data).unwrap();
    assert!(third == again, "save -> restore -> save changed the bytes");
    // Whatever numbers a restored cache holds, a turn on it is a result or an error.
    if data.len() % 4 == 0 {
        let config = GenerationConfig {
            max_new_tokens: Some(1),
            ..Default::default()
        };
        let _ = session.generate_turn(&config, &mut |_| true);
    }
});
