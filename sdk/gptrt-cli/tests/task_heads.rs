//! `train-head`, `classify` and `qa` from the command line: the same data and seed give the same
//! head bytes, classify prints one object per input with scores summing to 1, and bad input is an
//! error naming the problem.

mod common;

use common::*;
use serde_json::Value;

fn data(scratch: &Scratch) -> String {
    // The first 60 topic training lines: every label occurs (the file interleaves them).
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../benchmarks/data/topics/train.jsonl"),
    )
    .unwrap();
    let lines: Vec<&str> = source.lines().take(60).collect();
    let path = scratch.0.join("train.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path.display().to_string()
}

#[test]
fn train_head_is_deterministic_and_classify_prints_one_object_per_input() {
    let scratch = Scratch::new("train-head");
    let train = data(&scratch);
    let model = model_arg("hidden");
    let heads: Vec<String> = ["a", "b"]
        .iter()
        .map(|name| scratch.0.join(name).display().to_string())
        .collect();
    for head in &heads {
        let out = gptrt(&[
            "train-head",
            "--model",
            &model,
            "--data",
            &train,
            "--out",
            head,
            "--seed",
            "7",
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["train_examples"].as_u64().unwrap() + report["valid_examples"].as_u64().unwrap(),
            60
        );
        assert_eq!(report["confusion"].as_array().unwrap().len(), 6);
    }
    for file in ["head.safetensors", "labels.json"] {
        let a = std::fs::read(scratch.0.join("a").join(file)).unwrap();
        let b = std::fs::read(scratch.0.join("b").join(file)).unwrap();
        assert_eq!(
            a, b,
            "{file} differs between two runs with the same data and seed"
        );
    }

    let out = gptrt(&[
        "classify",
        "--model",
        &model,
        "--head",
        &heads[0],
        "--input-file",
        &train,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // How many, how fast and where, for people; stdout stays the JSON lines alone.
    let said = stderr(&out);
    assert!(
        said.contains("[60 texts in ")
            && said.contains("texts/s | provider: CPUExecutionProvider]"),
        "{said}"
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 60);
    for line in &lines {
        let scores = line["scores"].as_object().unwrap();
        assert_eq!(scores.len(), 6);
        let sum: f64 = scores.values().map(|p| p.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{line}");
        assert!(scores.contains_key(line["label"].as_str().unwrap()));
    }

    let out = gptrt(&[
        "classify", "--model", &model, "--labels", "a,b", "--text", "   ",
    ]);
    assert_fails(&out, &["--text is empty"]);
    let out = gptrt(&[
        "classify", "--model", &model, "--labels", "a,a", "--text", "hi",
    ]);
    assert_fails(&out, &["label `a` appears twice"]);
    // A text past the context window is named by its place in the file, and the fix is one the
    // command has (it has no --truncate).
    let long = scratch.0.join("long.jsonl");
    let words = "word ".repeat(200);
    std::fs::write(
        &long,
        format!("{{\"text\": \"hi\"}}\n{{\"text\": \"{words}\"}}\n"),
    )
    .unwrap();
    let out = gptrt(&[
        "classify",
        "--model",
        &model,
        "--labels",
        "a,b",
        "--input-file",
        long.to_str().unwrap(),
    ]);
    assert_fails(
        &out,
        &[
            "text 2: a text of ",
            "tokens is longer than the model's context window (128): shorten it",
        ],
    );
    let out = gptrt(&[
        "classify",
        "--model",
        &model_arg("single"),
        "--head",
        &heads[0],
        "--text",
        "hi",
    ]);
    assert_fails(&out, &["last_hidden_state", "add_hidden_states.py"]);
    let bad = scratch.0.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"text\": \"fine\", \"label\": \"x\"}\n{\"text\": \"\", \"label\": \"y\"}\n",
    )
    .unwrap();
    let out = gptrt(&[
        "train-head",
        "--model",
        &model,
        "--data",
        &bad.display().to_string(),
        "--out",
        &heads[1],
    ]);
    assert_fails(&out, &["bad.jsonl line 2", "text is empty"]);
}

#[test]
fn qa_prints_character_offsets_into_the_context() {
    let context = "Zoë moved to Zürich, in 1999.";
    let out = gptrt(&[
        "qa",
        "--model",
        &model_arg("hidden"),
        "--context",
        context,
        "--question",
        "Where?",
        "--extractive",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let chars: Vec<char> = context.chars().collect();
    let (start, end) = (
        answer["start"].as_u64().unwrap() as usize,
        answer["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(
        chars[start..end].iter().collect::<String>(),
        answer["answer"].as_str().unwrap()
    );
    let out = gptrt(&[
        "qa",
        "--model",
        &model_arg("hidden"),
        "--context",
        "",
        "--question",
        "Why?",
    ]);
    assert_fails(&out, &["the context is empty"]);
}
