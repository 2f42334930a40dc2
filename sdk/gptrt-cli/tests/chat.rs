//! `gptrt chat` end to end on the tiny fixture: turns run only their new tokens, the window
//! overflows by dropping whole old turns (never the persona), save/load with and without the KV
//! cache, the interactive commands, and clear errors that leave the dialogue usable.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{assert_fails_cleanly, gptrt, model_arg, stderr};
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gptrt-chat-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn turns(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

fn tokens(text: &str) -> usize {
    let model = gptrt::Model::load(model_arg("single")).unwrap();
    model.tokenizer().encode(text).unwrap().len()
}

const PERSONA: &str = "A gruff blacksmith.";
const LINES: [&str; 3] = ["hello there", "what do you sell", "how much for a sword"];

fn chat(dir: &std::path::Path, lines: &[&str], extra: &[&str]) -> std::process::Output {
    let script = dir.join("script.txt");
    std::fs::write(&script, lines.join("\n")).unwrap();
    let model = model_arg("single");
    let mut args = vec![
        "chat",
        "--model",
        &model,
        "--persona",
        PERSONA,
        "--script",
        script.to_str().unwrap(),
        "--max-new-tokens",
        "6",
        "--json",
    ];
    args.extend_from_slice(extra);
    gptrt(&args)
}

#[test]
fn each_turn_runs_only_its_new_tokens() {
    let dir = scratch("count");
    let output = chat(&dir, &LINES, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let reports = turns(&output.stdout);
    assert_eq!(reports.len(), 3);
    for (index, (report, line)) in reports.iter().zip(LINES).enumerate() {
        assert_eq!(report["turn"], index + 1);
        assert_eq!(report["dropped_turns"], 0);
        assert!(report["time_to_first_token_ms"].as_f64().unwrap() > 0.0);
        assert!(report["reply"].is_string() && report["stop_reason"].is_string());
        let new = tokens(&format!("\nUser: {line}\nBot:"));
        let processed = report["prompt_tokens_processed"].as_u64().unwrap() as usize;
        // the turn's text, plus at most the previous reply's last token (never run yet)
        assert!(
            processed == new || processed == new + 1,
            "{report}: {new} new"
        );
    }
    let context = reports[2]["context_tokens"].as_u64().unwrap() as usize;
    assert!(context > tokens(PERSONA) + 3 * 5, "{context}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_full_window_drops_the_oldest_turns_and_keeps_the_persona() {
    let dir = scratch("overflow");
    let lines: Vec<String> = (0..12)
        .map(|n| format!("tell me about the sword number {n}"))
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let output = chat(&dir, &lines, &["--min-new-tokens", "6"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let reports = turns(&output.stdout);
    assert_eq!(reports.len(), 12);
    let dropped: u64 = reports
        .iter()
        .map(|r| r["dropped_turns"].as_u64().unwrap())
        .sum();
    assert!(dropped > 0, "128 positions must overflow: {reports:?}");
    for report in &reports {
        assert!(report["context_tokens"].as_u64().unwrap() < 128, "{report}");
    }
    // Overflows drop down to half the turns' room (the default --overflow-keep), so fewer turns
    // overflow and fewer tokens run again than when each drops only what it needs.
    let tight = turns(
        &chat(
            &dir,
            &lines,
            &["--min-new-tokens", "6", "--overflow-keep", "1"],
        )
        .stdout,
    );
    let sum = |reports: &[Value], field: &str| -> u64 {
        reports.iter().map(|r| r[field].as_u64().unwrap()).sum()
    };
    let overflows = |reports: &[Value]| reports.iter().filter(|r| r["dropped_turns"] != 0).count();
    assert!(
        overflows(&reports) < overflows(&tight),
        "{reports:?}\n{tight:?}"
    );
    assert!(
        sum(&reports, "prompt_tokens_processed") < sum(&tight, "prompt_tokens_processed"),
        "{reports:?}\n{tight:?}"
    );
    for bad in ["0", "1.5", "nan"] {
        let output = chat(&dir, &lines[..1], &["--overflow-keep", bad]);
        assert_fails_cleanly(&output, &["--overflow-keep"]);
    }
    // the persona and the tags are still what the model sees: save and look
    let state = dir.join("state");
    let output = chat(
        &dir,
        &lines,
        &["--min-new-tokens", "6", "--save", state.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let model = std::sync::Arc::new(gptrt::Model::load(model_arg("single")).unwrap());
    let saved = std::fs::read(&state).unwrap();
    let session = gptrt::Session::from_saved(model.clone(), &saved).unwrap();
    let text = model
        .tokenizer()
        .decode(&session.tokens().unwrap(), false)
        .unwrap();
    let start = format!("{PERSONA}\nUser: tell me about the sword number");
    assert!(text.starts_with(&start), "{text}");
    assert!(
        !text.contains("number 0\n"),
        "the oldest turn was dropped: {text}"
    );
    assert!(text.contains("number 11\nBot:"), "{text}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn save_and_load_continue_the_dialogue_with_and_without_the_cache() {
    let dir = scratch("save");
    let with_kv = dir.join("with-kv");
    let without = dir.join("without");
    for (path, kv) in [(&with_kv, true), (&without, false)] {
        let mut extra = vec!["--save", path.to_str().unwrap()];
        if kv {
            extra.push("--save-kv");
        }
        let output = chat(&dir, &LINES[..2], &extra);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert!(
        std::fs::metadata(&with_kv).unwrap().len() > std::fs::metadata(&without).unwrap().len()
    );
    // the whole dialogue in one run, for comparison
    let direct = turns(&chat(&dir, &LINES, &[]).stdout);
    for (path, kv) in [(&with_kv, true), (&without, false)] {
        let output = chat(&dir, &LINES[2..], &["--load", path.to_str().unwrap()]);
        assert!(output.status.success(), "{}", stderr(&output));
        let report = &turns(&output.stdout)[0];
        assert_eq!(report["turn"], 3);
        assert_eq!(report["reply"], direct[2]["reply"], "kv: {kv}");
        assert_eq!(report["context_tokens"], direct[2]["context_tokens"]);
        let processed = report["prompt_tokens_processed"].as_u64().unwrap();
        let new = tokens(&format!("\nUser: {}\nBot:", LINES[2])) as u64;
        if kv {
            assert!(processed <= new + 1, "{report}");
        } else {
            // nothing cached: the whole history runs again
            assert!(processed > new + 10, "{report}");
        }
    }
    // a damaged state is refused, naming the file and the problem
    let mut bytes = std::fs::read(&with_kv).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let damaged = dir.join("damaged");
    std::fs::write(&damaged, bytes).unwrap();
    let output = chat(&dir, &LINES[2..], &["--load", damaged.to_str().unwrap()]);
    assert_fails_cleanly(&output, &["damaged", "checksum"]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_persona_longer_than_the_window_is_a_clear_error() {
    let dir = scratch("persona");
    let persona = "word ".repeat(200);
    let model = model_arg("single");
    let output = gptrt(&["chat", "--model", &model, "--persona", &persona, "--json"]);
    assert_fails_cleanly(&output, &["persona", "context window"]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn interactive_commands_and_a_too_long_turn_leave_the_dialogue_usable() {
    let dir = scratch("interactive");
    let state = dir.join("state");
    let long = "word ".repeat(200);
    let input = format!(
        "hello there\n{long}\n/save {0}\nwhat do you sell\n/reset\n/load {0}\nwhat do you sell\n/bogus\n",
        state.display()
    );
    let model = model_arg("single");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gptrt"))
        .args(["chat", "--model", &model, "--persona", PERSONA])
        .args(["--max-new-tokens", "6", "--json"])
        .env_remove("GPTRT_MODEL")
        .env_remove("ORT_DYLIB_PATH")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains("the turn is") && err.contains("context window"),
        "{err}"
    );
    assert!(err.contains("unknown command"), "{err}");
    let reports = turns(&output.stdout);
    assert_eq!(reports.len(), 3, "{reports:?}");
    // the turn after /load is the one after /save again: same reply, same context
    assert_eq!(reports[1]["reply"], reports[2]["reply"]);
    assert_eq!(reports[1]["context_tokens"], reports[2]["context_tokens"]);
    assert_eq!(reports[2]["turn"], 2);
    std::fs::remove_dir_all(dir).ok();
}
