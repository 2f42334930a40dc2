//! `inspect` reports whether batching can change a sequence's tokens; `--begin-suppress-tokens`
//! reaches the chain, and banning every token is an error, never a banned token.

use std::process::Output;

mod common;

use common::*;

/// `inspect` says whether batching can change a sequence's tokens: not for the fp32 fixture, but
/// for a dynamic int8 graph (the fixture with a DynamicQuantizeLinear added, as onnxruntime's
/// quantize_dynamic writes one before each MatMul).
#[test]
fn inspect_reports_whether_a_graph_is_batch_invariant() {
    let out = gptrt(&["inspect", "--model", &model_arg("single")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("batching:  batch-invariant"), "{text}");

    let dir = std::env::temp_dir().join(format!("gptrt-cli-dynamic-int8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let graph = std::fs::read(fixture("single").join("model.onnx")).unwrap();
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
    std::fs::copy(
        fixture("single").join("config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    std::fs::copy(fixture("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let model = dir.to_str().unwrap();
    let out = gptrt(&["inspect", "--model", model]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let json_out = gptrt(&["inspect", "--model", model, "--json"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("batching:  NOT batch-invariant: DynamicQuantizeLinear"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(json["batch_invariant"], false);
    assert_eq!(
        json["batch_dependent_ops"],
        serde_json::json!(["DynamicQuantizeLinear"])
    );
    assert_eq!(
        json["graphs"][0]["batch_dependent_ops"],
        serde_json::json!(["DynamicQuantizeLinear"])
    );
}

#[test]
fn begin_suppress_tokens_reach_the_chain_and_a_full_ban_is_an_error() {
    let model = model_arg("single");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--model",
            &model,
            "--prompt",
            "Hello world",
            "--max-new-tokens",
            "4",
            "--json",
        ];
        args.extend_from_slice(extra);
        gptrt(&args)
    };
    let json = |out: Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    for beams in ["1", "3"] {
        let plain = json(run(&["--num-beams", beams]));
        let first = plain["token_ids"][0].as_u64().unwrap().to_string();
        let banned = json(run(&[
            "--num-beams",
            beams,
            "--begin-suppress-tokens",
            &first,
        ]));
        assert_ne!(
            banned["token_ids"][0], plain["token_ids"][0],
            "beams {beams}"
        );
    }
    // Too long for one command-line argument: every token id, through a generation config file.
    let dir = std::env::temp_dir().join(format!("gptrt-cli-ban-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("generation_config.json");
    let all: Vec<u32> = (0..50257).collect();
    std::fs::write(
        &config,
        serde_json::json!({ "suppress_tokens": all }).to_string(),
    )
    .unwrap();
    let config = config.display().to_string();
    for extra in [
        &[][..],
        &["--do-sample", "--seed", "1"],
        &["--num-beams", "2"],
    ] {
        let mut args = vec!["--generation-config", config.as_str()];
        args.extend_from_slice(extra);
        assert_fails(&run(&args), &["suppress_tokens", "banned every token"]);
    }
    std::fs::remove_dir_all(&dir).ok();
}
