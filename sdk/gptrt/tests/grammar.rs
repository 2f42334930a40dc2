//! The grammar plugin (plugins/grammar, `org.gptrt.grammar`): output that always matches its JSON
//! Schema, regex or Lark grammar with the demo model's default sampling, its own stop reasons, a
//! bad schema reported before generation, and batched rows each constrained on their own.
//!
//! `GPTRT_GRAMMAR_SEEDS` (default 8) and `GPTRT_GRAMMAR_MODEL` (default models/demo) scale the
//! validity run up for benchmarks/grammar.sh, which also reads the mask cost it prints.

mod common;
mod grammar_support;

use std::path::PathBuf;
use std::sync::Arc;

use gptrt::plugin::{add_samplers, SamplerSpec};
use gptrt::{GenerationConfig, Generator, Model, PluginHost, StopReason};
use serde_json::{json, Value};

const ID: &str = "org.gptrt.grammar";

/// The plugin's cdylib.
fn grammar_library() -> PathBuf {
    common::plugin_library("gptrt-plugin-grammar")
}

fn host() -> PluginHost {
    let mut host = PluginHost::new();
    host.load(&grammar_library()).unwrap();
    host
}

fn model() -> Arc<Model> {
    let dir = std::env::var_os("GPTRT_GRAMMAR_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo().join("models/demo"));
    Arc::new(Model::load(dir).unwrap())
}

/// Generate from each prompt with the model's default sampling and `config` for the grammar.
fn generate(
    model: &Arc<Model>,
    host: &PluginHost,
    prompts: &[&str],
    grammar: Option<&Value>,
    generation: &GenerationConfig,
) -> Vec<gptrt::Generation> {
    let ids = prompts
        .iter()
        .map(|p| model.tokenizer().encode(p).unwrap())
        .collect();
    let mut generator = Generator::new(model, ids, generation).unwrap();
    if let Some(grammar) = grammar {
        let spec = SamplerSpec::new(ID, Some(grammar.to_string()));
        add_samplers(host, &[spec], model, &mut generator).unwrap();
    }
    generator.run(&mut |_| true).unwrap();
    generator.into_generations()
}

/// The demo model's default sampling (models/demo/generation_config.json: top-k 50, top-p 0.95,
/// temperature 0.8, repetition penalty 1.2) with `seed`, whichever model runs.
fn seeded(_model: &Model, seed: u64) -> GenerationConfig {
    let demo = common::repo().join("models/demo/generation_config.json");
    GenerationConfig {
        seed: Some(seed),
        ..GenerationConfig::from_file(&demo).unwrap()
    }
}

#[test]
fn every_output_matches_its_schema_with_the_demo_defaults() {
    let seeds: u64 = std::env::var("GPTRT_GRAMMAR_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    // The baseline runs (no grammar) only in benchmark runs, to keep the debug test short.
    let measure = std::env::var_os("GPTRT_GRAMMAR_SEEDS").is_some();
    let (model, host) = (model(), host());
    assert!(seeded(&model, 0).do_sample);
    let (mut valid, mut total) = (0, 0);
    let (mut masked, mut plain) = ([0.0f64; 2], [0.0f64; 2]); // [chain seconds, decode seconds]
    let (mut masked_tokens, mut plain_tokens) = (0, 0);
    let (mut mask_seconds, mut replayed) = (0.0f64, 0usize);
    for (name, schema) in grammar_support::schemas() {
        for seed in 0..seeds {
            let config = seeded(&model, seed);
            let grammar = json!({ "json_schema": schema });
            let out = generate(&model, &host, &["NPC:"], Some(&grammar), &config).remove(0);
            total += 1;
            let parsed: Value = serde_json::from_str(&out.text).unwrap_or_else(|e| {
                panic!(
                    "{name} seed {seed}: {:?} is not JSON ({e}), stop {}",
                    out.text, out.stop_reason
                )
            });
            if let Some(v) = grammar_support::violation(&schema, &parsed, name) {
                panic!("{name} seed {seed}: {v}");
            }
            assert_eq!(
                out.stop_reason.name(),
                "grammar_complete",
                "{name} seed {seed}"
            );
            valid += 1;
            if measure {
                mask_seconds += replay_mask_cost(&model, &host, &grammar, &out);
                replayed += out.token_ids.len();
            }
            masked[0] += out.stats.sampling_seconds;
            masked[1] += out.stats.decode_seconds;
            masked_tokens += out.stats.decode_tokens;
            if !measure {
                continue;
            }
            // The same generation without the grammar: what the chain costs today.
            let out = generate(&model, &host, &["NPC:"], None, &config).remove(0);
            plain[0] += out.stats.sampling_seconds;
            plain[1] += out.stats.decode_seconds;
            plain_tokens += out.stats.decode_tokens;
        }
    }
    eprintln!("grammar: {valid}/{total} schema-valid");
    if !measure {
        return;
    }
    let per = |s: f64, n: usize| 1e3 * s / n.max(1) as f64;
    let (chain_masked, chain_plain) = (per(masked[0], masked_tokens), per(plain[0], plain_tokens));
    let forward = per(plain[1] - plain[0], plain_tokens);
    let mask = per(mask_seconds, replayed);
    eprintln!(
        "grammar: mask {mask:.3} ms/token (the plugin's apply + accept, {replayed} tokens) = \
         {:.1}% of the decode step's forward pass ({forward:.3} ms/token); whole chain {chain_masked:.3} \
         ms/token with the grammar, {chain_plain:.3} without (the grammar leaves top-k/top-p fewer \
         candidates)",
        100.0 * mask / forward
    );
}

/// The plugin's own time over one generation's tokens: a fresh instance fed the same tokens, each
/// step's `apply` over the full vocabulary (as the processor stage sees it) and `accept` timed.
fn replay_mask_cost(
    model: &Arc<Model>,
    host: &PluginHost,
    grammar: &Value,
    out: &gptrt::Generation,
) -> f64 {
    use gptrt::Sampler;
    let spec = SamplerSpec::new(ID, Some(grammar.to_string()));
    let mut plugin = spec.instantiate(host, model).unwrap();
    let vocab = model.config().vocab_size;
    let logits = vec![0.0f32; vocab];
    let mut candidates = gptrt::Candidates::default();
    let mut tokens = out.prompt_token_ids.clone();
    let mut seconds = 0.0;
    for &token in &out.token_ids {
        candidates.reset(&logits);
        let context = gptrt::SamplerContext {
            tokens: &tokens,
            prompt_len: out.prompt_token_ids.len(),
            max_length: usize::MAX,
            vocab_size: vocab,
        };
        let began = std::time::Instant::now();
        plugin.apply(&mut candidates, &context).unwrap();
        plugin.accept(token);
        seconds += began.elapsed().as_secs_f64();
        tokens.push(token);
    }
    seconds
}

#[test]
fn a_forced_continuation_comes_out_whatever_the_sampling() {
    let (model, host) = (model(), host());
    let grammar = json!({ "regex": "Hello, world[.!]" });
    for seed in 0..3 {
        let out = generate(&model, &host, &["x"], Some(&grammar), &seeded(&model, seed)).remove(0);
        assert!(
            out.text == "Hello, world." || out.text == "Hello, world!",
            "{:?}",
            out.text
        );
        assert_eq!(out.stop_reason, StopReason::Sampler("grammar_complete"));
    }
}

#[test]
fn a_lark_grammar_constrains_and_completes() {
    let (model, host) = (model(), host());
    let grammar =
        json!({ "grammar": "start: (\"yes\" | \"no\") \" because \" /[a-z]{1,8}/ \".\"" });
    let out = generate(&model, &host, &["Q:"], Some(&grammar), &seeded(&model, 1)).remove(0);
    let rest = out
        .text
        .strip_prefix("yes because ")
        .or_else(|| out.text.strip_prefix("no because "))
        .unwrap_or_else(|| panic!("{:?}", out.text));
    let word = rest
        .strip_suffix('.')
        .unwrap_or_else(|| panic!("{:?}", out.text));
    assert!((1..=8).contains(&word.len()) && word.bytes().all(|b| b.is_ascii_lowercase()));
    assert_eq!(out.stop_reason.name(), "grammar_complete");
}

#[test]
fn a_grammar_that_cannot_finish_in_the_budget_says_so() {
    let (model, host) = (model(), host());
    let grammar = json!({ "regex": "[a-z]{40}" });
    let config = GenerationConfig {
        max_new_tokens: Some(4),
        ..seeded(&model, 2)
    };
    let out = generate(&model, &host, &["x"], Some(&grammar), &config).remove(0);
    assert_eq!(out.stop_reason.name(), "grammar_incomplete");
    assert!(out.token_ids.len() < 4, "{:?}", out.token_ids);
    assert!(
        out.text.bytes().all(|b| b.is_ascii_lowercase()),
        "{:?}",
        out.text
    );
}

#[test]
fn a_bad_schema_or_regex_is_an_error_before_generation() {
    let (model, host) = (model(), host());
    for (config, expected) in [
        (json!({"json_schema": {"type": "objekt"}}), "objekt"),
        (json!({"regex": "("}), "unclosed group"),
        (json!({"grammar": "start: missing_rule"}), "missing_rule"),
        (json!({"regex": "a", "grammar": "b"}), "exactly one of"),
    ] {
        let spec = SamplerSpec::new(ID, Some(config.to_string()));
        let error = spec
            .instantiate(&host, &model)
            .err()
            .expect("rejected")
            .to_string();
        assert!(error.contains(ID) && error.contains(expected), "{error}");
    }
}

#[test]
fn batched_rows_are_each_constrained() {
    let (model, host) = (model(), host());
    let (name, schema) = grammar_support::schemas().remove(0);
    let grammar = json!({ "json_schema": schema });
    let prompts = ["The guard:", "A merchant says", "Goblin"];
    let outs = generate(&model, &host, &prompts, Some(&grammar), &seeded(&model, 7));
    assert_eq!(outs.len(), prompts.len());
    for out in outs {
        let parsed: Value = serde_json::from_str(&out.text).unwrap();
        assert_eq!(grammar_support::violation(&schema, &parsed, name), None);
    }
}

#[test]
fn batched_sessions_and_later_turns_are_constrained() {
    use gptrt::{Batcher, Session};
    use std::sync::Mutex;
    let model = model();
    let host: gptrt::SharedPluginHost = Arc::new(Mutex::new(host()));
    let (name, schema) = grammar_support::schemas().remove(0);
    let spec = SamplerSpec::new(ID, Some(json!({ "json_schema": schema }).to_string()));
    let batcher = Batcher::new(model.clone()).unwrap();
    let sessions = [
        Session::new_batched(&batcher),
        Session::new_batched(&batcher),
        Session::new(model.clone()).unwrap(),
    ];
    for session in &sessions {
        session.add_sampler(host.clone(), spec.clone()).unwrap();
    }
    // Two turns each; in the batcher the second session joins a running batch.
    for turn in 0..2 {
        for (i, session) in sessions.iter().enumerate() {
            session
                .start("The guard:", &seeded(&model, 10 * turn + i as u64))
                .unwrap();
        }
        for session in &sessions {
            session.wait().unwrap();
            let out = session.result().unwrap();
            let parsed: Value = serde_json::from_str(&out.text)
                .unwrap_or_else(|e| panic!("turn {turn}: {:?}: {e}", out.text));
            assert_eq!(grammar_support::violation(&schema, &parsed, name), None);
            assert_eq!(out.stop_reason.name(), "grammar_complete");
        }
    }
}
