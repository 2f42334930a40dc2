//! Sampling, stop strings, time limits, cancellation, log-probabilities and config validation.

mod common;

use common::{greedy, load};
use gptrt::{CancelToken, GenerationConfig, Generator, Model, Runtime, StopReason, StopStrings};

fn sampling(seed: u64) -> GenerationConfig {
    GenerationConfig {
        do_sample: true,
        temperature: 0.9,
        top_k: 40,
        top_p: 0.95,
        repetition_penalty: 1.2,
        seed: Some(seed),
        max_new_tokens: Some(24),
        ..Default::default()
    }
}

#[test]
fn seeded_sampling_is_reproducible_and_seed_dependent() {
    let model = load("single");
    let a = model.generate("Once upon a time", &sampling(42)).unwrap();
    let b = model.generate("Once upon a time", &sampling(42)).unwrap();
    let c = model.generate("Once upon a time", &sampling(43)).unwrap();
    assert_eq!(a.token_ids, b.token_ids);
    assert_eq!(a.seed, Some(42));
    assert_ne!(a.token_ids, c.token_ids, "another seed draws other tokens");
    let greedy_ids = model
        .generate("Once upon a time", &greedy(24))
        .unwrap()
        .token_ids;
    assert_ne!(a.token_ids, greedy_ids, "sampling is not greedy");
}

#[test]
fn seeded_sampling_is_the_same_with_one_or_two_threads() {
    let dir = common::tiny().join("merged");
    let one =
        Model::load_with(&Runtime::builder().intra_threads(1).build().unwrap(), &dir).unwrap();
    let two =
        Model::load_with(&Runtime::builder().intra_threads(2).build().unwrap(), &dir).unwrap();
    for seed in [1, 2, 3] {
        let a = one.generate("Hello world", &sampling(seed)).unwrap();
        let b = two.generate("Hello world", &sampling(seed)).unwrap();
        assert_eq!(a.token_ids, b.token_ids, "seed {seed}");
    }
}

#[test]
fn an_unseeded_run_reports_the_seed_that_repeats_it() {
    let model = load("single");
    let config = GenerationConfig {
        seed: None,
        ..sampling(0)
    };
    let first = model.generate("Hello world", &config).unwrap();
    let seed = first.seed.expect("sampling reports its seed");
    let again = model.generate("Hello world", &sampling(seed)).unwrap();
    assert_eq!(first.token_ids, again.token_ids);
}

#[test]
fn several_samples_per_prompt_use_consecutive_seeds() {
    let model = load("single");
    let config = GenerationConfig {
        num_return_sequences: 3,
        ..sampling(10)
    };
    let out = model
        .generate_ids(
            vec![model.tokenizer().encode("Hello world").unwrap()],
            &config,
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(out.len(), 3);
    for (i, sample) in out.iter().enumerate() {
        let alone = model
            .generate("Hello world", &sampling(10 + i as u64))
            .unwrap();
        assert_eq!(sample.token_ids, alone.token_ids, "sample {i}");
    }
}

#[test]
fn a_stop_string_spanning_tokens_ends_generation_and_is_never_emitted() {
    let model = load("single");
    let full = model.generate("Hello world", &greedy(24)).unwrap();
    // Pick a stop string that starts inside one token and ends inside a later one.
    let pieces: Vec<String> = full
        .token_ids
        .iter()
        .map(|&id| String::from_utf8_lossy(model.tokenizer().token_bytes(id).unwrap()).into_owned())
        .collect();
    let start = pieces[..3].concat().len() - 2;
    let stop = full.text[start..].chars().take(6).collect::<String>();
    assert!(stop.len() >= 4);
    let config = GenerationConfig {
        stop_strings: Some(StopStrings::Many(vec![
            "never appears 123".to_string(),
            stop.clone(),
        ])),
        ..greedy(24)
    };
    let mut streamed = String::new();
    let out = model
        .generate_with("Hello world", &config, |event| {
            streamed.push_str(event.text);
            true
        })
        .unwrap();
    assert_eq!(out.stop_reason, StopReason::StopString);
    assert_eq!(out.stop_string.as_deref(), Some(stop.as_str()));
    assert_eq!(out.text, full.text[..start]);
    assert_eq!(
        streamed, out.text,
        "streamed text never includes the stop string"
    );
    assert!(out.token_ids.len() < full.token_ids.len());
    assert_eq!(out.token_ids, full.token_ids[..out.token_ids.len()]);
}

#[test]
fn max_time_and_cancellation_stop_generation() {
    let model = load("nopast");
    let config = GenerationConfig {
        max_time: Some(1e-9),
        ..greedy(50)
    };
    let out = model.generate("Hello world", &config).unwrap();
    assert_eq!(out.stop_reason, StopReason::MaxTime);
    assert_eq!(
        out.token_ids.len(),
        1,
        "the limit is checked after every token"
    );

    let prompt = model.tokenizer().encode("Hello world").unwrap();
    let mut generator = Generator::new(&model, vec![prompt.clone()], &greedy(50)).unwrap();
    let token: CancelToken = generator.cancel_token();
    let mut count = 0;
    generator
        .run(&mut |_| {
            count += 1;
            if count == 3 {
                // As another thread would.
                let token = token.clone();
                std::thread::spawn(move || token.cancel()).join().unwrap();
            }
            true
        })
        .unwrap();
    let out = generator.into_generations().remove(0);
    assert_eq!(out.stop_reason, StopReason::Cancelled);
    assert_eq!(
        out.token_ids.len(),
        4,
        "cancellation takes effect at the next token"
    );

    let mut cancelled_early = Generator::new(&model, vec![prompt], &greedy(50)).unwrap();
    cancelled_early.cancel_token().cancel();
    cancelled_early.run(&mut |_| true).unwrap();
    let out = cancelled_early.into_generations().remove(0);
    assert_eq!(
        (out.stop_reason, out.token_ids.len()),
        (StopReason::Cancelled, 0)
    );
}

#[test]
fn logprobs_are_log_softmax_of_the_model_logits() {
    let model = load("single");
    let reference = common::reference();
    let case = &reference.cases[1];
    let config = GenerationConfig {
        logprobs: Some(3),
        ..greedy(5)
    };
    let out = model.generate(&case.prompt, &config).unwrap();
    let logprobs = out.logprobs.expect("requested");
    assert_eq!(logprobs.len(), 5);
    let logits = common::reference_logits(case);
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln() + max;
    let first = &logprobs[0];
    assert_eq!(first.token_id, out.token_ids[0]);
    assert!((first.logprob - (logits[first.token_id as usize] - log_sum)).abs() < 1e-4);
    assert_eq!(first.top.len(), 3);
    assert_eq!(
        first.top[0].0, first.token_id,
        "greedy picks the top alternative"
    );
    assert!(first.top.windows(2).all(|w| w[0].1 >= w[1].1));
}

#[test]
fn invalid_values_name_their_field() {
    let model = load("single");
    let cases: Vec<(&str, GenerationConfig)> = vec![
        (
            "temperature",
            GenerationConfig {
                temperature: f32::NAN,
                ..greedy(4)
            },
        ),
        (
            "temperature",
            GenerationConfig {
                temperature: 0.0,
                do_sample: true,
                ..greedy(4)
            },
        ),
        (
            "top_p",
            GenerationConfig {
                top_p: 1.5,
                ..greedy(4)
            },
        ),
        (
            "top_p",
            GenerationConfig {
                top_p: 0.0,
                ..greedy(4)
            },
        ),
        (
            "repetition_penalty",
            GenerationConfig {
                repetition_penalty: -1.0,
                ..greedy(4)
            },
        ),
        (
            "presence_penalty",
            GenerationConfig {
                presence_penalty: -0.5,
                ..greedy(4)
            },
        ),
        (
            "num_beams",
            GenerationConfig {
                num_beams: 0,
                ..greedy(4)
            },
        ),
        (
            "typical_p",
            GenerationConfig {
                typical_p: f32::INFINITY,
                ..greedy(4)
            },
        ),
        (
            "num_return_sequences",
            GenerationConfig {
                num_beams: 2,
                num_return_sequences: 3,
                ..greedy(4)
            },
        ),
    ];
    for (field, config) in cases {
        let err = model.generate("Hello", &config).unwrap_err().to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
    let bad_token = GenerationConfig {
        suppress_tokens: Some(vec![70000]),
        ..greedy(4)
    };
    assert!(model
        .generate("Hello", &bad_token)
        .unwrap_err()
        .to_string()
        .contains("70000"));
}

#[test]
fn unknown_generation_config_fields_are_kept_and_reported() {
    let config: GenerationConfig = serde_json::from_str(
        r#"{"do_sample": true, "top_k": 10, "guidance_scale": 1.5, "transformers_version": "4.57.6", "watermarking_config": {"a": 1}}"#,
    )
    .unwrap();
    assert_eq!(config.top_k, 10);
    assert_eq!(
        config.unsupported_fields(),
        vec!["guidance_scale", "watermarking_config"]
    );
    let round_trip = serde_json::to_value(&config).unwrap();
    assert_eq!(round_trip["guidance_scale"], 1.5, "kept verbatim");
}

#[test]
fn hugging_face_defaults_apply_to_missing_fields() {
    let config: GenerationConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(
        (
            config.top_k,
            config.top_p,
            config.temperature,
            config.num_beams
        ),
        (50, 1.0, 1.0, 1)
    );
    assert_eq!(
        config.new_token_budget(5),
        15,
        "max_length 20 in total by default"
    );
    let early: GenerationConfig = serde_json::from_str(r#"{"early_stopping": "never"}"#).unwrap();
    assert_eq!(early.early_stopping, gptrt::EarlyStopping::Never);
    assert!(
        serde_json::from_str::<GenerationConfig>(r#"{"early_stopping": "sometimes"}"#).is_err()
    );
}
