//! Fixture paths and reference data shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use serde::Deserialize;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A plugin crate's cdylib in this test profile's folder (target/<profile>), built by cargo first
/// so that a change to the plugin is never tested stale (cargo does nothing when it is fresh).
pub fn plugin_library(package: &str) -> PathBuf {
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.args(["build", "-p", package]);
    if dir.ends_with("release") {
        command.arg("--release");
    }
    assert!(command.status().unwrap().success(), "building {package}");
    dir.join(format!("lib{}.so", package.replace('-', "_")))
}

pub fn fixtures() -> PathBuf {
    repo().join("models/fixtures")
}

pub fn tiny() -> PathBuf {
    fixtures().join("tiny-random-gpt2")
}

pub const LAYOUTS: [(&str, gptrt::Layout); 7] = [
    ("single", gptrt::Layout::Single),
    ("split", gptrt::Layout::Split),
    ("merged", gptrt::Layout::Merged),
    ("nopast", gptrt::Layout::NoPast),
    // models/export_fused.py: the single layout's interface over ONNX Runtime's fused ops
    // (MultiHeadAttention with past and padding mask, SkipLayerNormalization, FastGelu).
    ("fused", gptrt::Layout::Single),
    // export_fused.py --shared-kv: one past/present buffer per layer, bound in place (IO binding)
    ("fused-shared", gptrt::Layout::Single),
    // export_fused.py --shared-kv --attention gptrt: gptrt's own CachedAttention operator
    ("fused-shared-gptrt", gptrt::Layout::Single),
];

#[derive(Debug, Deserialize)]
pub struct Reference {
    pub max_new_tokens: usize,
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
pub struct Case {
    pub name: String,
    pub prompt: String,
    pub prompt_ids: Vec<u32>,
    pub greedy_ids: Vec<u32>,
    pub logits_file: String,
}

pub fn reference() -> Reference {
    let text = std::fs::read_to_string(tiny().join("reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("reference.json parses")
}

pub fn reference_logits(case: &Case) -> Vec<f32> {
    let bytes = std::fs::read(tiny().join(&case.logits_file)).expect("logits file");
    bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .collect()
}

pub fn load(layout_dir: &str) -> gptrt::Model {
    gptrt::Model::load(tiny().join(layout_dir))
        .unwrap_or_else(|e| panic!("loading {layout_dir}: {e}"))
}

pub fn greedy(max_new_tokens: usize) -> gptrt::GenerationConfig {
    gptrt::GenerationConfig {
        max_new_tokens: Some(max_new_tokens),
        ..Default::default()
    }
}

/// `graph` (a serialized ONNX model) with a `DynamicQuantizeLinear` added, as a dynamic int8 export
/// has one before each quantized MatMul. It reads a Constant and nothing reads it, so the model
/// computes what it did. The nodes go in a second `graph` field, which protobuf merges into the
/// first (its repeated `node` field grows).
pub fn with_dynamic_quantization(graph: &[u8]) -> Vec<u8> {
    // every field here is shorter than 128 bytes: a one-byte length
    let field = |number: u8, bytes: &[u8]| [&[number << 3 | 2, bytes.len() as u8], bytes].concat();
    // AttributeProto: name, f = 1.0 (field 2, fixed32), type = FLOAT (field 20, varint 1)
    let one = [
        field(1, b"value_float"),
        vec![2 << 3 | 5],
        1f32.to_le_bytes().to_vec(),
        vec![0xa0, 0x01, 0x01],
    ]
    .concat();
    // NodeProto: input 1, output 2, op_type 4, attribute 5
    let constant = [field(2, b"dq_x"), field(4, b"Constant"), field(5, &one)].concat();
    let quantize = [
        field(1, b"dq_x"),
        field(2, b"dq_y"),
        field(2, b"dq_scale"),
        field(2, b"dq_zero_point"),
        field(4, b"DynamicQuantizeLinear"),
    ]
    .concat();
    let nodes = [field(1, &constant), field(1, &quantize)].concat();
    [graph, &field(7, &nodes)].concat()
}

/// A model folder in the temp dir: the tiny fixture's single graph [`with_dynamic_quantization`],
/// its config.json and tokenizer.json. The caller removes it.
pub fn dynamic_int8_folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gptrt-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let single = tiny().join("single");
    let graph = std::fs::read(single.join("model.onnx")).unwrap();
    std::fs::write(dir.join("model.onnx"), with_dynamic_quantization(&graph)).unwrap();
    std::fs::copy(single.join("config.json"), dir.join("config.json")).unwrap();
    std::fs::copy(tiny().join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    dir
}
