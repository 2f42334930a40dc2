//! `gptrt generate --json-schema / --regex / --grammar`: the output is the constrained text alone,
//! the grammar plugin is found beside the executable, and a bad schema fails before any output.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

/// The grammar plugin, built beside the `gptrt` executable (where `generate` looks for it).
fn build_grammar_plugin() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_gptrt"));
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.args(["build", "-p", "gptrt-plugin-grammar"]);
    if exe.parent().is_some_and(|d| d.ends_with("release")) {
        cargo.arg("--release");
    }
    assert!(
        cargo.status().unwrap().success(),
        "building the grammar plugin"
    );
}

fn demo() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/demo")
        .display()
        .to_string()
}

fn scratch(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("gptrt-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn generate_prints_only_text_that_matches_the_schema() {
    build_grammar_plugin();
    let schema = scratch(
        "action.json",
        r#"{"type": "object", "properties": {"action": {"enum": ["attack", "flee"]},
            "hp": {"type": "integer", "minimum": 0, "maximum": 9}},
            "required": ["action", "hp"], "additionalProperties": false}"#,
    );
    let model = demo();
    let out = gptrt(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        "The guard:",
        "--seed",
        "3",
        "--json-schema",
        &schema,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let value: serde_json::Value = serde_json::from_str(text.trim_end())
        .unwrap_or_else(|e| panic!("stdout is not the JSON alone: {text:?} ({e})"));
    assert!(
        ["attack", "flee"].contains(&value["action"].as_str().unwrap()),
        "{value}"
    );
    assert!(value["hp"].as_u64().unwrap() <= 9, "{value}");

    let out = gptrt(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        "Answer:",
        "--seed",
        "1",
        "--json",
        "--regex",
        "(yes|no), sir",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        ["yes, sir", "no, sir"].contains(&json["text"].as_str().unwrap()),
        "{json}"
    );
    assert_eq!(json["stop_reason"], "grammar_complete");
}

#[test]
fn a_bad_schema_or_grammar_fails_before_any_output() {
    build_grammar_plugin();
    let model = demo();
    let bad = scratch("bad.json", r#"{"type": "objekt"}"#);
    let out = gptrt(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        "x",
        "--json-schema",
        &bad,
    ]);
    assert_fails_cleanly(&out, &["--json-schema", "objekt"]);
    let not_json = scratch("notjson.json", "{");
    let out = gptrt(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        "x",
        "--json-schema",
        &not_json,
    ]);
    assert_fails_cleanly(&out, &["--json-schema", "not JSON"]);
    let lark = scratch("bad.lark", "start: nowhere");
    let out = gptrt(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        "x",
        "--grammar",
        &lark,
    ]);
    assert_fails_cleanly(&out, &["--grammar", "nowhere"]);
    let out = gptrt(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        "x",
        "--regex",
        "a",
        "--grammar",
        &lark,
    ]);
    assert_fails(&out, &["--regex", "--grammar"]);
}
