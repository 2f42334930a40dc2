//! `plugins/classify` (org.gptrt.classify) through the host API: zero-shot and a trained head give
//! what the SDK's own classifiers give, and bad configs and inputs are refused by name.

mod common;

use std::sync::Arc;

use gptrt::tasks::{LinearHead, ZeroShot, ZeroShotOptions};
use gptrt::{Model, PluginHost, Pooling};
use serde_json::Value;

fn host() -> PluginHost {
    let mut host = PluginHost::new();
    host.load(&common::plugin_library("gptrt-plugin-classify"))
        .unwrap();
    host
}

fn labels(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn assert_same(plugin: &Value, sdk: &gptrt::tasks::Classification) {
    assert_eq!(plugin["label"], sdk.label.as_str(), "{plugin}");
    for (label, p) in &sdk.scores {
        let got = plugin["scores"][label].as_f64().unwrap();
        assert!((got - p).abs() < 1e-6, "{label}: {got} vs {p}");
    }
}

#[test]
fn zero_shot_through_the_plugin_equals_the_sdks_zero_shot() {
    let model = Arc::new(common::load("hidden"));
    let set = labels(&["sports", "food", "law and order"]);
    let classifier = ZeroShot::new(
        &model,
        &set,
        ZeroShotOptions {
            calibrate: true,
            ..ZeroShotOptions::default()
        },
    )
    .unwrap();
    let host = host();
    let mut head = host
        .task_head(
            "org.gptrt.classify",
            Some(r#"{"labels": ["sports", "food", "law and order"], "calibrate": true}"#),
            model.clone(),
        )
        .unwrap();
    let texts = ["The match ended in a draw", "Bread and butter"];
    let out: Value = serde_json::from_str(
        &head
            .run(&serde_json::json!({ "texts": texts }).to_string())
            .unwrap(),
    )
    .unwrap();
    for (i, text) in texts.iter().enumerate() {
        assert_same(
            &out["results"][i],
            &classifier.classify(&model, text).unwrap(),
        );
    }
    let err = head.run(r#"{"text": ""}"#).unwrap_err().to_string();
    assert!(err.contains("text 0 is empty"), "{err}");
    let err = host
        .task_head(
            "org.gptrt.classify",
            Some(r#"{"labels": ["one"]}"#),
            model.clone(),
        )
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("at least two labels"), "{err}");
}

#[test]
fn a_trained_head_through_the_plugin_equals_the_sdks_head_and_needs_hidden_states() {
    let model = Arc::new(common::load("hidden"));
    let hidden = model.hidden_size();
    let weight: Vec<f32> = (0..2 * hidden)
        .map(|i| ((i % 7) as f32 - 3.0) / 10.0)
        .collect();
    let head = LinearHead::new(
        &model,
        labels(&["a", "b"]),
        Pooling::Last,
        weight,
        vec![0.1, -0.1],
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("gptrt-plugin-head-{}", std::process::id()));
    head.save(&dir).unwrap();
    let config = serde_json::json!({ "head": dir }).to_string();

    let host = host();
    let mut plugin = host
        .task_head("org.gptrt.classify", Some(&config), model.clone())
        .unwrap();
    let texts = ["Hello world", "a somewhat longer text than the other"];
    let sdk = head.classify(&model, &texts).unwrap();
    let out: Value = serde_json::from_str(
        &plugin
            .run(&serde_json::json!({ "texts": texts }).to_string())
            .unwrap(),
    )
    .unwrap();
    for (i, expected) in sdk.iter().enumerate() {
        assert_same(&out["results"][i], expected);
    }

    // A graph without last_hidden_state: the capability is absent, and the error says what to run.
    let plain = Arc::new(common::load("single"));
    let err = host
        .task_head("org.gptrt.classify", Some(&config), plain)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("org.gptrt.hidden_states") && err.contains("add_hidden_states.py"),
        "{err}"
    );
    // Another model: the demo's hidden size is 256, the head's 32.
    let demo = Arc::new(Model::load(common::repo().join("models/demo")).unwrap());
    let err = host
        .task_head("org.gptrt.classify", Some(&config), demo)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("hidden size (n_embd) 32"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
