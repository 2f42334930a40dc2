//! Saved sessions: restore + continue gives what continuing directly gives (greedy, seeded, and
//! sampled from the session's own random state; with and without the KV cache), the sizes the
//! format promises, and clear errors (never a panic) for foreign, damaged and truncated states.

mod common;

use std::sync::Arc;

use common::{greedy, load};
use gptrt::{Error, GenerationConfig, Model, SavedKv, Session};
use sha2::{Digest, Sha256};

const HEADER: usize = 152;

fn sampled(max_new_tokens: usize, seed: Option<u64>) -> GenerationConfig {
    GenerationConfig {
        do_sample: true,
        top_k: 50,
        seed,
        stop_strings: Some(gptrt::StopStrings::One("\nUser:".to_string())),
        ..greedy(max_new_tokens)
    }
}

fn turn(session: &Session, text: &str, config: &GenerationConfig) -> Vec<u32> {
    session.append_text(text).unwrap();
    session.generate_turn(config, &mut |_| true).unwrap();
    session.result().unwrap().token_ids
}

/// A session two turns into a dialogue.
fn dialogue(model: &Arc<Model>, config: &GenerationConfig) -> Session {
    let session = Session::new(model.clone()).unwrap();
    session.reseed(99).unwrap();
    turn(&session, "The innkeeper said", config);
    turn(&session, "\nUser: what news?\nBot:", config);
    session
}

#[test]
fn restore_and_continue_equals_continuing_directly() {
    for layout in [
        "single",
        "split",
        "merged",
        "nopast",
        "fused-shared",
        "fused-shared-gptrt",
    ] {
        let model = Arc::new(load(layout));
        let cases = [
            (greedy(6), [SavedKv::None, SavedKv::F32]),
            (sampled(6, Some(5)), [SavedKv::F32, SavedKv::F16]),
            // sampled without a seed: the turns draw from the session's saved random state
            (sampled(6, None), [SavedKv::None, SavedKv::F16]),
        ];
        for (config, kvs) in cases {
            for kv in kvs {
                let session = dialogue(&model, &config);
                let saved = session.save(kv).unwrap();
                let direct = turn(&session, "\nUser: and then?\nBot:", &config);
                let restored = Session::from_saved(model.clone(), &saved).unwrap();
                assert_eq!(restored.last_turn_config().unwrap(), Some(config.clone()));
                let again = turn(&restored, "\nUser: and then?\nBot:", &config);
                assert_eq!(again, direct, "{layout}, {kv:?}, {config:?}");
                assert_eq!(restored.tokens().unwrap(), session.tokens().unwrap());
                if kv != SavedKv::None || config.do_sample {
                    continue;
                }
                // restoring into a used session replaces what it held
                let other = dialogue(&model, &greedy(3));
                other.restore(&saved).unwrap();
                assert_eq!(
                    turn(&other, "\nUser: and then?\nBot:", &config),
                    direct,
                    "{layout}"
                );
            }
        }
    }
}

#[test]
fn a_restored_cache_is_used_and_a_state_without_one_runs_its_tokens_again() {
    let model = Arc::new(load("single"));
    let session = dialogue(&model, &greedy(5));
    let cached = session.cached_len().unwrap();
    assert!(cached > 0);
    let with_kv = Session::from_saved(model.clone(), &session.save(SavedKv::F32).unwrap()).unwrap();
    assert_eq!(with_kv.cached_len().unwrap(), cached);
    let without =
        Session::from_saved(model.clone(), &session.save(SavedKv::None).unwrap()).unwrap();
    assert_eq!(without.cached_len().unwrap(), 0);
    for (restored, rerun) in [(&with_kv, 0), (&without, cached)] {
        let line = restored.append_text("\nUser: hm\nBot:").unwrap();
        restored.generate_turn(&greedy(1), &mut |_| true).unwrap();
        let first_pass = restored.result().unwrap().stats.prompt_tokens;
        assert_eq!(first_pass, rerun + line + 1);
    }
}

#[test]
fn saved_sizes_are_four_bytes_a_token_and_the_physical_minimum_of_the_cache() {
    for dir in ["single", "fused-shared", "fused-shared-gptrt"] {
        let model = Arc::new(load(dir));
        let session = dialogue(&model, &greedy(8));
        let tokens = session.context_len().unwrap();
        let cached = session.cached_len().unwrap();
        let config_json = serde_json::to_vec(&greedy(8)).unwrap().len();
        let fixed = HEADER + 4 + 8 + 4 + config_json + 4 + 4;
        let plain = session.save(SavedKv::None).unwrap();
        assert_eq!(plain.len(), fixed + 4 * tokens);
        let c = model.config();
        let per_token = 2 * c.n_layer * c.n_embd;
        let half = session.save(SavedKv::F16).unwrap();
        assert_eq!(half.len(), fixed + 4 * tokens + 16 + cached * per_token * 2);
        let full = session.save(SavedKv::F32).unwrap();
        assert_eq!(full.len(), fixed + 4 * tokens + 16 + cached * per_token * 4);
    }
}

fn saved_state_error(result: gptrt::Result<()>) -> String {
    match result {
        Err(Error::SavedState { message }) => message,
        other => panic!("expected a saved-state error, got {other:?}"),
    }
}

#[test]
fn foreign_damaged_and_truncated_states_are_clear_errors_and_the_session_stays_usable() {
    let model = Arc::new(load("single"));
    let session = dialogue(&model, &greedy(4));
    let saved = session.save(SavedKv::F32).unwrap();

    let target = dialogue(&model, &greedy(4));
    let before = target.tokens().unwrap();

    // another model (the split export: other graphs, other weight files)
    let split = Arc::new(load("split"));
    let foreign = Session::new(split.clone()).unwrap();
    let message = saved_state_error(foreign.restore(&saved));
    let (mine, theirs) = (model.fingerprint().unwrap(), split.fingerprint().unwrap());
    assert!(
        message.contains(&mine.to_string()) && message.contains(&theirs.to_string()),
        "{message}"
    );
    assert!(message.contains("weights"), "{message}");

    // every truncation, including an empty buffer
    for len in (0..saved.len()).step_by(7).chain([saved.len() - 1]) {
        let message = saved_state_error(target.restore(&saved[..len]));
        assert!(
            message.contains("truncated") || message.contains("magic"),
            "{len}: {message}"
        );
    }
    // a flipped byte anywhere in the payload
    for at in [HEADER, HEADER + 5, saved.len() / 2, saved.len() - 1] {
        let mut damaged = saved.clone();
        damaged[at] ^= 0x40;
        let message = saved_state_error(target.restore(&damaged));
        assert!(message.contains("checksum"), "{message}");
    }
    // a header of another version, and not a saved state at all
    let mut version = saved.clone();
    version[8] = 9;
    assert!(saved_state_error(target.restore(&version)).contains("version 9"));
    assert!(saved_state_error(target.restore(b"{\"tokens\": []}")).contains("magic"));

    // lengths from outside, with a correct checksum: bounded before anything is allocated
    let reseal = |payload: &[u8]| {
        let mut out = saved[..HEADER - 40].to_vec();
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&Sha256::digest(payload));
        out.extend_from_slice(payload);
        out
    };
    let huge_count = reseal(&u32::MAX.to_le_bytes());
    assert!(saved_state_error(target.restore(&huge_count)).contains("token ids"));
    let mut payload = saved[HEADER..].to_vec();
    let too_many = payload.len() as u32;
    payload[0..4].copy_from_slice(&too_many.to_le_bytes());
    let message = saved_state_error(target.restore(&reseal(&payload)));
    assert!(message.contains("token ids"), "{message}");
    let mut bad_id = saved[HEADER..].to_vec();
    bad_id[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(saved_state_error(target.restore(&reseal(&bad_id))).contains("token"));

    // nothing above changed the session, which still runs
    assert_eq!(target.tokens().unwrap(), before);
    turn(&target, "\nUser: still there?\nBot:", &greedy(3));
}

#[test]
fn the_demo_model_restores_and_continues_exactly() {
    let model = Arc::new(Model::load(common::repo().join("models/demo")).unwrap());
    let config = greedy(10);
    for kv in [SavedKv::None, SavedKv::F32] {
        let session = dialogue(&model, &config);
        let saved = session.save(kv).unwrap();
        let direct = turn(&session, "\nUser: and then?\nBot:", &config);
        let restored = Session::from_saved(model.clone(), &saved).unwrap();
        assert_eq!(
            turn(&restored, "\nUser: and then?\nBot:", &config),
            direct,
            "{kv:?}"
        );
    }
}
