//! Which standard GPT-2 export a graph is, read from its inputs and outputs (never its file name).

use std::path::Path;

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use crate::config::ModelConfig;
use crate::error::{Error, Result};

/// The export layouts gptrt runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layout {
    /// One graph with `past_key_values.N.key/value` inputs (empty on the first step) and
    /// `present.N.key/value` outputs (optimum's `model.onnx`).
    Single,
    /// `decoder_model.onnx` for the prompt and `decoder_with_past_model.onnx` for each next token.
    Split,
    /// `decoder_model_merged.onnx`: past inputs plus a `use_cache_branch` switch.
    Merged,
    /// No past at all: the whole sequence is recomputed every step (slow but correct).
    NoPast,
}

impl Layout {
    /// Short stable name (`single`, `split`, `merged`, `no-past`), used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Single => "single",
            Layout::Split => "split",
            Layout::Merged => "merged",
            Layout::NoPast => "no-past",
        }
    }

    /// One line for people.
    pub fn description(self) -> &'static str {
        match self {
            Layout::Single => "single graph with past_key_values inputs and present outputs (KV cache)",
            Layout::Split => "split: decoder_model (prompt) + decoder_with_past_model (each next token) (KV cache)",
            Layout::Merged => "merged decoder with use_cache_branch (KV cache)",
            Layout::NoPast => "no past key/values: full recompute every step (no KV cache)",
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One graph input or output as declared in the ONNX file (`-1` for a dynamic dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// Element type, as ONNX Runtime names it (`Int64`, `Float32`, ...).
    pub element_type: String,
    /// Declared shape; `-1` where dynamic.
    pub shape: Vec<i64>,
}

/// What one graph takes and gives, checked against the model config.
#[derive(Debug, Clone)]
pub struct Signature {
    /// Every input, in graph order.
    pub inputs: Vec<TensorInfo>,
    /// Every output, in graph order.
    pub outputs: Vec<TensorInfo>,
    /// The graph has `attention_mask`.
    pub has_attention_mask: bool,
    /// The graph has `position_ids`.
    pub has_position_ids: bool,
    /// The graph has `use_cache_branch`.
    pub has_use_cache_branch: bool,
    /// The graph has `past_key_values.N.key/value` inputs.
    pub has_past: bool,
    /// The graph returns every `present.N.key/value` output.
    pub has_present: bool,
    /// The graph has the optional int64 scalar `logits_to_keep` (an overridable initializer, as
    /// `models/export_fused.py` writes it): fed 1, it computes the last position's logits only.
    pub has_logits_to_keep: bool,
    /// `logits_to_keep` is a plain input without a default (as `export_fused.py --shared-kv` writes
    /// it, since IO binding cannot feed an overridable initializer): it is fed on every step.
    pub logits_to_keep_is_input: bool,
    /// The graph has `past_sequence_length` (`export_fused.py --shared-kv`): past and present are
    /// one `[batch, heads, capacity, head_dim]` buffer per layer, bound as both input and output, so
    /// a step writes only its new positions instead of copying the whole cache.
    pub shares_kv_buffer: bool,
    /// Operators of the graph or its subgraphs that compute one number over the whole batch, such
    /// as dynamic int8 quantization's `DynamicQuantizeLinear` (one activation scale for all rows):
    /// with any, a sequence batched with others can get other tokens than it gets alone. Empty for
    /// fp32 graphs and for every recipe of `models/quantize.py` but `int8-dynamic` (per-row or
    /// constant activation scales, weight-only `MatMulNBits`).
    pub batch_dependent_ops: Vec<String>,
    /// The graph returns `last_hidden_state` `[batch, sequence, n_embd]` (float32, ln_f's output at
    /// every position; `models/add_hidden_states.py` or `export_fused.py --hidden-states` add it),
    /// which features and trained classification heads read. Generation never fetches it.
    pub has_hidden_states: bool,
}

/// The optional input that limits the LM head to the last N positions (0 = all).
pub(crate) const LOGITS_TO_KEEP: &str = "logits_to_keep";
/// The input of a shared-buffer graph that says how many cache positions are filled.
pub(crate) const PAST_SEQUENCE_LENGTH: &str = "past_sequence_length";
/// The optional output with the final hidden state (after ln_f).
pub const LAST_HIDDEN_STATE: &str = "last_hidden_state";

pub(crate) fn past_name(layer: usize, key: bool) -> String {
    format!(
        "past_key_values.{layer}.{}",
        if key { "key" } else { "value" }
    )
}

pub(crate) fn present_name(layer: usize, key: bool) -> String {
    format!("present.{layer}.{}", if key { "key" } else { "value" })
}

fn describe(value_type: &ValueType) -> (String, Vec<i64>, Option<TensorElementType>) {
    match value_type {
        ValueType::Tensor { ty, shape, .. } => (format!("{ty:?}"), shape.to_vec(), Some(*ty)),
        other => (format!("{other:?}"), Vec::new(), None),
    }
}

impl Signature {
    /// Read a session's inputs and outputs and check them against `config`. Every problem names
    /// the tensor at fault.
    pub(crate) fn read(session: &Session, path: &Path, config: &ModelConfig) -> Result<Signature> {
        let layout_error = |message: String| Error::Layout {
            path: path.to_path_buf(),
            message,
        };
        let mut inputs = Vec::new();
        let mut has_past_tensor = vec![false; config.n_layer * 2];
        let mut flags = (false, false, false, false); // input_ids, attention_mask, position_ids, use_cache_branch
        let (mut logits_to_keep_input, mut shares_kv_buffer) = (false, false);
        for outlet in session.inputs() {
            let name = outlet.name();
            let (element_type, shape, ty) = describe(outlet.dtype());
            let expect = |wanted: TensorElementType| -> Result<()> {
                if ty == Some(wanted) {
                    Ok(())
                } else {
                    Err(layout_error(format!(
                        "input `{name}` is {element_type}, expected {wanted:?}"
                    )))
                }
            };
            match name {
                "input_ids" => {
                    expect(TensorElementType::Int64)?;
                    flags.0 = true;
                }
                "attention_mask" => {
                    expect(TensorElementType::Int64)?;
                    flags.1 = true;
                }
                "position_ids" => {
                    expect(TensorElementType::Int64)?;
                    flags.2 = true;
                }
                "use_cache_branch" => {
                    expect(TensorElementType::Bool)?;
                    flags.3 = true;
                }
                LOGITS_TO_KEEP => {
                    expect(TensorElementType::Int64)?;
                    logits_to_keep_input = true;
                }
                PAST_SEQUENCE_LENGTH => {
                    expect(TensorElementType::Int32)?;
                    shares_kv_buffer = true;
                }
                _ => {
                    let slot = (0..config.n_layer).find_map(|layer| {
                        [true, false]
                            .into_iter()
                            .find(|&key| past_name(layer, key) == name)
                            .map(|key| layer * 2 + usize::from(!key))
                    });
                    let Some(slot) = slot else {
                        let hint = if name.starts_with("past_") {
                            " (ONNX Runtime's stacked past_N converter layout is not supported; export with optimum)"
                        } else if name.starts_with("past_key_values.") {
                            " (more layers than config.json's n_layer?)"
                        } else {
                            ""
                        };
                        return Err(layout_error(format!("unexpected input `{name}`{hint}")));
                    };
                    expect(TensorElementType::Float32)?;
                    check_kv_shape(name, &shape, config).map_err(layout_error)?;
                    has_past_tensor[slot] = true;
                }
            }
            inputs.push(TensorInfo {
                name: name.to_string(),
                element_type,
                shape,
            });
        }
        if !flags.0 {
            return Err(layout_error(
                "missing input `input_ids`: not a GPT-2 decoder graph".to_string(),
            ));
        }
        let has_past = has_past_tensor.iter().any(|&present| present);
        if has_past {
            if let Some(missing) = has_past_tensor.iter().position(|&present| !present) {
                return Err(layout_error(format!(
                    "missing input `{}` (config.json says n_layer = {})",
                    past_name(missing / 2, missing % 2 == 0),
                    config.n_layer
                )));
            }
            if !flags.1 {
                return Err(layout_error(
                    "missing input `attention_mask` (needed with past key/values)".to_string(),
                ));
            }
        }
        if flags.3 && !has_past {
            return Err(layout_error(
                "input `use_cache_branch` without past_key_values inputs".to_string(),
            ));
        }
        if shares_kv_buffer && (!has_past || flags.3) {
            return Err(layout_error(format!(
                "input `{PAST_SEQUENCE_LENGTH}` (a shared past/present buffer) needs past_key_values inputs and no `use_cache_branch`"
            )));
        }

        let mut outputs = Vec::new();
        let mut has_logits = false;
        let mut has_hidden_states = false;
        let mut has_present = vec![false; config.n_layer * 2];
        for outlet in session.outputs() {
            let name = outlet.name();
            let (element_type, shape, ty) = describe(outlet.dtype());
            if name == "logits" {
                if ty != Some(TensorElementType::Float32) {
                    return Err(layout_error(format!(
                        "output `logits` is {element_type}, expected Float32"
                    )));
                }
                if shape.len() == 2 {
                    return Err(layout_error(
                        "output `logits` is [batch, num_labels]: a sequence-classification graph \
                         (GPT2ForSequenceClassification), not a language model; run it with \
                         gptrt::tasks::SequenceClassifier (`gptrt classify --model DIR`)"
                            .to_string(),
                    ));
                }
                if shape.len() != 3 {
                    return Err(layout_error(format!(
                        "output `logits` has rank {}, expected [batch, sequence, vocab]",
                        shape.len()
                    )));
                }
                if shape[2] > 0 && shape[2] as usize != config.vocab_size {
                    return Err(layout_error(format!(
                        "output `logits` has vocabulary dimension {} but config.json says vocab_size = {}",
                        shape[2], config.vocab_size
                    )));
                }
                has_logits = true;
            } else if name == LAST_HIDDEN_STATE {
                check_hidden_shape(&shape, ty, config).map_err(layout_error)?;
                has_hidden_states = true;
            } else if let Some(slot) =
                (0..config.n_layer * 2).find(|slot| present_name(slot / 2, slot % 2 == 0) == name)
            {
                check_kv_shape(name, &shape, config).map_err(layout_error)?;
                has_present[slot] = true;
            }
            outputs.push(TensorInfo {
                name: name.to_string(),
                element_type,
                shape,
            });
        }
        if !has_logits {
            return Err(layout_error(
                "missing output `logits`: not a GPT-2 language-model graph".to_string(),
            ));
        }
        if has_past {
            if let Some(missing) = has_present.iter().position(|&present| !present) {
                return Err(layout_error(format!(
                    "missing output `{}` (graph has past inputs, so it must return present)",
                    present_name(missing / 2, missing % 2 == 0)
                )));
            }
        }
        Ok(Signature {
            inputs,
            outputs,
            // filled by the caller, which has the graph's bytes
            batch_dependent_ops: Vec::new(),
            has_attention_mask: flags.1,
            has_position_ids: flags.2,
            has_use_cache_branch: flags.3,
            has_past,
            has_present: has_present.iter().all(|&present| present),
            has_logits_to_keep: logits_to_keep_input
                || session.overridable_initializers().iter().any(|initializer| {
                    initializer.name() == LOGITS_TO_KEEP
                        && matches!(
                            initializer.dtype(),
                            ValueType::Tensor { ty: TensorElementType::Int64, shape, .. } if shape.is_empty()
                        )
                }),
            logits_to_keep_is_input: logits_to_keep_input,
            shares_kv_buffer,
            has_hidden_states,
        })
    }
}

fn check_hidden_shape(
    shape: &[i64],
    ty: Option<TensorElementType>,
    config: &ModelConfig,
) -> std::result::Result<(), String> {
    if ty != Some(TensorElementType::Float32) {
        return Err(format!("output `{LAST_HIDDEN_STATE}` is not Float32"));
    }
    if shape.len() != 3 {
        return Err(format!(
            "output `{LAST_HIDDEN_STATE}` has rank {}, expected [batch, sequence, n_embd]",
            shape.len()
        ));
    }
    if shape[2] > 0 && shape[2] as usize != config.n_embd {
        return Err(format!(
            "output `{LAST_HIDDEN_STATE}` has width {} but config.json says n_embd = {}",
            shape[2], config.n_embd
        ));
    }
    Ok(())
}

fn check_kv_shape(
    name: &str,
    shape: &[i64],
    config: &ModelConfig,
) -> std::result::Result<(), String> {
    if shape.len() != 4 {
        return Err(format!(
            "`{name}` has rank {}, expected [batch, heads, sequence, head_dim]",
            shape.len()
        ));
    }
    for (axis, what, wanted) in [
        (1, "n_head", config.n_head),
        (3, "n_embd / n_head", config.head_dim()),
    ] {
        if shape[axis] > 0 && shape[axis] as usize != wanted {
            return Err(format!(
                "`{name}` has dimension {axis} = {} but config.json gives {what} = {wanted}",
                shape[axis]
            ));
        }
    }
    Ok(())
}
