//! Inputs from outside that once killed, hung or misled the process: each is now a clean error that
//! names the problem, before anything is allocated from it and before any output.

use std::path::PathBuf;
use std::process::{Command, Output};

mod common;

use common::*;

fn generate(extra: &[&str]) -> Output {
    let model = fixture("single").display().to_string();
    let mut args = vec![
        "generate",
        "--model",
        &model,
        "--prompt",
        "Hello",
        "--max-new-tokens",
        "4",
    ];
    args.extend_from_slice(extra);
    gptrt(&args)
}

#[test]
fn a_bad_sampler_fails_before_the_prompt_is_printed() {
    assert_fails_cleanly(
        &generate(&["--sampler", "org.example.missing"]),
        &["org.example.missing"],
    );
}

#[test]
fn absurd_sizes_are_refused_with_the_field_and_the_bound() {
    let cases: [(&[&str], &[&str]); 7] = [
        (&["--num-beams", "1000000000"], &["num_beams", "256"]),
        (&["--num-beams", "10000"], &["num_beams", "256"]),
        (
            &["--num-return-sequences", "1000000000", "--do-sample"],
            &["num_return_sequences", "256"],
        ),
        (
            &[
                "--num-return-sequences",
                "18446744073709551615",
                "--do-sample",
            ],
            &["num_return_sequences"],
        ),
        (&["--logprobs", "1000000000000"], &["logprobs", "50257"]),
        (&["--threads", "100000"], &["intra_threads", "limit"]),
        (&["--threads", "10000"], &["intra_threads", "limit"]),
    ];
    for (flags, needles) in cases {
        assert_fails_cleanly(&generate(flags), needles);
    }
}

#[test]
fn absurd_config_numbers_are_refused_before_anything_is_sized_from_them() {
    for value in [
        "1000000000000",
        "4611686018427387904",
        "9223372036854775808",
        "1000000000",
    ] {
        let model = Scratch::model_copy("n-layer", "single");
        let path = model.0.join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config["n_layer"] = serde_json::Value::Number(value.parse().unwrap());
        std::fs::write(&path, config.to_string()).unwrap();
        let out = gptrt(&["inspect", "--model", &model.arg()]);
        assert_fails_cleanly(&out, &["config.json", "n_layer", value, "1024"]);
    }
}

#[test]
fn a_fifo_named_like_a_graph_is_refused_not_opened() {
    for name in ["model.onnx", "other.onnx"] {
        let model = Scratch::model_copy("fifo", "single");
        std::fs::remove_file(model.0.join("model.onnx")).unwrap();
        let fifo = model.0.join(name);
        let made = Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        // Opening the FIFO would block for ever: a watchdog turns that into a failure.
        let mut child = Command::new(env!("CARGO_BIN_EXE_gptrt"))
            .args(["inspect", "--model", &model.arg()])
            .env_remove("ORT_DYLIB_PATH")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("loading a folder with a FIFO named {name} hangs");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert_fails_cleanly(&out, &[name, "not a regular file"]);
    }
}

#[test]
fn a_malformed_tokenizer_decoder_is_a_tokenizer_error_naming_the_file() {
    let model = Scratch::model_copy("decoder", "single");
    let path = model.0.join("tokenizer.json");
    let mut tokenizer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    tokenizer["decoder"] = serde_json::Value::String("DEEP".into());
    let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let text = tokenizer.to_string().replace("\"DEEP\"", &nested);
    std::fs::write(&path, text).unwrap();
    let out = gptrt(&["tokenize", "--model", &model.arg(), "--text", "hi"]);
    assert_fails_cleanly(&out, &["tokenizer", "tokenizer.json", "nested"]);
}

#[test]
fn a_copied_program_finds_onnx_runtime_next_to_its_executable() {
    let setup =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ort/libonnxruntime.so.1.31.1");
    let shipped = Scratch::new("shipped");
    let program = shipped.0.join("gptrt");
    std::fs::copy(env!("CARGO_BIN_EXE_gptrt"), &program).unwrap();
    let library = shipped.0.join("libonnxruntime.so.1.31.1");
    std::fs::copy(&setup, &library).unwrap();
    let model = fixture("single").display().to_string();
    let out = run(&program, &["inspect", "--model", &model, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let used = json["onnxruntime_library"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        PathBuf::from(&used),
        library.canonicalize().unwrap(),
        "{json}"
    );
}
