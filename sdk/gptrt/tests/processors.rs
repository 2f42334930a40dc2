//! Every built-in processor equals transformers' own class on the same logits (fixtures written by
//! models/make_sampler_fixtures.py with transformers 4.57.6), within 1e-5.

mod common;

use gptrt::sampling::*;
use gptrt::{GenerationConfig, Sampler};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Fixture {
    vocab_size: usize,
    input_ids: Vec<u32>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    processor: String,
    params: Value,
    input: String,
    expected: String,
    input_ids: Option<Vec<u32>>,
    prompt_length: Option<usize>,
    #[serde(default)]
    tie_sensitive: bool,
}

fn dir() -> std::path::PathBuf {
    common::fixtures().join("processors")
}

fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(dir().join(name)).unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn fixture() -> Fixture {
    serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap()).unwrap()
}

fn f(params: &Value, key: &str) -> f32 {
    params[key]
        .as_f64()
        .unwrap_or_else(|| panic!("param {key}")) as f32
}

fn u(params: &Value, key: &str) -> usize {
    params[key]
        .as_u64()
        .unwrap_or_else(|| panic!("param {key}")) as usize
}

fn keep(params: &Value) -> usize {
    params
        .get("min_tokens_to_keep")
        .and_then(Value::as_u64)
        .unwrap_or(1) as usize
}

fn ids(value: &Value) -> Vec<u32> {
    match value {
        Value::Array(list) => list.iter().map(|v| v.as_u64().unwrap() as u32).collect(),
        v => vec![v.as_u64().unwrap() as u32],
    }
}

/// The chain for one fixture case: one built-in sampler built straight from transformers' class
/// parameters, or (for `chain`) the chain built from a GenerationConfig.
fn chain_for(case: &Case) -> SamplerChain {
    let p = &case.params;
    let mut chain = SamplerChain::new();
    let one: Box<dyn Sampler> = match case.processor.as_str() {
        "temperature" => Box::new(Temperature(f(p, "temperature"))),
        "top_k" => Box::new(TopK {
            k: u(p, "top_k"),
            min_keep: keep(p),
        }),
        "top_p" => Box::new(TopP {
            p: f(p, "top_p"),
            min_keep: keep(p),
        }),
        "typical_p" => Box::new(Typical {
            mass: f(p, "typical_p"),
            min_keep: keep(p),
        }),
        "min_p" => Box::new(MinP {
            min_p: f(p, "min_p"),
            min_keep: keep(p),
        }),
        "epsilon_cutoff" => Box::new(EpsilonCutoff {
            epsilon: f(p, "epsilon_cutoff"),
            min_keep: keep(p),
        }),
        "eta_cutoff" => Box::new(EtaCutoff {
            epsilon: f(p, "eta_cutoff"),
            min_keep: keep(p),
        }),
        "repetition_penalty" => Box::new(RepetitionPenalty::new(f(p, "repetition_penalty"))),
        "no_repeat_ngram_size" => Box::new(NoRepeatNgram {
            size: u(p, "no_repeat_ngram_size"),
        }),
        "suppress_tokens" => Box::new(SuppressTokens {
            ids: ids(&p["suppress_tokens"]),
        }),
        "renormalize_logits" => Box::new(LogitNormalization),
        "sequence_bias" => Box::new(SequenceBias::new(
            serde_json::from_value(p["sequence_bias"].clone()).unwrap(),
        )),
        "bad_words_ids" => {
            let bad: Vec<Vec<u32>> = serde_json::from_value(p["bad_words_ids"].clone()).unwrap();
            Box::new(SequenceBias::bad_words(&bad, &ids(&p["eos_token_id"])))
        }
        "min_new_tokens" => Box::new(MinLength {
            min: u(p, "min_new_tokens"),
            count_prompt: false,
            eos: ids(&p["eos_token_id"]),
        }),
        "min_length" => Box::new(MinLength {
            min: u(p, "min_length"),
            count_prompt: true,
            eos: ids(&p["eos_token_id"]),
        }),
        "forced_eos" => Box::new(ForcedEos {
            eos: ids(&p["eos_token_id"]),
        }),
        "chain" => {
            let config: GenerationConfig = serde_json::from_value(p.clone()).unwrap();
            let eos = config
                .eos_token_id
                .as_ref()
                .map(|e| e.to_vec())
                .unwrap_or_default();
            // transformers keeps `len(eos) + 1` tokens in every warper when beams sample.
            let min_keep = if config.num_beams > 1 {
                eos.len().max(1) + 1
            } else {
                1
            };
            chain.push_processors(&config, &eos);
            if config.do_sample {
                chain.push_warpers(&config, min_keep);
            }
            return chain;
        }
        other => panic!("fixture names an unknown processor {other}"),
    };
    chain.push_boxed(one);
    chain
}

fn assert_close(case: &Case, actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len(), "{}", case.name);
    if case.tie_sensitive {
        // Which of several tied tokens survives depends on torch's unstable sort: compare the
        // surviving values as multisets.
        let mut a: Vec<f32> = actual.iter().copied().filter(|v| v.is_finite()).collect();
        let mut e: Vec<f32> = expected.iter().copied().filter(|v| v.is_finite()).collect();
        a.sort_by(f32::total_cmp);
        e.sort_by(f32::total_cmp);
        assert_eq!(a.len(), e.len(), "{}: kept count", case.name);
        for (x, y) in a.iter().zip(&e) {
            assert!((x - y).abs() <= 1e-5, "{}: {x} vs {y}", case.name);
        }
        return;
    }
    for (token, (x, y)) in actual.iter().zip(expected).enumerate() {
        let same = if y.is_finite() {
            (x - y).abs() <= 1e-5 * y.abs().max(1.0)
        } else {
            x == y
        };
        assert!(
            same,
            "{}: token {token}: gptrt {x} vs transformers {y}",
            case.name
        );
    }
}

#[test]
fn every_processor_equals_transformers() {
    let fixture = fixture();
    assert!(
        fixture.cases.len() >= 100,
        "expected the full processor fixture"
    );
    let mut names = std::collections::BTreeSet::new();
    for case in &fixture.cases {
        let input = read_f32(&case.input);
        let expected = read_f32(&case.expected);
        let tokens = case
            .input_ids
            .clone()
            .unwrap_or_else(|| fixture.input_ids.clone());
        let prompt_len = case
            .prompt_length
            .or(case
                .params
                .get("prompt_length")
                .and_then(Value::as_u64)
                .map(|v| v as usize))
            .unwrap_or(0);
        let max_length = case
            .params
            .get("max_length")
            .and_then(Value::as_u64)
            .map_or(usize::MAX, |v| v as usize);
        let mut chain = chain_for(case);
        chain.candidates_mut().reset(&input);
        let context = SamplerContext {
            tokens: &tokens,
            prompt_len,
            max_length,
            vocab_size: 1000,
        };
        chain
            .apply(&context)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let actual = chain.candidates().to_logits(fixture.vocab_size);
        assert_close(case, &actual, &expected);
        names.insert(case.processor.clone());
    }
    for required in [
        "temperature",
        "top_k",
        "top_p",
        "typical_p",
        "min_p",
        "epsilon_cutoff",
        "eta_cutoff",
        "repetition_penalty",
        "no_repeat_ngram_size",
        "bad_words_ids",
        "sequence_bias",
        "suppress_tokens",
        "min_new_tokens",
        "forced_eos",
        "chain",
    ] {
        assert!(names.contains(required), "no fixture for {required}");
    }
}

#[test]
fn presence_and_frequency_penalties_follow_openai() {
    // OpenAI: logit -= presence * [count > 0] + frequency * count, over generated tokens only.
    let logits = vec![1.0f32; 6];
    let tokens = [5, 1, 2, 2, 3, 2]; // prompt [5], generated [1, 2, 2, 3, 2]
    let mut chain = SamplerChain::new();
    chain.push(PresenceFrequencyPenalty::new(0.5, 0.25));
    chain.candidates_mut().reset(&logits);
    chain
        .apply(&SamplerContext {
            tokens: &tokens,
            prompt_len: 1,
            max_length: 100,
            vocab_size: 1000,
        })
        .unwrap();
    let out = chain.candidates().to_logits(6);
    assert_eq!(out, vec![1.0, 1.0 - 0.75, 1.0 - 1.25, 1.0 - 0.75, 1.0, 1.0]);
}

#[test]
fn begin_suppress_tokens_only_bans_the_first_generated_token() {
    let mut chain = SamplerChain::new();
    chain.push(SuppressTokensAtBegin { ids: vec![2] });
    let logits = [0.5f32, 1.0, 3.0];
    for (tokens, banned) in [(&[7u32, 8][..], true), (&[7, 8, 1][..], false)] {
        chain.candidates_mut().reset(&logits);
        chain
            .apply(&SamplerContext {
                tokens,
                prompt_len: 2,
                max_length: 10,
                vocab_size: 1000,
            })
            .unwrap();
        assert_eq!(
            chain.candidates().to_logits(3)[2] == f32::NEG_INFINITY,
            banned
        );
    }
}

#[test]
fn invalid_values_are_replaced_before_sampling() {
    let mut chain = SamplerChain::new();
    chain.push(RemoveInvalidValues).push(Greedy);
    let token = chain
        .sample(
            &[f32::NAN, 1.0, f32::INFINITY, f32::NEG_INFINITY],
            &SamplerContext {
                tokens: &[0],
                prompt_len: 1,
                max_length: 10,
                vocab_size: 1000,
            },
        )
        .unwrap();
    assert_eq!(token, 2);
    assert_eq!(
        chain.candidates().to_logits(4),
        vec![0.0, 1.0, f32::MAX, f32::MIN]
    );
}

#[test]
fn greedy_picks_the_lowest_id_among_the_highest_logits_on_both_paths() {
    let context = SamplerContext {
        tokens: &[0],
        prompt_len: 1,
        max_length: 10,
        vocab_size: 1000,
    };
    // `allowed`: false when no logit is above -inf; greedy itself still selects as torch.argmax
    // (the first), but the chain refuses that banned token (tests/banned_tokens.rs).
    let cases: [(&[f32], u32, bool); 6] = [
        (&[1.0, 3.0, 2.0, 3.0], 1, true),
        (&[3.0, 1.0, 3.0], 0, true),
        (&[f32::NAN, 1.0, 2.0, f32::NAN], 2, true),
        (&[f32::NEG_INFINITY, f32::NEG_INFINITY], 0, false),
        (&[f32::NAN, f32::NAN], 0, false),
        (&[-5.0], 0, true),
    ];
    for (logits, expected, allowed) in cases {
        // A chain of greedy alone picks from the raw logits, without building candidates.
        let mut alone = SamplerChain::new();
        alone.push(Greedy);
        let chosen = alone.sample(logits, &context);
        assert_eq!(chosen.ok(), allowed.then_some(expected), "{logits:?}");
        assert!(alone.candidates().is_empty());
        // Behind another link, greedy works on candidates: in id order, then reordered.
        let mut behind = SamplerChain::new();
        behind.push(Temperature(1.0)).push(Greedy);
        let chosen = behind.sample(logits, &context);
        assert_eq!(chosen.ok(), allowed.then_some(expected), "{logits:?}");
        let mut reversed: Vec<Candidate> = logits
            .iter()
            .enumerate()
            .rev()
            .map(|(id, &logit)| Candidate {
                id: id as u32,
                logit,
                p: 0.0,
            })
            .collect();
        *behind.candidates_mut().items_mut() = std::mem::take(&mut reversed);
        Greedy.apply(behind.candidates_mut(), &context).unwrap();
        assert_eq!(behind.candidates().selected(), Some(expected), "{logits:?}");
    }
    let error = {
        let mut alone = SamplerChain::new();
        alone.push(Greedy);
        alone.sample(&[], &context).unwrap_err().to_string()
    };
    assert!(
        error.contains("greedy") && error.contains("no logits"),
        "{error}"
    );
}
