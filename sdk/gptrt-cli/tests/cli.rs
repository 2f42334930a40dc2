//! The `gptrt` command end to end: output formats and every bad input the foundation issue lists.

use std::path::PathBuf;

mod common;

use common::*;

#[test]
fn generate_json_has_every_field() {
    let model = model_arg("merged");
    let out = gptrt(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        "Hello world",
        "--max-new-tokens",
        "8",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "exactly one JSON object: {stdout}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["prompt_token_ids"], serde_json::json!([15496, 995]));
    let ids = json["token_ids"].as_array().unwrap();
    assert!(!ids.is_empty() && ids.len() <= 8);
    assert_eq!(json["layout"], "merged");
    assert_eq!(json["provider"], "CPUExecutionProvider");
    assert!(json["stop_reason"] == "max_new_tokens" || json["stop_reason"] == "eos");
    assert!(json["text"].is_string());
    assert!(json["prompt_tokens_per_second"].as_f64().unwrap() > 0.0);
    assert!(json["decode_tokens_per_second"].as_f64().is_some());
}

#[test]
fn generate_streams_text_and_prints_a_summary() {
    let model = model_arg("single");
    let json = gptrt(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        "Once upon a time",
        "--max-new-tokens",
        "6",
        "--json",
    ]);
    let expected: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let out = gptrt(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        "Once upon a time",
        "--max-new-tokens",
        "6",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        format!("Once upon a time{}\n", expected["text"].as_str().unwrap())
    );
    let summary = stderr(&out);
    for needle in [
        "tok/s",
        "provider: CPUExecutionProvider",
        "layout: single",
        "stop:",
    ] {
        assert!(summary.contains(needle), "{needle} in {summary}");
    }
}

#[test]
fn generate_reads_a_prompt_file() {
    let path = std::env::temp_dir().join(format!("gptrt-prompt-{}.txt", std::process::id()));
    std::fs::write(&path, "Hello world").unwrap();
    let model = model_arg("single");
    let out = gptrt(&[
        "generate",
        "--model",
        &model,
        "--prompt-file",
        path.to_str().unwrap(),
        "--max-new-tokens",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["prompt_token_ids"], serde_json::json!([15496, 995]));

    std::fs::write(&path, b"caf\xe9 latin-1").unwrap();
    let out = gptrt(&[
        "generate",
        "--model",
        &model,
        "--prompt-file",
        path.to_str().unwrap(),
    ]);
    assert_fails(
        &out,
        &["not valid UTF-8", "offset 3", path.to_str().unwrap()],
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn tokenize_json() {
    let model = model_arg("single");
    let out = gptrt(&[
        "tokenize",
        "--model",
        &model,
        "--text",
        "Once upon a time",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json, serde_json::json!({"ids": [7454, 2402, 257, 640]}));
}

#[test]
fn inspect_reports_layout_dimensions_and_tensors() {
    let out = gptrt(&["inspect", "--model", &model_arg("split")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "layout:    split",
        "n_layer 2",
        "decoder_with_past_model.onnx",
        "past_key_values.1.value",
        "present.0.key",
        "CPUExecutionProvider",
        "kv cache:  host memory",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    let out = gptrt(&["inspect", "--model", &model_arg("nopast"), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["layout"], "no-past");
    assert_eq!(json["config"]["n_head"], 4);
    assert_eq!(json["kv_cache"], "host memory");
}

#[test]
fn bad_model_paths() {
    assert_fails(
        &gptrt(&["generate", "--model", "/nonexistent/model", "--prompt", "x"]),
        &["/nonexistent/model", "does not exist"],
    );
    let empty = std::env::temp_dir().join(format!("gptrt-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    assert_fails(
        &gptrt(&["inspect", "--model", empty.to_str().unwrap()]),
        &["0 ONNX graph(s) found"],
    );
    std::fs::remove_dir_all(&empty).unwrap();
}

#[test]
fn bad_generation_values() {
    let model = model_arg("single");
    assert_fails(
        &gptrt(&[
            "generate",
            "--model",
            &model,
            "--prompt",
            "x",
            "--max-new-tokens",
            "-5",
        ]),
        &["-5"],
    );
    assert_fails(
        &gptrt(&[
            "generate",
            "--model",
            &model,
            "--prompt",
            "x",
            "--max-new-tokens",
            "0",
        ]),
        &["max_new_tokens", "at least 1"],
    );
    assert_fails(
        &gptrt(&[
            "generate",
            "--model",
            &model,
            "--prompt",
            "x",
            "--max-new-tokens",
            "99999999999",
        ]),
        &["max_new_tokens", "context window"],
    );
    assert_fails(
        &gptrt(&[
            "generate",
            "--model",
            &model,
            "--prompt",
            "x",
            "--max-new-tokens",
            "lots",
        ]),
        &["--max-new-tokens", "lots"],
    );
    let long = "word ".repeat(400);
    assert_fails(
        &gptrt(&["generate", "--model", &model, "--prompt", &long]),
        &["context window", "--truncate"],
    );
    let ok = gptrt(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        &long,
        "--truncate",
        "--max-new-tokens",
        "2",
        "--json",
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
}

#[test]
fn unknown_flags_and_missing_prompt() {
    let out = gptrt(&[
        "generate",
        "--model",
        &model_arg("single"),
        "--prompt",
        "x",
        "--tempreature",
        "0.5",
    ]);
    assert_fails(&out, &["--tempreature"]);
    assert_eq!(out.status.code(), Some(2));
    assert_fails(
        &gptrt(&["generate", "--model", &model_arg("single")]),
        &["--prompt"],
    );
}

#[test]
fn an_explicit_onnx_runtime_path_that_is_wrong() {
    let out = gptrt(&[
        "inspect",
        "--model",
        &model_arg("single"),
        "--ort-library",
        "/nonexistent/libonnxruntime.so",
    ]);
    assert_fails(
        &out,
        &["/nonexistent/libonnxruntime.so", "scripts/setup.sh"],
    );
}

#[test]
fn help_describes_every_generation_flag() {
    let out = gptrt(&["generate", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--do-sample",
        "--temperature",
        "--top-k",
        "--top-p",
        "--typical-p",
        "--min-p",
        "--epsilon-cutoff",
        "--eta-cutoff",
        "--repetition-penalty",
        "--presence-penalty",
        "--frequency-penalty",
        "--no-repeat-ngram-size",
        "--bad-words-ids",
        "--sequence-bias",
        "--suppress-tokens",
        "--min-new-tokens",
        "--min-length",
        "--forced-eos-token-id",
        "--num-beams",
        "--length-penalty",
        "--early-stopping",
        "--num-return-sequences",
        "--stop-strings",
        "--max-time",
        "--seed",
        "--logprobs",
        "--max-new-tokens",
        "--eos-token-id",
        "--generation-config",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn sampling_flags_reach_the_chain() {
    let model = model_arg("single");
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "generate",
            "--model",
            &model,
            "--prompt",
            "Hello world",
            "--max-new-tokens",
            "10",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = gptrt(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let a = run(&[
        "--do-sample",
        "--seed",
        "5",
        "--temperature",
        "0.8",
        "--top-p",
        "0.9",
    ]);
    let b = run(&[
        "--do-sample",
        "--seed",
        "5",
        "--temperature",
        "0.8",
        "--top-p",
        "0.9",
    ]);
    assert_eq!(a["token_ids"], b["token_ids"]);
    assert_eq!(a["seed"], 5);
    let greedy = run(&[]);
    let banned = greedy["token_ids"][0].as_u64().unwrap().to_string();
    let without_first = run(&["--suppress-tokens", &banned]);
    assert_ne!(without_first["token_ids"][0], greedy["token_ids"][0]);
    let beams = run(&["--num-beams", "3", "--num-return-sequences", "2"]);
    assert_eq!(beams["sequences"].as_array().unwrap().len(), 2);
    assert!(beams["score"].as_f64().is_some());
    let logprobs = run(&["--logprobs", "2"]);
    assert_eq!(logprobs["logprobs"].as_array().unwrap().len(), 10);
    assert_eq!(logprobs["logprobs"][0]["top"].as_array().unwrap().len(), 2);
}

#[test]
fn nan_or_out_of_range_sampling_values() {
    let model = model_arg("single");
    for (flag, value, field) in [
        ("--temperature", "NaN", "temperature"),
        ("--temperature", "0", "temperature"),
        ("--top-p", "1.5", "top_p"),
        ("--top-p", "0", "top_p"),
        ("--repetition-penalty", "-2", "repetition_penalty"),
        ("--num-beams", "0", "num_beams"),
        ("--min-p", "2", "min_p"),
    ] {
        let out = gptrt(&[
            "generate",
            "--model",
            &model,
            "--prompt",
            "x",
            "--do-sample",
            flag,
            value,
        ]);
        assert_fails(&out, &[field]);
    }
    assert_fails(
        &gptrt(&[
            "generate",
            "--model",
            &model,
            "--prompt",
            "x",
            "--early-stopping",
            "maybe",
        ]),
        &["never"],
    );
    assert_fails(
        &gptrt(&[
            "generate",
            "--model",
            &model,
            "--prompt",
            "x",
            "--sequence-bias",
            "7,8",
        ]),
        &["IDS=BIAS"],
    );
}

#[test]
fn perplexity_of_a_text_file() {
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/demo");
    let out = gptrt(&[
        "perplexity",
        "--model",
        demo.to_str().unwrap(),
        "--text-file",
        demo.join("heldout.txt").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(demo.join("heldout.json")).unwrap()).unwrap();
    let (got, want) = (
        json["perplexity"].as_f64().unwrap(),
        expected["perplexity"].as_f64().unwrap(),
    );
    assert!((got - want).abs() < 0.01 * want, "{got} vs {want}");
    assert_eq!(json["tokens"], expected["tokens"]);
}

#[test]
fn bench_json_reports_speed_latency_memory_and_load() {
    let model = model_arg("single");
    let out = gptrt(&[
        "bench",
        "--model",
        &model,
        "--prompt-tokens",
        "9",
        "--new-tokens",
        "5",
        "--batch",
        "3",
        "--runs",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["prompt_tokens"], 9, "{json}");
    assert_eq!(json["new_tokens"], 5, "{json}");
    assert_eq!(json["batch"], 3, "{json}");
    assert_eq!(json["layout"], "single", "{json}");
    let positive = |field: &str| {
        let value = json[field].as_f64().unwrap_or(f64::NAN);
        assert!(
            value > 0.0 && value.is_finite(),
            "{field} = {value} in {json}"
        );
        value
    };
    positive("load_seconds");
    positive("time_to_first_token_ms_median");
    positive("prompt_tokens_per_second_median");
    positive("decode_tokens_per_second_median");
    // The weights alone are megabytes: a peak RSS below that is not the process's.
    assert!(positive("peak_rss_bytes") > 10e6, "{json}");
    assert!(
        json["time_to_first_token_ms_best"].as_f64()
            <= json["time_to_first_token_ms_median"].as_f64(),
        "{json}"
    );
}

#[test]
fn bench_refuses_a_prompt_longer_than_the_context() {
    let model = model_arg("single");
    let out = gptrt(&[
        "bench",
        "--model",
        &model,
        "--prompt-tokens",
        "100000",
        "--new-tokens",
        "4",
    ]);
    assert_fails(&out, &["context window", "100000"]);
}
