//! Sampler stages: a plugin's declared stage decides where it joins the chain, a user may move
//! it, and plugins built for ABI 1.1 keep today's place (after top-k/top-p, before the draw).

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use gptrt::plugin::{add_samplers, SamplerSpec};
use gptrt::{GenerationConfig, Generator, Model, PluginHost, SamplerStage};

/// The token the fixture bans: `,`, the demo model's most frequent choice after this prompt.
const BANNED: u32 = 11;
const PROMPT: &str = "The old man said";
const SEEDS: u64 = 20;

/// tests/plugins/ban.c built as ABI 1.2 (declares the processor stage) or as ABI 1.1.
fn ban_library(abi_1_1: bool) -> PathBuf {
    let tag = if abi_1_1 { "1.1" } else { "1.2" };
    let out = std::env::temp_dir().join(format!("gptrt-ban-{}-{tag}.so", std::process::id()));
    let defines: Vec<String> = if abi_1_1 {
        vec!["BAN_ABI_1_1".to_string()]
    } else {
        Vec::new()
    };
    gptrt_plugin_xtc_c::compile_c_plugin(
        &common::repo().join("tests/plugins/ban.c"),
        &out,
        &defines,
    )
    .unwrap_or_else(|e| panic!("the ban fixture: {e}"));
    out
}

fn demo() -> (Arc<Model>, GenerationConfig) {
    let model = Arc::new(Model::load(common::repo().join("models/demo")).unwrap());
    let config = model.generation_config().clone();
    assert!(config.do_sample && config.top_k == 50 && config.top_p < 1.0);
    (model, config)
}

/// Generate with the demo's default sampling and `spec` over seeds 0..SEEDS: how many times the
/// banned token came out, and how many generations failed.
fn run_seeds(host: &PluginHost, spec: &SamplerSpec) -> (usize, usize) {
    let (model, config) = demo();
    let prompt = model.tokenizer().encode(PROMPT).unwrap();
    let (mut emitted, mut failed) = (0, 0);
    for seed in 0..SEEDS {
        // 24 new tokens (of the demo's 60) keep the debug-build test short.
        let config = GenerationConfig {
            seed: Some(seed),
            max_new_tokens: Some(24),
            ..config.clone()
        };
        let mut generator = Generator::new(&model, vec![prompt.clone()], &config).unwrap();
        add_samplers(host, std::slice::from_ref(spec), &model, &mut generator).unwrap();
        match generator.run(&mut |_| true) {
            Ok(()) => {
                let out = generator.into_generations().remove(0);
                emitted += out.token_ids.iter().filter(|&&t| t == BANNED).count();
            }
            Err(_) => failed += 1,
        }
    }
    (emitted, failed)
}

fn host_with(library: &std::path::Path) -> PluginHost {
    let mut host = PluginHost::new();
    host.load(library).unwrap();
    host
}

const CONFIG: &str = r#"{"token": 11}"#;

#[test]
fn a_processor_stage_ban_is_never_emitted_with_the_demo_defaults() {
    let host = host_with(&ban_library(false));
    let plugin = host.find("org.gptrt.test.ban").unwrap();
    assert_eq!(plugin.abi, (1, 2));
    assert_eq!(plugin.stage, Some(SamplerStage::Processor));
    let spec = SamplerSpec::new("org.gptrt.test.ban", Some(CONFIG.to_string()));
    assert_eq!(run_seeds(&host, &spec), (0, 0));
}

#[test]
fn an_abi_1_1_plugin_loads_and_keeps_todays_place_after_top_p() {
    let host = host_with(&ban_library(true));
    let plugin = host.find("org.gptrt.test.ban").unwrap();
    assert_eq!(plugin.abi, (1, 1));
    assert_eq!(plugin.stage, Some(SamplerStage::Warper));
    // After top-k/top-p, a nucleus that holds only the banned token leaves nothing to draw: the
    // old place lets the ban fail (or the token through).
    let spec = SamplerSpec::new("org.gptrt.test.ban", Some(CONFIG.to_string()));
    let (emitted, failed) = run_seeds(&host, &spec);
    eprintln!("ABI 1.1 ban after top-p: emitted {emitted}, failed generations {failed}");
    assert!(emitted + failed > 0, "the ban held at the warper stage");
    // The user moves it to the processor stage: never emitted, never failing.
    let moved = SamplerSpec::parse(&format!("org.gptrt.test.ban:processor:{CONFIG}"));
    assert_eq!(moved.stage, Some(SamplerStage::Processor));
    assert_eq!(run_seeds(&host, &moved), (0, 0));
}

#[test]
fn sampler_specs_parse_an_optional_stage() {
    let spec = SamplerSpec::parse("org.x.y:selector");
    assert_eq!(
        (spec.stage, spec.config),
        (Some(SamplerStage::Selector), None)
    );
    let spec = SamplerSpec::parse(r#"org.x.y:{"a":1}"#);
    assert_eq!(
        (spec.stage, spec.config.as_deref()),
        (None, Some(r#"{"a":1}"#))
    );
    let spec = SamplerSpec::parse(r#"org.x.y:warper:{"a":"b:c"}"#);
    assert_eq!(
        (spec.stage, spec.config.as_deref()),
        (Some(SamplerStage::Warper), Some(r#"{"a":"b:c"}"#))
    );
}
