//! Plugins load from their built shared libraries, change generation as their definitions say,
//! and every misbehaving plugin becomes an error naming it while the session stays usable.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::greedy;
use gptrt::plugin::load_library;
use gptrt::{Allowlist, GenerationConfig, Generator, Model, PluginHost, SamplerChain};

fn mirostat_library() -> PathBuf {
    common::plugin_library("gptrt-plugin-mirostat")
}

fn choice_library() -> PathBuf {
    common::plugin_library("gptrt-plugin-choice")
}

fn xtc_library() -> PathBuf {
    PathBuf::from(gptrt_plugin_xtc_c::LIBRARY_PATH)
}

/// Compile tests/plugins/misbehaving.c with one fault switched on.
fn misbehaving(fault: &str) -> PathBuf {
    misbehaving_with(fault, fault, &[])
}

/// Compile tests/plugins/misbehaving.c with one fault and more `-D` definitions, as `tag`.
fn misbehaving_with(fault: &str, tag: &str, defines: &[String]) -> PathBuf {
    let out =
        std::env::temp_dir().join(format!("gptrt-misbehaving-{}-{tag}.so", std::process::id()));
    let mut all = vec![format!("FAULT_{fault}")];
    all.extend_from_slice(defines);
    let source = common::repo().join("tests/plugins/misbehaving.c");
    gptrt_plugin_xtc_c::compile_c_plugin(&source, &out, &all)
        .unwrap_or_else(|e| panic!("the {fault} fixture: {e}"));
    out
}

fn model() -> Arc<Model> {
    Arc::new(common::load("single"))
}

fn prompt(model: &Model) -> Vec<u32> {
    model.tokenizer().encode("Hello world").unwrap()
}

/// Generate with one plugin sampler before the selector.
fn generate_with(
    model: &Arc<Model>,
    host: &PluginHost,
    id: &str,
    config: Option<&str>,
    generation: &GenerationConfig,
) -> gptrt::Result<gptrt::Generation> {
    let mut generator = Generator::new(model, vec![prompt(model)], generation)?;
    let mut chain =
        SamplerChain::from_config(generation, &[50256], generation.seed.unwrap_or(0), 1);
    chain.insert_before_selector(Box::new(host.sampler(id, config, Some(model.clone()))?));
    generator.set_chain(0, chain)?;
    generator.run(&mut |_| true)?;
    Ok(generator.into_generations().remove(0))
}

#[test]
fn shipped_plugins_describe_themselves() {
    let rust = load_library(&mirostat_library(), None).unwrap();
    let ids: Vec<&str> = rust.plugins.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["org.gptrt.mirostat-v2"]);
    assert_eq!(rust.abi, (1, gptrt_plugin_api::GPTRT_PLUGIN_ABI_MINOR));
    let choice = load_library(&choice_library(), None).unwrap();
    assert_eq!(choice.plugins[0].id, "org.gptrt.choice");
    assert_eq!(choice.plugins[0].kind, gptrt::PluginKind::TaskHead);
    let c = load_library(&xtc_library(), None).unwrap();
    assert_eq!(c.plugins[0].id, "org.gptrt.xtc");
    assert_eq!(c.plugins[0].kind, gptrt::PluginKind::Sampler);
    assert_eq!(c.sha256.len(), 64);
}

#[test]
fn xtc_in_c_removes_the_top_choices() {
    let model = model();
    let mut host = PluginHost::new();
    host.load(&xtc_library()).unwrap();
    let plain = model
        .generate_ids(vec![prompt(&model)], &greedy(8), &mut |_| true)
        .unwrap()
        .remove(0);
    // A threshold of 0 with probability 1 removes every top choice but the least likely: greedy
    // then never picks the model's favourite.
    let out = generate_with(
        &model,
        &host,
        "org.gptrt.xtc",
        Some(r#"{"threshold": 0.0, "probability": 1.0}"#),
        &greedy(8),
    )
    .unwrap();
    assert_eq!(out.token_ids.len(), 8);
    assert_ne!(out.token_ids[0], plain.token_ids[0]);
    // Probability 0 never triggers: output equals plain greedy.
    let off = generate_with(
        &model,
        &host,
        "org.gptrt.xtc",
        Some(r#"{"threshold": 0.1, "probability": 0.0}"#),
        &greedy(8),
    )
    .unwrap();
    assert_eq!(off.token_ids, plain.token_ids);
}

#[test]
fn mirostat_selects_tokens_and_follows_its_target_surprise() {
    let model = model();
    let mut host = PluginHost::new();
    host.load(&mirostat_library()).unwrap();
    let run = |tau: f32, seed: u64| {
        let config = format!(r#"{{"tau": {tau}, "eta": 0.1, "seed": {seed}}}"#);
        generate_with(
            &model,
            &host,
            "org.gptrt.mirostat-v2",
            Some(&config),
            &greedy(24),
        )
        .unwrap()
    };
    let a = run(3.0, 1);
    assert_eq!(a.token_ids, run(3.0, 1).token_ids, "seeded: reproducible");
    let plain = model
        .generate_ids(vec![prompt(&model)], &greedy(24), &mut |_| true)
        .unwrap()
        .remove(0);
    assert_ne!(
        a.token_ids, plain.token_ids,
        "mirostat selects, greedy never runs"
    );
    // A lower target surprise keeps fewer, likelier tokens: the mean surprise of the text under
    // the model follows tau.
    let surprise = |ids: &[u32]| {
        let context = prompt(&model);
        let lps = model.token_logprobs(&context, ids).unwrap();
        -lps.iter().sum::<f32>() / lps.len() as f32 / std::f32::consts::LN_2
    };
    let low: f32 = (0..4)
        .map(|s| surprise(&run(1.0, s).token_ids))
        .sum::<f32>()
        / 4.0;
    let high: f32 = (0..4)
        .map(|s| surprise(&run(8.0, s).token_ids))
        .sum::<f32>()
        / 4.0;
    assert!(
        low < high,
        "mean surprise {low} (tau 1) should be below {high} (tau 8)"
    );
}

#[test]
fn the_choice_task_head_scores_through_the_host_api() {
    let model = model();
    let mut host = PluginHost::new();
    host.load(&choice_library()).unwrap();
    let mut head = host
        .task_head("org.gptrt.choice", None, model.clone())
        .unwrap();
    let out: serde_json::Value = serde_json::from_str(
        &head
            .run(r#"{"prompt": "Hello", "choices": [" world", " there"]}"#)
            .unwrap(),
    )
    .unwrap();
    let context = [50256, 15496];
    let expected: Vec<f64> = [" world", " there"]
        .iter()
        .map(|c| {
            let ids = model.tokenizer().encode(c).unwrap();
            model.score(&context, &ids).unwrap() / ids.len() as f64
        })
        .collect();
    let scores: Vec<f64> = out["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // The head scores every choice from the prompt's KV cache in one batched pass, the reference
    // runs each in full: the same numbers up to float rounding.
    for (a, b) in scores.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-4, "{scores:?} vs {expected:?}");
    }
    let best = if expected[0] >= expected[1] { 0 } else { 1 };
    assert_eq!(out["choice"], best);
    let err = head.run(r#"{"prompt": 3}"#).unwrap_err().to_string();
    assert!(
        err.contains("org.gptrt.choice") && err.contains("prompt"),
        "{err}"
    );
}

fn load_error(path: &Path, allowlist: Option<&Allowlist>) -> String {
    load_library(path, allowlist)
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn misbehaving_libraries_are_refused_with_the_fault_named() {
    let wrong_abi = load_error(&misbehaving("WRONG_ABI"), None);
    assert!(
        wrong_abi.contains("ABI 2.0") && wrong_abi.contains("host's ABI 1.2"),
        "{wrong_abi}"
    );
    assert!(
        load_error(&misbehaving("NO_ENTRY"), None).contains("does not export `gptrt_plugin_entry`")
    );
    let null_slot = load_error(&misbehaving("NULL_SLOT"), None);
    assert!(
        null_slot.contains("org.gptrt.test.misbehaving") && null_slot.contains("`apply` is NULL"),
        "{null_slot}"
    );
    let small = load_error(&misbehaving("SMALL_STRUCT"), None);
    assert!(
        small.contains("struct_size") && small.contains("smaller"),
        "{small}"
    );
    let not_a_library =
        std::env::temp_dir().join(format!("gptrt-not-a-library-{}.so", std::process::id()));
    std::fs::write(&not_a_library, b"not an ELF file").unwrap();
    assert!(load_error(&not_a_library, None).contains("cannot load the library"));
}

#[test]
fn misbehaving_samplers_fail_the_call_not_the_session() {
    let model = model();
    for (fault, needle) in [
        ("BAD_TOKEN", "outside the vocabulary"),
        ("NAN_LOGITS", "NaN logit"),
        ("FAILS", "deliberately broken"),
        ("GROWS", "candidates out of"),
        ("BAD_SELECTION", "selected index"),
    ] {
        let mut host = PluginHost::new();
        host.load(&misbehaving(fault)).unwrap();
        let err = generate_with(
            &model,
            &host,
            "org.gptrt.test.misbehaving",
            None,
            &greedy(4),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("org.gptrt.test.misbehaving") && err.contains(needle),
            "{fault}: {err}"
        );
        // The model and a fresh session still work.
        assert_eq!(
            model
                .generate("Hello world", &greedy(3))
                .unwrap()
                .token_ids
                .len(),
            3
        );
    }
}

#[test]
fn a_panicking_rust_plugin_is_contained() {
    let model = model();
    let library = common::plugin_library("gptrt-test-plugin-panicking");
    let mut host = PluginHost::new();
    host.load(&library).unwrap();
    let err = generate_with(&model, &host, "org.gptrt.test.panicking", None, &greedy(6))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("org.gptrt.test.panicking") && err.contains("deliberate panic on call 3"),
        "{err}"
    );
    let refused = host
        .sampler("org.gptrt.test.refusing", Some("{\"x\": 1}"), None)
        .err()
        .expect("create fails")
        .to_string();
    assert!(
        refused.contains("org.gptrt.test.refusing") && refused.contains("not acceptable"),
        "{refused}"
    );
    assert_eq!(
        model
            .generate("Hello world", &greedy(3))
            .unwrap()
            .token_ids
            .len(),
        3
    );
}

#[test]
fn the_allowlist_pins_each_library() {
    let library = xtc_library();
    let hash = load_library(&library, None).unwrap().sha256;
    let dir = std::env::temp_dir().join(format!("gptrt-allowlist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("allowlist.txt");
    let name = library.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::write(&file, format!("# pinned plugins\n{hash}  {name}\n")).unwrap();
    let allowlist = Allowlist::from_file(&file).unwrap();
    assert!(load_library(&library, Some(&allowlist)).is_ok());

    let wrong = "0".repeat(64);
    std::fs::write(&file, format!("{wrong}  {name}\n")).unwrap();
    let err = load_error(&library, Some(&Allowlist::from_file(&file).unwrap()));
    assert!(
        err.contains("SHA-256 mismatch") && err.contains(&hash) && err.contains(&name),
        "{err}"
    );

    let err = load_error(
        &mirostat_library(),
        Some(&Allowlist::from_file(&file).unwrap()),
    );
    assert!(err.contains("not in the allowlist"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_ids_and_kinds_are_named() {
    let mut host = PluginHost::new();
    host.load(&mirostat_library()).unwrap();
    host.load(&choice_library()).unwrap();
    let err = host
        .sampler("org.example.nope", None, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("org.example.nope") && err.contains("org.gptrt.mirostat-v2"),
        "{err}"
    );
    let err = host
        .sampler("org.gptrt.choice", None, None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("task_head, not a sampler"), "{err}");
    let err = host.load(&mirostat_library()).err().unwrap().to_string();
    assert!(err.contains("already provided"), "{err}");
}

#[test]
fn max_time_stops_the_generation_right_after_a_slow_plugin_call() {
    let model = model();
    let mut host = PluginHost::new();
    host.load(&misbehaving("SLOW")).unwrap();
    // Each apply takes 300 ms, three times max_time: the first call already runs past it.
    let config = GenerationConfig {
        max_time: Some(0.1),
        ..greedy(20)
    };
    let out = generate_with(&model, &host, "org.gptrt.test.misbehaving", None, &config).unwrap();
    assert_eq!(out.stop_reason, gptrt::StopReason::MaxTime);
    assert_eq!(
        out.token_ids.len(),
        1,
        "no forward pass and no plugin call after the one that ran out of time"
    );
}

/// A sampler plugin stuck in `apply` until `release` exists; each call appends a line to
/// `calls`.
struct Stuck {
    library: PathBuf,
    calls: PathBuf,
    release: PathBuf,
}

fn stuck(tag: &str) -> Stuck {
    let dir = std::env::temp_dir();
    let calls = dir.join(format!("gptrt-stuck-{}-{tag}.calls", std::process::id()));
    let release = dir.join(format!("gptrt-stuck-{}-{tag}.release", std::process::id()));
    let _ = std::fs::remove_file(&calls);
    let _ = std::fs::remove_file(&release);
    let library = misbehaving_with(
        "BLOCKS",
        &format!("BLOCKS-{tag}"),
        &[
            format!("CALLS_FILE=\"{}\"", calls.display()),
            format!("RELEASE_FILE=\"{}\"", release.display()),
        ],
    );
    Stuck {
        library,
        calls,
        release,
    }
}

impl Stuck {
    fn count_calls(&self) -> usize {
        std::fs::read_to_string(&self.calls)
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }
}

/// Generate with `instances` copies of the stuck sampler in the chain; cancel once the first
/// call is in progress, then let it return.
fn cancel_while_stuck(model: &Arc<Model>, stuck: &Stuck, instances: usize) -> gptrt::Generation {
    let mut host = PluginHost::new();
    host.load(&stuck.library).unwrap();
    let config = greedy(20);
    let mut generator = Generator::new(model, vec![prompt(model)], &config).unwrap();
    let mut chain = SamplerChain::from_config(&config, &[50256], 0, 1);
    for _ in 0..instances {
        chain.insert_before_selector(Box::new(
            host.sampler("org.gptrt.test.misbehaving", None, None)
                .unwrap(),
        ));
    }
    generator.set_chain(0, chain).unwrap();
    let cancel = generator.cancel_token();
    let canceller = std::thread::spawn({
        let (calls, release) = (stuck.calls.clone(), stuck.release.clone());
        move || {
            while !calls.exists() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            cancel.cancel();
            std::fs::write(release, b"").unwrap();
        }
    });
    generator.run(&mut |_| true).unwrap();
    canceller.join().unwrap();
    generator.into_generations().remove(0)
}

#[test]
fn a_cancel_during_a_plugin_call_stops_the_generation_right_after_it() {
    let model = model();
    let stuck = stuck("one");
    let out = cancel_while_stuck(&model, &stuck, 1);
    assert_eq!(out.stop_reason, gptrt::StopReason::Cancelled);
    assert_eq!(
        out.token_ids.len(),
        1,
        "the token of the call in progress, no more"
    );
    assert_eq!(stuck.count_calls(), 1);
}

#[test]
fn no_plugin_is_called_once_the_generation_is_cancelled() {
    let model = model();
    let stuck = stuck("two");
    // Two plugin links: the second is never called, and the token the chain could not finish is
    // not emitted.
    let out = cancel_while_stuck(&model, &stuck, 2);
    assert_eq!(out.stop_reason, gptrt::StopReason::Cancelled);
    assert_eq!(stuck.count_calls(), 1, "the second plugin was called");
    assert!(out.token_ids.is_empty(), "{:?}", out.token_ids);
    assert_eq!(out.text, "");
    // The session stays usable.
    assert_eq!(
        model
            .generate("Hello world", &greedy(3))
            .unwrap()
            .token_ids
            .len(),
        3
    );
}
