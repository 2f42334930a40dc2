//! Hidden-state features (`last_hidden_state`, added by models/add_hidden_states.py) against
//! transformers' final hidden state, and the errors around them.

mod common;

use gptrt::{GenerationConfig, Pooling};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    last: Vec<f32>,
    mean: Vec<f32>,
}

fn cases() -> Vec<Case> {
    let path = common::tiny().join("hidden/hidden_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: width");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "{what}: largest difference {worst}");
}

#[test]
fn a_shared_kv_graph_gives_the_same_features() {
    // fused-shared binds one past/present buffer: features bind a scratch one for their pass.
    let model = common::load("fused-shared");
    assert!(model.has_hidden_states());
    let cases = cases();
    let texts: Vec<&str> = cases.iter().map(|case| case.text.as_str()).collect();
    let last = model.features(&texts, Pooling::Last).unwrap();
    let mean = model.features(&texts, Pooling::Mean).unwrap();
    for (i, case) in cases.iter().enumerate() {
        close(&last[i], &case.last, &format!("last, {:?}", case.text));
        close(&mean[i], &case.mean, &format!("mean, {:?}", case.text));
    }
}

#[test]
fn batched_features_equal_transformers_final_hidden_state_for_both_poolings() {
    let model = common::load("hidden");
    assert!(model.has_hidden_states());
    let cases = cases();
    let texts: Vec<&str> = cases.iter().map(|case| case.text.as_str()).collect();
    for case in &cases {
        assert_eq!(model.tokenizer().encode(&case.text).unwrap(), case.ids);
    }
    // The texts differ in length, so every shorter one runs left-padded in the same batch.
    let last = model.features(&texts, Pooling::Last).unwrap();
    let mean = model.features(&texts, Pooling::Mean).unwrap();
    for (i, case) in cases.iter().enumerate() {
        close(&last[i], &case.last, &format!("last, {:?}", case.text));
        close(&mean[i], &case.mean, &format!("mean, {:?}", case.text));
    }
    // More texts than one batch holds come back in input order.
    let many: Vec<&str> = (0..gptrt::tasks::FEATURE_BATCH + 5)
        .map(|i| texts[i % texts.len()])
        .collect();
    let pooled = model.features(&many, Pooling::Last).unwrap();
    for (i, features) in pooled.iter().enumerate() {
        close(
            features,
            &cases[i % cases.len()].last,
            &format!("text {i} of many"),
        );
    }
}

#[test]
fn a_graph_without_hidden_states_is_refused_naming_the_graph_and_the_script() {
    let model = common::load("single");
    assert!(!model.has_hidden_states());
    let err = model
        .features(&["Hello"], Pooling::Last)
        .unwrap_err()
        .to_string();
    assert!(err.contains("single/model.onnx"), "{err}");
    assert!(err.contains("last_hidden_state"), "{err}");
    assert!(err.contains("models/add_hidden_states.py"), "{err}");
}

#[test]
fn an_empty_text_is_refused_by_its_index() {
    let model = common::load("hidden");
    let err = model
        .features(&["fine", ""], Pooling::Mean)
        .unwrap_err()
        .to_string();
    assert!(err.contains("text 1 is empty"), "{err}");
    let err = "max".parse::<Pooling>().unwrap_err().to_string();
    assert!(err.contains("`max`"), "{err}");
}

#[test]
fn generation_on_a_graph_with_hidden_states_equals_the_graph_without() {
    let plain = common::load("single");
    let hidden = common::load("hidden");
    let config = GenerationConfig {
        max_new_tokens: Some(12),
        ..plain.generation_config().clone()
    };
    let a = plain.generate("Once upon a time", &config).unwrap();
    let b = hidden.generate("Once upon a time", &config).unwrap();
    assert_eq!(a.token_ids, b.token_ids);
}
