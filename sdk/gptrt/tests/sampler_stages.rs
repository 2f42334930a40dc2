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
    ban_library_with(if abi_1_1 { "BAN_ABI_1_1" } else { "" })
}

/// tests/plugins/ban.c with one `-D` switch (none when empty).
fn ban_library_with(define: &str) -> PathBuf {
    let tag = if define.is_empty() { "plain" } else { define };
    let out = std::env::temp_dir().join(format!("gptrt-ban-{}-{tag}.so", std::process::id()));
    let defines: Vec<String> = [define]
        .iter()
        .filter(|d| !d.is_empty())
        .map(|d| d.to_string())
        .collect();
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

/// A link that only has a name, to see where each stage puts it.
struct Named(&'static str);

impl gptrt::Sampler for Named {
    fn name(&self) -> &str {
        self.0
    }
    fn apply(
        &mut self,
        _candidates: &mut gptrt::Candidates,
        _context: &gptrt::SamplerContext<'_>,
    ) -> gptrt::Result<()> {
        Ok(())
    }
}

#[test]
fn each_stage_has_its_place_in_a_chain_built_from_a_config() {
    let config = GenerationConfig {
        do_sample: true,
        repetition_penalty: 1.2,
        temperature: 0.8,
        top_k: 50,
        top_p: 0.95,
        ..GenerationConfig::default()
    };
    let mut chain = gptrt::SamplerChain::from_config(&config, &[50256], 1, 1);
    let before = chain.names().join(" ");
    chain.insert_at_stage(Box::new(Named("sel")), SamplerStage::Selector);
    chain.insert_at_stage(Box::new(Named("warp")), SamplerStage::Warper);
    chain.insert_at_stage(Box::new(Named("proc1")), SamplerStage::Processor);
    chain.insert_at_stage(Box::new(Named("proc2")), SamplerStage::Processor);
    let names = chain.names();
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert!(at("proc1") < at("proc2"), "{names:?} (from {before})");
    assert!(
        names[..at("proc1")]
            .iter()
            .all(|n| !n.contains("top") && !n.contains("emperature")),
        "{names:?}"
    );
    assert!(
        names[at("proc2") + 1..at("warp")].len() >= 3,
        "the warpers follow the processors: {names:?}"
    );
    // The selector replaced the built-in draw and ends the chain.
    assert_eq!(names.last(), Some(&"sel"), "{names:?}");
    assert_eq!(at("warp") + 1, at("sel"), "{names:?}");
    assert_eq!(
        names.len(),
        before.split(' ').count() + 3,
        "{names:?} (from {before})"
    );
}

#[test]
fn a_bad_stage_or_a_vtable_without_its_stage_is_refused_by_name() {
    for (define, expected) in [
        ("BAN_BAD_STAGE", "`stage` is 7"),
        ("BAN_SHORT_VTABLE", "struct_size"),
    ] {
        let error = gptrt::plugin::load_library(&ban_library_with(define), None)
            .err()
            .unwrap_or_else(|| panic!("{define} loaded"))
            .to_string();
        assert!(
            error.contains("org.gptrt.test.ban") && error.contains(expected),
            "{define}: {error}"
        );
    }
}
