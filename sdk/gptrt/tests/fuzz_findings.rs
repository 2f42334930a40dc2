//! Regression tests for what the fuzz targets in `fuzz/` found (each input is also in
//! `fuzz/corpus/<target>/finding-*`). Fast, no ONNX Runtime: they run in the normal suite.
//! Findings inside a plugin are tested in that plugin's crate: `grammar_config`'s stack overflow on
//! long chains of Lark rules or `$ref`s in `plugins/grammar/src/compile.rs`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Mutex, Once};
use std::thread::ThreadId;

use gptrt::{GenerationConfig, Tokenizer};

/// Threads that panicked, caught or not: a panic inside the SDK is a finding even when a
/// `catch_unwind` turns it into an error (it aborts a host built with `panic = "abort"`, and
/// prints through the host's panic hook).
static PANICKED: Mutex<Option<HashSet<ThreadId>>> = Mutex::new(None);

fn watch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let mut panicked = PANICKED.lock().unwrap_or_else(|p| p.into_inner());
            panicked
                .get_or_insert_with(HashSet::new)
                .insert(std::thread::current().id());
            drop(panicked);
            previous(info);
        }));
    });
}

fn this_thread_panicked() -> bool {
    let panicked = PANICKED.lock().unwrap_or_else(|p| p.into_inner());
    panicked
        .as_ref()
        .is_some_and(|set| set.contains(&std::thread::current().id()))
}

fn corpus(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// fuzz target `tokenizer_json`: a parse error inside `decoder` made the `tokenizers` crate
/// panic (`expect("Helper")`); the SDK caught it, but the panic still ran. Now refused before the
/// crate sees it.
#[test]
fn a_syntax_error_inside_the_decoder_is_refused_without_a_panic() {
    watch_panics();
    // A syntax error; bytes that are not UTF-8 inside a string; a lone surrogate escape.
    let valid = corpus("tokenizer_json", "tiny-bpe.json");
    let surrogate = String::from_utf8(valid.clone()).unwrap().replace(
        r#""type":"ByteLevel","add_prefix_space":true"#,
        r#""type":"ByteLevel\udc00","add_prefix_space":true"#,
    );
    for json in [
        corpus("tokenizer_json", "finding-87f7a2d100ad"),
        corpus("tokenizer_json", "finding-13cf0a796a10"),
        surrogate.into_bytes(),
    ] {
        let Err(error) = Tokenizer::from_bytes(&json) else {
            panic!("malformed tokenizer.json accepted");
        };
        let error = error.to_string();
        assert!(error.contains("tokenizer.json"), "{error}");
        assert!(error.contains("not valid JSON"), "{error}");
        assert!(
            !this_thread_panicked(),
            "the tokenizers crate panicked: {error}"
        );
    }
    assert!(
        Tokenizer::from_bytes(&valid).is_ok(),
        "the seed itself loads"
    );
}

/// fuzz targets `generation_config` and `capi_options`: a number written by the options' JSON
/// (shortest form that reads back exactly) was read back one ulp off by serde_json's default
/// float parser, so options changed on a `to_json` -> `from_json` round trip.
#[test]
fn options_round_trip_through_json_exactly() {
    let path = Path::new("generation_config.json");
    for json in [
        corpus("generation_config", "finding-018718a48d83"),
        br#"{"max_time": 1.5629011892822337e-102}"#.to_vec(),
        br#"{"max_time": 0.30000000000000004, "temperature": 0.7}"#.to_vec(),
    ] {
        let config = GenerationConfig::from_json_bytes(&json, path).expect("valid options");
        let written = serde_json::to_vec(&config).unwrap();
        let again =
            GenerationConfig::from_json_bytes(&written, path).expect("written options read back");
        assert_eq!(
            config,
            again,
            "round trip of {}",
            String::from_utf8_lossy(&written)
        );
    }
}

/// fuzz target `tokenizer_json`: a BPE merge whose second part is shorter than
/// `continuing_subword_prefix` made the `tokenizers` crate slice past its end (a panic at load).
#[test]
fn a_merge_shorter_than_the_subword_prefix_is_refused_without_a_panic() {
    watch_panics();
    let json = corpus("tokenizer_json", "finding-db69e66ab966");
    let Err(error) = Tokenizer::from_bytes(&json) else {
        panic!("malformed tokenizer.json accepted");
    };
    let error = error.to_string();
    assert!(error.contains("tokenizer.json"), "{error}");
    assert!(error.contains("BPE merge #0"), "{error}");
    assert!(
        !this_thread_panicked(),
        "the tokenizers crate panicked: {error}"
    );
}
