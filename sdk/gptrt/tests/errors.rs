//! Bad input gets a clear error naming the problem; nothing panics.

mod common;

use std::path::{Path, PathBuf};

use common::{greedy, load, tiny};
use gptrt::{Error, GenerationConfig, Model};

/// A scratch copy of one fixture folder that a test may damage.
struct Scratch(PathBuf);

impl Scratch {
    fn copy_of(layout: &str, name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("gptrt-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(tiny().join(layout)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
        Scratch(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load_err(path: &Path) -> String {
    Model::load(path).expect_err("load must fail").to_string()
}

#[test]
fn missing_model_folder() {
    let err = load_err(Path::new("/nonexistent/gptrt-model"));
    assert!(
        err.contains("/nonexistent/gptrt-model") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn missing_external_weights_are_named() {
    // the fused fixture keeps its weights in model.onnx.data beside the graph
    let scratch = Scratch::copy_of("fused", "no-external-data");
    std::fs::remove_file(scratch.path().join("model.onnx.data")).unwrap();
    let err = load_err(scratch.path());
    assert!(err.contains("model.onnx.data"), "{err}");
}

#[test]
fn empty_model_folder() {
    let scratch = Scratch::copy_of("single", "empty");
    for entry in std::fs::read_dir(scratch.path()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let err = load_err(scratch.path());
    assert!(
        err.contains("0 ONNX graph(s) found") && err.contains("model.onnx"),
        "{err}"
    );
}

#[test]
fn random_bytes_as_model_onnx() {
    let scratch = Scratch::copy_of("single", "random");
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(scratch.path().join("model.onnx"), noise).unwrap();
    let err = load_err(scratch.path());
    assert!(
        err.contains("model.onnx") && err.contains("ONNX Runtime error while loading"),
        "{err}"
    );
}

#[test]
fn truncated_model_onnx() {
    let scratch = Scratch::copy_of("single", "truncated");
    let path = scratch.path().join("model.onnx");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let err = load_err(scratch.path());
    assert!(
        err.contains("model.onnx") && err.contains("ONNX Runtime error"),
        "{err}"
    );
}

#[test]
fn an_onnx_graph_that_is_not_gpt2() {
    let scratch = Scratch::copy_of("single", "not-gpt2");
    std::fs::copy(
        common::fixtures().join("not-gpt2.onnx"),
        scratch.path().join("model.onnx"),
    )
    .unwrap();
    let err = load_err(scratch.path());
    assert!(
        err.contains("unexpected input") || err.contains("missing input `input_ids`"),
        "{err}"
    );
    assert!(err.contains("model.onnx"), "{err}");
}

#[test]
fn config_that_disagrees_with_the_graph() {
    let scratch = Scratch::copy_of("single", "bad-config");
    let path = scratch.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["n_layer"] = serde_json::json!(3);
    std::fs::write(&path, config.to_string()).unwrap();
    let err = load_err(scratch.path());
    assert!(
        err.contains("past_key_values.2.key") && err.contains("n_layer"),
        "{err}"
    );

    config["n_layer"] = serde_json::json!(2);
    config["n_head"] = serde_json::json!(8);
    std::fs::write(&path, config.to_string()).unwrap();
    let err = load_err(scratch.path());
    assert!(err.contains("n_head = 8"), "{err}");
}

#[test]
fn missing_config_and_tokenizer_files() {
    let scratch = Scratch::copy_of("single", "no-config");
    std::fs::remove_file(scratch.path().join("config.json")).unwrap();
    let err = load_err(scratch.path());
    assert!(err.contains("missing config.json"), "{err}");

    let scratch = Scratch::copy_of("single", "no-tokenizer");
    for name in ["tokenizer.json", "vocab.json", "merges.txt"] {
        let _ = std::fs::remove_file(scratch.path().join(name));
    }
    let err = load_err(scratch.path());
    assert!(err.contains("no tokenizer"), "{err}");
}

#[test]
fn a_prompt_longer_than_the_context_window() {
    let model = load("single");
    let n_positions = model.config().n_positions;
    let long = "word ".repeat(n_positions + 10);
    let err = model.generate(&long, &greedy(4)).unwrap_err();
    assert!(matches!(err, Error::ContextOverflow { .. }), "{err}");
    assert!(err.to_string().contains("context window"), "{err}");

    let truncated = GenerationConfig {
        truncate_prompt: true,
        ..greedy(4)
    };
    let out = model.generate(&long, &truncated).unwrap();
    assert_eq!(out.prompt_token_ids.len(), n_positions - 4);
    assert_eq!(out.token_ids.len(), 4);
}

#[test]
fn zero_or_absurd_max_new_tokens() {
    let model = load("single");
    for n in [0usize, 1 << 40] {
        let err = model.generate("Hello", &greedy(n)).unwrap_err();
        assert!(err.to_string().contains("max_new_tokens"), "{err}");
    }
}

#[test]
fn token_ids_outside_the_vocabulary() {
    let model = load("single");
    let err = model
        .generate_ids(vec![vec![15496, 60000]], &greedy(2), &mut |_| true)
        .unwrap_err();
    assert!(err.to_string().contains("60000"), "{err}");
}
