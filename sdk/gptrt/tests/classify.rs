//! Classification: zero-shot by verbalizer log-likelihood, and a trained linear head over pooled
//! features (its folder format, its fingerprint check, its errors).

mod common;

use gptrt::tasks::{LinearHead, ZeroShot, ZeroShotOptions, HEAD_FILE, LABELS_FILE};
use gptrt::Pooling;

fn labels(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

#[test]
fn zero_shot_is_the_softmax_of_each_labels_log_likelihood_after_the_text() {
    let model = common::load("hidden");
    let set = labels(&["sports", "politics and government", "science"]);
    for calibrate in [false, true] {
        let options = ZeroShotOptions {
            calibrate,
            ..ZeroShotOptions::default()
        };
        let classifier = ZeroShot::new(&model, &set, options.clone()).unwrap();
        let text = "The team won the final match";
        let got = classifier.classify(&model, text).unwrap();
        let tokenizer = model.tokenizer();
        let score = |input: &str, label: &str| {
            let mut context = vec![50256];
            context.extend(
                tokenizer
                    .encode(&format!("{input}{}", options.template))
                    .unwrap(),
            );
            model
                .score(&context, &tokenizer.encode(&format!(" {label}")).unwrap())
                .unwrap()
        };
        let raw: Vec<f64> = set
            .iter()
            .map(|label| {
                score(text, label)
                    - if calibrate {
                        score(&options.content_free, label)
                    } else {
                        0.0
                    }
            })
            .collect();
        let total: f64 = raw.iter().map(|s| s.exp()).sum();
        for (label, s) in set.iter().zip(&raw) {
            let want = s.exp() / total;
            assert!(
                (got.score(label) - want).abs() < 1e-4,
                "calibrate {calibrate}, {label}: {} vs {want}",
                got.score(label)
            );
        }
        let sum: f64 = got.scores.iter().map(|(_, p)| p).sum();
        assert!((sum - 1.0).abs() < 1e-9);
        let best = got
            .scores
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert_eq!(got.label, best.0);
    }
}

#[test]
fn bad_label_sets_and_empty_texts_are_refused_by_name() {
    let model = common::load("hidden");
    let options = ZeroShotOptions::default();
    for (set, needle) in [
        (labels(&["only"]), "at least two labels"),
        (labels(&["a", "b", "a"]), "label `a` appears twice"),
        (labels(&["a", " "]), "label 1 is empty"),
    ] {
        let err = ZeroShot::new(&model, &set, options.clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
    }
    let classifier = ZeroShot::new(&model, &labels(&["a", "b"]), options).unwrap();
    let err = classifier.classify(&model, "  ").unwrap_err().to_string();
    assert!(err.contains("text is empty"), "{err}");
}

fn toy_head(model: &gptrt::Model) -> LinearHead {
    let hidden = model.hidden_size();
    // Label i reads feature i: easy to check by hand.
    let mut weight = vec![0f32; 3 * hidden];
    for label in 0..3 {
        weight[label * hidden + label] = 1.0;
    }
    LinearHead::new(
        model,
        labels(&["x", "y", "z"]),
        Pooling::Mean,
        weight,
        vec![0.5, 0.0, -0.5],
    )
    .unwrap()
}

#[test]
fn a_saved_head_loads_back_scores_its_features_and_saves_to_the_same_bytes() {
    let model = common::load("hidden");
    let head = toy_head(&model);
    let dir = std::env::temp_dir().join(format!("gptrt-head-{}", std::process::id()));
    head.save(&dir).unwrap();
    let first = std::fs::read(dir.join(HEAD_FILE)).unwrap();
    let loaded = LinearHead::load(&dir, &model).unwrap();
    assert_eq!(loaded, head);
    loaded.save(&dir).unwrap();
    assert_eq!(std::fs::read(dir.join(HEAD_FILE)).unwrap(), first);

    let texts = ["Hello world", "a"];
    let features = model.features(&texts, Pooling::Mean).unwrap();
    for (result, f) in loaded
        .classify(&model, &texts)
        .unwrap()
        .iter()
        .zip(&features)
    {
        let logits = [f[0] as f64 + 0.5, f[1] as f64, f[2] as f64 - 0.5];
        let total: f64 = logits.iter().map(|l| l.exp()).sum();
        for (label, logit) in ["x", "y", "z"].iter().zip(logits) {
            assert!((result.score(label) - logit.exp() / total).abs() < 1e-6);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_head_for_another_model_is_refused() {
    let tiny = common::load("hidden");
    let dir = std::env::temp_dir().join(format!("gptrt-head-other-{}", std::process::id()));
    toy_head(&tiny).save(&dir).unwrap();

    // Another width: the demo model has n_embd 256, the tiny one 32.
    let demo = gptrt::Model::load(common::repo().join("models/demo")).unwrap();
    let err = LinearHead::load(&dir, &demo).unwrap_err().to_string();
    assert!(err.contains("hidden size (n_embd) 32"), "{err}");
    assert!(err.contains("has 256"), "{err}");

    // Same shape, other weights: the probe's features no longer match the fingerprint.
    let mut bytes = std::fs::read(dir.join(HEAD_FILE)).unwrap();
    let n = bytes.len();
    let tensors = safetensors_offsets(&bytes, "probe");
    for at in (tensors.0..tensors.1).step_by(4) {
        let v = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        bytes[at..at + 4].copy_from_slice(&(-v).to_le_bytes());
    }
    assert_eq!(bytes.len(), n);
    std::fs::write(dir.join(HEAD_FILE), &bytes).unwrap();
    let err = LinearHead::load(&dir, &tiny).unwrap_err().to_string();
    assert!(err.contains("trained for another model"), "{err}");

    std::fs::write(dir.join(LABELS_FILE), "{}").unwrap();
    let err = LinearHead::load(&dir, &tiny).unwrap_err().to_string();
    assert!(
        err.contains("labels.json") && err.contains("missing field"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Byte range of tensor `name`'s data in a safetensors file.
fn safetensors_offsets(bytes: &[u8], name: &str) -> (usize, usize) {
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let offsets = &header[name]["data_offsets"];
    let start = 8 + header_len + offsets[0].as_u64().unwrap() as usize;
    let end = 8 + header_len + offsets[1].as_u64().unwrap() as usize;
    (start, end)
}

#[test]
fn a_sequence_classification_export_gives_transformers_logits_and_is_not_a_language_model() {
    use gptrt::tasks::SequenceClassifier;

    #[derive(serde::Deserialize)]
    struct Case {
        text: String,
        logits: Vec<f64>,
    }
    let dir = common::fixtures().join("tiny-seq-classification");
    let cases: Vec<Case> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let classifier = SequenceClassifier::load(&dir).unwrap();
    assert_eq!(classifier.labels(), ["negative", "neutral", "positive"]);
    // Texts of different lengths in one batch: each row padded, each as transformers gives alone.
    let texts: Vec<&str> = cases.iter().map(|case| case.text.as_str()).collect();
    for (result, case) in classifier.classify(&texts).unwrap().iter().zip(&cases) {
        let total: f64 = case.logits.iter().map(|l| l.exp()).sum();
        for (label, logit) in classifier.labels().iter().zip(&case.logits) {
            let want = logit.exp() / total;
            assert!(
                (result.score(label) - want).abs() < 1e-5,
                "{}: {label}",
                case.text
            );
        }
    }
    let err = gptrt::Model::load(&dir).unwrap_err().to_string();
    assert!(err.contains("sequence-classification graph"), "{err}");
    let err = SequenceClassifier::load(common::tiny().join("single"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a sequence-classification graph"), "{err}");
}
