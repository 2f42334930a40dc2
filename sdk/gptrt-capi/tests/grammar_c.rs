//! Constrained output from C (tests/c/grammar_test.c): the grammar plugin by named options and by
//! id at a chosen stage, and what a bad schema, kind or stage returns.

use serde_json::Value;

mod common;

use common::*;

#[test]
fn constrained_output_is_reachable_from_c() {
    let plugin = plugin_library("gptrt-plugin-grammar", "libgptrt_plugin_grammar.so");
    let exe = build("tests/c/grammar_test.c", Lang::C, Link::Dynamic);
    let model = repo().join("models/demo");
    let stdout = run_ok(&exe, &[model.to_str().unwrap(), plugin.to_str().unwrap()]);
    let line = |label: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{label}: ")))
            .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"))
            .to_string()
    };
    let json: Value = serde_json::from_str(&line("json")).expect("the output is JSON");
    assert!(["attack", "flee", "talk"].contains(&json["action"].as_str().unwrap()));
    assert!((0..=100).contains(&json["hp"].as_i64().unwrap()), "{json}");
    assert_eq!(json.as_object().unwrap().len(), 2, "{json}");
    let result: Value = serde_json::from_str(&line("result")).unwrap();
    assert_eq!(result["stop_reason"], "grammar_complete", "{result}");
    assert!(
        ["yes!", "no!"].contains(&line("regex").as_str()),
        "{stdout}"
    );
    let bad = line("bad-schema");
    assert!(
        bad.starts_with("GPTRT_ERROR_PLUGIN") && bad.contains("objekt"),
        "{bad}"
    );
    assert!(line("bad-kind").contains("xml"), "{stdout}");
    assert!(line("bad-stage").contains("middle"), "{stdout}");
}
