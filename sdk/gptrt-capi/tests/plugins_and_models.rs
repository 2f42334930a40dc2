//! Plugins and task heads from C, a plugin stuck in `apply`, and what the model info says about
//! batching.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;

use common::*;

#[test]
fn plugins_and_task_heads_are_reachable_from_c() {
    let rust = plugin_library("gptrt-plugin-mirostat", "libgptrt_plugin_mirostat.so");
    let choice = plugin_library("gptrt-plugin-choice", "libgptrt_plugin_choice.so");
    let c = plugin_library("gptrt-plugin-xtc-c", "plugins/libgptrt_xtc.so");
    let exe = build("tests/c/plugin_test.c", Lang::C, Link::Dynamic);
    let model = tiny("single");
    let stdout = run_ok(
        &exe,
        &[
            model.to_str().unwrap(),
            rust.to_str().unwrap(),
            choice.to_str().unwrap(),
            c.to_str().unwrap(),
        ],
    );
    let line = |label: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{label}: ")))
            .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"))
            .to_string()
    };
    for id in ["org.gptrt.mirostat-v2", "org.gptrt.choice", "org.gptrt.xtc"] {
        assert!(line("plugins").contains(id), "{stdout}");
    }
    let (_, cases) = reference();
    let expected: Vec<String> = cases[0].greedy_ids[..8]
        .iter()
        .map(u32::to_string)
        .collect();
    assert_eq!(line("plain"), expected.join(" "), "greedy ids through C");
    assert_eq!(
        line("cleared"),
        expected.join(" "),
        "clearing the samplers restores greedy"
    );
    assert_ne!(
        line("xtc").split(' ').next(),
        expected.first().map(String::as_str),
        "XTC removed the top choice"
    );
    let task: serde_json::Value = serde_json::from_str(&line("task")).unwrap();
    assert!(
        task["choice"].is_u64() && task["scores"].as_array().unwrap().len() == 2,
        "{task}"
    );
    assert!(
        line("bad-id").starts_with("GPTRT_ERROR_PLUGIN")
            && line("bad-id").contains("org.example.missing"),
        "{stdout}"
    );
    assert!(
        line("bad-load").starts_with("GPTRT_ERROR_IO")
            || line("bad-load").starts_with("GPTRT_ERROR_PLUGIN"),
        "{stdout}"
    );
    assert!(
        line("bad-input").starts_with("GPTRT_ERROR_PLUGIN") && line("bad-input").contains("prompt"),
        "{stdout}"
    );
    assert_eq!(line("null-host"), "GPTRT_ERROR_NULL_POINTER");
}

/// tests/plugins/misbehaving.c with `-DFAULT_BLOCKS`: a sampler whose `apply` notes the call in
/// `calls` and then waits for a file that never appears.
fn stuck_plugin(calls: &Path) -> PathBuf {
    let out = std::env::temp_dir().join(format!("gptrt-capi-stuck-{}.so", std::process::id()));
    let never = std::env::temp_dir().join(format!("gptrt-capi-never-{}", std::process::id()));
    let defines = [
        "FAULT_BLOCKS".to_string(),
        format!("CALLS_FILE=\"{}\"", calls.display()),
        format!("RELEASE_FILE=\"{}\"", never.display()),
    ];
    let source = repo().join("tests/plugins/misbehaving.c");
    gptrt_plugin_xtc_c::compile_c_plugin(&source, &out, &defines).expect("the stuck plugin");
    out
}

#[test]
fn freeing_a_session_whose_plugin_is_stuck_returns() {
    let calls = std::env::temp_dir().join(format!("gptrt-capi-calls-{}", std::process::id()));
    let _ = std::fs::remove_file(&calls);
    let plugin = stuck_plugin(&calls);
    let exe = build("tests/c/stuck_plugin_test.c", Lang::C, Link::Dynamic);
    let mut child = Command::new(&exe)
        .current_dir(repo())
        .arg(tiny("single"))
        .arg(&plugin)
        .arg(&calls)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running stuck_plugin_test");
    // A watchdog, not a speed check: the old gptrt_session_free never returned.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().expect("waiting").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "stuck_plugin_test still running after 30 s (gptrt_session_free hangs?); stdout:\n{}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["stuck in apply", "session freed", "done"]
    );
    let _ = std::fs::remove_file(&calls);
}

/// The model info of tests/c/batch_invariance.c's `info:` line.
fn batch_info(stdout: &str) -> Value {
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    let info = stdout
        .lines()
        .find_map(|line| line.strip_prefix("info: "))
        .expect("an info line");
    serde_json::from_str(info).expect("model info is JSON")
}

/// The committed demo model (int8 weights, activations quantized per row) is batch-invariant: six
/// batched sessions with prompts of different lengths (1 to 21 tokens) get the tokens they get
/// alone, seeded sampling and greedy (without the rows' aligned padding, 4-5 of 6 did), and the
/// model info says so.
#[test]
fn demo_model_batched_sessions_get_their_solo_tokens_and_the_info_says_so() {
    let exe = build("tests/c/batch_invariance.c", Lang::C, Link::Dynamic);
    let demo = repo().join("models/demo");
    let stdout = run_ok(&exe, &[demo.to_str().expect("UTF-8 path"), "tokens"]);
    for mode in ["sampling", "greedy"] {
        assert!(
            stdout.contains(&format!("{mode}: 6 of 6 equal")),
            "{mode}:\n{stdout}"
        );
    }
    let info = batch_info(&stdout);
    assert_eq!(info["batch_invariant"], true, "{info}");
    assert_eq!(info["batch_dependent_ops"], serde_json::json!([]));
    assert!(
        info["batching"]
            .as_str()
            .is_some_and(|s| s.starts_with("batch-invariant")),
        "{info}"
    );
}

/// A dynamic int8 graph (the tiny fixture with a DynamicQuantizeLinear added, as onnxruntime's
/// quantize_dynamic writes one before each MatMul) is reported as not batch-invariant.
#[test]
fn model_info_says_when_a_graph_is_not_batch_invariant() {
    let exe = build("tests/c/batch_invariance.c", Lang::C, Link::Dynamic);
    let dir = std::env::temp_dir().join(format!("gptrt-capi-dynamic-int8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let single = tiny("single");
    let graph = std::fs::read(single.join("model.onnx")).unwrap();
    // A second `graph` field: protobuf merges it into the first, adding its nodes.
    let field = |number: u8, bytes: &[u8]| [&[number << 3 | 2, bytes.len() as u8], bytes].concat();
    let one = [
        field(1, b"value_float"),
        vec![2 << 3 | 5],
        1f32.to_le_bytes().to_vec(),
        vec![0xa0, 1, 1],
    ]
    .concat();
    let constant = [field(2, b"dq_x"), field(4, b"Constant"), field(5, &one)].concat();
    let quantize = [
        field(1, b"dq_x"),
        field(2, b"dq_y"),
        field(2, b"dq_s"),
        field(2, b"dq_z"),
        field(4, b"DynamicQuantizeLinear"),
    ]
    .concat();
    let nodes = [field(1, &constant), field(1, &quantize)].concat();
    std::fs::write(dir.join("model.onnx"), [graph, field(7, &nodes)].concat()).unwrap();
    std::fs::copy(single.join("config.json"), dir.join("config.json")).unwrap();
    std::fs::copy(tiny("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let stdout = run_ok(&exe, &[dir.to_str().expect("UTF-8 path")]);
    std::fs::remove_dir_all(&dir).unwrap();
    let info = batch_info(&stdout);
    assert_eq!(info["batch_invariant"], false, "{info}");
    assert_eq!(
        info["batch_dependent_ops"],
        serde_json::json!(["DynamicQuantizeLinear"])
    );
    assert!(
        info["batching"]
            .as_str()
            .is_some_and(|s| s.starts_with("NOT batch-invariant")),
        "{info}"
    );
}

#[test]
fn a_task_head_instance_reads_its_config_once_and_runs_many_times_from_c() {
    use gptrt::tasks::LinearHead;

    let classify = plugin_library("gptrt-plugin-classify", "libgptrt_plugin_classify.so");
    let exe = build("tests/c/task_head_test.c", Lang::C, Link::Dynamic);
    let model_dir = tiny("hidden");
    let model = gptrt::Model::load(&model_dir).unwrap();
    let hidden = model.hidden_size();
    let weight: Vec<f32> = (0..2 * hidden)
        .map(|i| ((i % 5) as f32 - 2.0) / 10.0)
        .collect();
    let labels = vec!["a".to_string(), "b".to_string()];
    let head =
        LinearHead::new(&model, labels, gptrt::Pooling::Mean, weight, vec![0.0, 0.2]).unwrap();
    let dir = std::env::temp_dir().join(format!("gptrt-capi-head-{}", std::process::id()));
    head.save(&dir).unwrap();
    let stdout = run_ok(
        &exe,
        &[
            model_dir.to_str().unwrap(),
            classify.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    );
    let line = |label: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{label}: ")))
            .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"))
            .to_string()
    };
    // The instance runs after its head's files are gone: it read them once, at creation.
    let first: Value = serde_json::from_str(&line("first")).unwrap();
    assert_eq!(line("first"), line("second"));
    let expected = head
        .classify(&model, &["Hello world", "a longer text than the first"])
        .unwrap();
    for (got, want) in first["results"].as_array().unwrap().iter().zip(&expected) {
        assert_eq!(got["label"], want.label.as_str());
        for (label, p) in &want.scores {
            assert!((got["scores"][label].as_f64().unwrap() - p).abs() < 1e-6);
        }
    }
    assert!(line("bad-input").contains("text 0 is empty"), "{stdout}");
    // A one-shot run reads the configuration again, and the files are gone.
    assert!(
        line("one-shot-after-delete").contains("labels.json"),
        "{stdout}"
    );
    let zero_shot: Value = serde_json::from_str(&line("zero-shot")).unwrap();
    let sum: f64 = ["yes", "no"]
        .iter()
        .map(|l| zero_shot["scores"][l].as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-9, "{zero_shot}");
    assert!(
        line("bad-config").contains("at least two labels"),
        "{stdout}"
    );
    assert_eq!(line("null-head"), "GPTRT_ERROR_NULL_POINTER", "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_task_head_instance_runs_from_the_cpp_wrapper() {
    let classify = plugin_library("gptrt-plugin-classify", "libgptrt_plugin_classify.so");
    let dialogue = plugin_library("gptrt-plugin-dialogue", "libgptrt_plugin_dialogue.so");
    let exe = build("tests/c/task_head_test.cpp", Lang::Cxx, Link::Dynamic);
    let model = tiny("hidden");
    let stdout = run_ok(
        &exe,
        &[
            model.to_str().unwrap(),
            classify.to_str().unwrap(),
            dialogue.to_str().unwrap(),
        ],
    );
    let line = |label: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{label}: ")))
            .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"))
            .to_string()
    };
    let first: Value = serde_json::from_str(&line("first")).unwrap();
    assert_eq!(line("first"), line("second"));
    let sum: f64 = ["yes", "no"]
        .iter()
        .map(|l| first["scores"][l].as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-9, "{first}");
    assert!(
        line("bad-input").starts_with("GPTRT_ERROR_PLUGIN")
            && line("bad-input").contains("text 0 is empty"),
        "{stdout}"
    );
    assert!(line("bad-config").contains("/nonexistent"), "{stdout}");
    assert_eq!(line("classify-pieces"), "0", "{stdout}");
    let reply: Value = serde_json::from_str(&line("dialogue")).unwrap();
    let pieces: usize = line("dialogue-pieces").parse().unwrap();
    assert!(pieces > 1, "{stdout}");
    let streamed: usize = line("dialogue-streamed-length").parse().unwrap();
    assert!(
        streamed >= reply["reply"].as_str().unwrap().len(),
        "{stdout}"
    );
    assert_eq!(line("thrown"), "from the lambda", "{stdout}");
    let after: Value = serde_json::from_str(&line("after-throw")).unwrap();
    assert_eq!(after["turn"], 3, "{stdout}");
}
