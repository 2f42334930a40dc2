//! Fixture paths and reference data shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use serde::Deserialize;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixtures() -> PathBuf {
    repo().join("models/fixtures")
}

pub fn tiny() -> PathBuf {
    fixtures().join("tiny-random-gpt2")
}

pub const LAYOUTS: [(&str, gptrt::Layout); 6] = [
    ("single", gptrt::Layout::Single),
    ("split", gptrt::Layout::Split),
    ("merged", gptrt::Layout::Merged),
    ("nopast", gptrt::Layout::NoPast),
    // models/export_fused.py: the single layout's interface over ONNX Runtime's fused ops
    // (MultiHeadAttention with past and padding mask, SkipLayerNormalization, FastGelu).
    ("fused", gptrt::Layout::Single),
    // export_fused.py --shared-kv: one past/present buffer per layer, bound in place (IO binding)
    ("fused-shared", gptrt::Layout::Single),
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
