//! Every generation option reaches the chain that `SamplerChain::from_config` (and beam search)
//! builds. Options transformers has are compared with its `generate` (token for token:
//! generate_reference.rs) or, for sampling, with the processed + warped scores of its own processor
//! list at each step of a fixed trajectory (`warped_cases` of generate_reference.json, written by
//! models/make_sampler_fixtures.py --part generate). gptrt's own presence/frequency penalties are
//! checked against OpenAI's rule here.

mod common;

use std::collections::BTreeSet;

use gptrt::{GenerationConfig, SamplerChain, SamplerContext};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
    warped_cases: Vec<WarpedCase>,
}

#[derive(Deserialize)]
struct Case {
    config: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct WarpedCase {
    name: String,
    prompt_ids: Vec<u32>,
    config: serde_json::Value,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    generated: Vec<u32>,
    kept: Vec<(u32, f32)>,
}

fn fixture() -> Fixture {
    let text = std::fs::read_to_string(common::tiny().join("generate_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// GenerationConfig fields that no transformers reference can cover, and why.
const NOT_IN_TRANSFORMERS: &[(&str, &str)] = &[
    (
        "presence_penalty",
        "gptrt extension: presence_frequency_penalty_follows_openai_rule",
    ),
    (
        "frequency_penalty",
        "gptrt extension: presence_frequency_penalty_follows_openai_rule",
    ),
    ("seed", "gptrt's own generator (tests/sampling.rs)"),
    ("logprobs", "output only, no chain link"),
    ("truncate_prompt", "prompt handling, no chain link"),
    ("max_time", "wall-clock stop, no chain link"),
    (
        "stop_strings",
        "text stop, no chain link (tests/sampling.rs)",
    ),
    ("bos_token_id", "empty prompts only, no chain link"),
];

/// Every field gptrt reads from a GenerationConfig.
const ALL_FIELDS: &[&str] = &[
    "max_new_tokens",
    "max_length",
    "min_new_tokens",
    "min_length",
    "max_time",
    "stop_strings",
    "do_sample",
    "num_beams",
    "num_return_sequences",
    "length_penalty",
    "early_stopping",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "min_p",
    "epsilon_cutoff",
    "eta_cutoff",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "no_repeat_ngram_size",
    "renormalize_logits",
    "bad_words_ids",
    "sequence_bias",
    "suppress_tokens",
    "begin_suppress_tokens",
    "remove_invalid_values",
    "forced_eos_token_id",
    "eos_token_id",
    "pad_token_id",
    "bos_token_id",
    "seed",
    "logprobs",
    "truncate_prompt",
];

#[test]
fn the_fixture_covers_every_option_greedy_beam_and_sampling() {
    // A new field of GenerationConfig must be added above (and to the fixture).
    let serialized = serde_json::to_value(GenerationConfig::default()).unwrap();
    for key in serialized.as_object().unwrap().keys() {
        assert!(ALL_FIELDS.contains(&key.as_str()), "{key} is not listed");
    }
    let fixture = fixture();
    let greedy = |c: &&Case| c.config.get("num_beams").is_none();
    let mut in_greedy = BTreeSet::new();
    let mut in_beam = BTreeSet::new();
    for case in &fixture.cases {
        let set = if greedy(&case) {
            &mut in_greedy
        } else {
            &mut in_beam
        };
        set.extend(case.config.keys().cloned());
    }
    let mut in_sampling = BTreeSet::new();
    for case in &fixture.warped_cases {
        in_sampling.extend(case.config.as_object().unwrap().keys().cloned());
    }
    let sampling_only = [
        "temperature",
        "top_k",
        "top_p",
        "typical_p",
        "min_p",
        "epsilon_cutoff",
        "eta_cutoff",
    ];
    let beam_only = ["num_beams", "length_penalty", "early_stopping"];
    for field in ALL_FIELDS {
        if NOT_IN_TRANSFORMERS.iter().any(|(f, _)| f == field) {
            continue;
        }
        if sampling_only.contains(field) {
            assert!(in_sampling.contains(*field), "{field}: no warped case");
            continue;
        }
        if *field != "do_sample" && *field != "num_return_sequences" && !beam_only.contains(field) {
            assert!(in_greedy.contains(*field), "{field}: no greedy case");
        }
        if *field != "do_sample" {
            assert!(in_beam.contains(*field), "{field}: no beam case");
        }
    }
    assert!(in_sampling.contains("do_sample"));
}

#[test]
fn sampling_chain_keeps_transformers_candidates_and_scores() {
    let fixture = fixture();
    assert!(fixture.warped_cases.len() >= 30, "the full warped fixture");
    let model = common::load("single");
    let vocab = model.config().vocab_size;
    for case in &fixture.warped_cases {
        let config: GenerationConfig = serde_json::from_value(case.config.clone()).unwrap();
        assert!(config.do_sample, "{}", case.name);
        assert!(config.unsupported_fields().is_empty(), "{}", case.name);
        config.validate().unwrap();
        let eos = config
            .eos_token_id
            .as_ref()
            .map_or(vec![model.config().eos_token_id], |e| e.to_vec());
        let prompt_len = case.prompt_ids.len();
        let max_length = prompt_len + config.new_token_budget(prompt_len);
        let mut chain = SamplerChain::from_config(&config, &eos, 7, 1);
        for (k, step) in case.steps.iter().enumerate() {
            let tokens: Vec<u32> = case
                .prompt_ids
                .iter()
                .chain(&step.generated)
                .copied()
                .collect();
            let logits = model.next_token_logits(&tokens).unwrap();
            let context = SamplerContext {
                tokens: &tokens,
                prompt_len,
                max_length,
                vocab_size: vocab,
            };
            // Everything before the selector: the selector (a seeded draw) changes no logit.
            chain.candidates_mut().reset(&logits);
            chain.apply(&context).unwrap();
            let mut ours: Vec<(u32, f32)> = chain
                .candidates()
                .items()
                .iter()
                .filter(|c| c.logit > f32::NEG_INFINITY)
                .map(|c| (c.id, c.logit))
                .collect();
            ours.sort_by_key(|&(id, _)| id);
            let ids = |list: &[(u32, f32)]| list.iter().map(|c| c.0).collect::<Vec<_>>();
            assert_eq!(
                ids(&ours),
                ids(&step.kept),
                "{} step {k}: kept tokens (chain {:?})",
                case.name,
                chain.names()
            );
            for (&(id, a), &(_, b)) in ours.iter().zip(&step.kept) {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                    "{} step {k}: token {id}: gptrt {a} vs transformers {b}",
                    case.name
                );
            }
        }
    }
}

#[test]
fn every_option_builds_its_link_in_transformers_order() {
    let config: GenerationConfig = serde_json::from_value(serde_json::json!({
        "do_sample": true, "sequence_bias": [[[5], 1.0]], "repetition_penalty": 1.2,
        "presence_penalty": 0.5, "no_repeat_ngram_size": 2, "bad_words_ids": [[7]],
        "min_length": 3, "min_new_tokens": 2, "forced_eos_token_id": 1,
        "remove_invalid_values": true, "suppress_tokens": [3], "begin_suppress_tokens": [4],
        "temperature": 0.9, "top_k": 10, "top_p": 0.9, "min_p": 0.1, "typical_p": 0.9,
        "epsilon_cutoff": 0.01, "eta_cutoff": 0.01, "renormalize_logits": true
    }))
    .unwrap();
    // models/fixtures/processors/ORDER.md, with gptrt's presence/frequency penalty after the
    // repetition penalty.
    let processors = [
        "sequence_bias",
        "repetition_penalty",
        "presence_frequency_penalty",
        "no_repeat_ngram_size",
        "bad_words_ids",
        "min_length",
        "min_new_tokens",
        "forced_eos_token_id",
        "remove_invalid_values",
        "suppress_tokens",
        "begin_suppress_tokens",
    ];
    let warpers = [
        "temperature",
        "top_k",
        "top_p",
        "min_p",
        "typical_p",
        "epsilon_cutoff",
        "eta_cutoff",
    ];
    let sampling = SamplerChain::from_config(&config, &[0], 1, 1);
    let expected: Vec<&str> = processors
        .iter()
        .chain(&warpers)
        .chain(&["renormalize_logits", "dist"])
        .copied()
        .collect();
    assert_eq!(sampling.names(), expected);

    let greedy_config = GenerationConfig {
        do_sample: false,
        ..config
    };
    let greedy = SamplerChain::from_config(&greedy_config, &[0], 1, 1);
    let expected: Vec<&str> = processors
        .iter()
        .chain(&["renormalize_logits", "greedy"])
        .copied()
        .collect();
    assert_eq!(greedy.names(), expected);
    // What beam search runs on log-probabilities: the same links without the selector.
    let beam = SamplerChain::without_selector(&greedy_config, &[0], 1);
    assert_eq!(beam.names(), expected[..expected.len() - 1]);
}

/// OpenAI: `logit -= presence * [count > 0] + frequency * count` over the generated tokens only.
#[test]
fn presence_frequency_penalty_follows_openai_rule() {
    let config = GenerationConfig {
        presence_penalty: 0.75,
        frequency_penalty: 0.5,
        ..Default::default()
    };
    let vocab = 8;
    let logits: Vec<f32> = (0..vocab).map(|i| i as f32 * 0.25 - 1.0).collect();
    // prompt [2, 3, 3], generated [3, 5, 5, 5, 1]
    let tokens = [2, 3, 3, 3, 5, 5, 5, 1];
    let context = SamplerContext {
        tokens: &tokens,
        prompt_len: 3,
        max_length: 20,
        vocab_size: vocab,
    };
    let counts = [0, 1, 0, 1, 0, 3, 0, 0];
    for do_sample in [false, true] {
        let config = GenerationConfig {
            do_sample,
            top_k: 0,
            ..config.clone()
        };
        let mut chain = SamplerChain::without_selector(&config, &[7], 1);
        chain.candidates_mut().reset(&logits);
        chain.apply(&context).unwrap();
        let out = chain.candidates().to_logits(vocab);
        for id in 0..vocab {
            let n = counts[id] as f32;
            let presence = if n > 0.0 { 0.75 } else { 0.0 };
            let expected = logits[id] - presence - 0.5 * n;
            assert!(
                (out[id] - expected).abs() < 1e-6,
                "do_sample {do_sample}: token {id}: {} vs {expected}",
                out[id]
            );
        }
    }
}

/// With a large presence penalty no generated token comes twice, greedy or beam; without it the
/// tiny model's greedy and beam continuations repeat tokens (so the test can fail).
#[test]
fn presence_and_frequency_penalties_reach_greedy_and_beam_search() {
    let model = common::load("single");
    let prompt = common::reference().cases[0].prompt_ids.clone();
    let repeats = |ids: &[u32]| ids.len() - ids.iter().collect::<BTreeSet<_>>().len();
    let beam = GenerationConfig {
        num_beams: 3,
        num_return_sequences: 2,
        ..common::greedy(20)
    };
    for base in [common::greedy(20), beam] {
        let plain = model
            .generate_ids(vec![prompt.clone()], &base, &mut |_| true)
            .unwrap();
        assert!(plain.iter().any(|g| repeats(&g.token_ids) > 0));
        for (presence, frequency) in [(100.0, 0.0), (0.0, 100.0)] {
            let config = GenerationConfig {
                presence_penalty: presence,
                frequency_penalty: frequency,
                ..base.clone()
            };
            let results = model
                .generate_ids(vec![prompt.clone()], &config, &mut |_| true)
                .unwrap();
            assert_eq!(results.len(), plain.len());
            for g in &results {
                assert_eq!(repeats(&g.token_ids), 0, "{presence}/{frequency}: {g:?}");
            }
        }
    }
}
