//! One forward step of a graph: feed ids, the attention mask and positions, the KV cache (as past
//! inputs, or bound in place for a shared-buffer graph), and read back logits and the new cache.

use std::borrow::Cow;

use ort::session::{OutputSelector, RunOptions, SessionInputValue};
use ort::value::{Tensor, TensorRef, TensorValueType};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::graph::signature::{
    past_name, present_name, LAST_HIDDEN_STATE, LOGITS_TO_KEEP, PAST_SEQUENCE_LENGTH,
};
use crate::graph::Graph;
use crate::kv::{CacheDevice, KvCache, SharedKv};

/// One forward pass over a `[batch, seq]` block of ids.
pub(crate) struct StepInput<'a> {
    pub batch: usize,
    pub seq: usize,
    pub input_ids: &'a [i64],
    /// `[batch, past + seq]`.
    pub attention_mask: &'a [i64],
    /// `[batch, seq]`.
    pub position_ids: &'a [i64],
}

impl Graph {
    /// Run one step of this graph over `input`: on return `logits` holds the last position of each
    /// row (`[batch, vocab]`), or every fed position (`[batch, seq, vocab]`) when `all_positions`,
    /// and `cache` holds the graph's `present` outputs when `keeps_cache`.
    pub(crate) fn run(
        &self,
        config: &ModelConfig,
        keeps_cache: bool,
        input: &StepInput<'_>,
        cache: &mut KvCache,
        logits: &mut Vec<f32>,
        all_positions: bool,
    ) -> Result<()> {
        let graph = self;
        let signature = &graph.signature;
        let context = || format!("running {}", graph.path.display());
        let ort_err = |e: ort::Error| Error::ort(context(), e);
        let (batch, seq) = (input.batch, input.seq);
        let past_len = input.attention_mask.len() / batch - seq;
        if signature.shares_kv_buffer {
            return self.run_shared(config, input, cache, logits, all_positions, None);
        }

        let inputs = self.feeds(config, input, cache, all_positions)?;

        let mut session = graph.session();
        // On a GPU the presents are written straight into tensors in its memory, where the next
        // step reads them as its past; outputs not given a tensor (the logits) come to the host.
        // On the host, the outputs ONNX Runtime allocates from its arena already are where the
        // cache belongs, while a tensor made here would be zeroed first (ort's `Tensor::new`
        // writes every byte: 10-25 % of a 16-row decode step of gpt2-small).
        let cache_device = CacheDevice::for_provider(&graph.provider);
        let options;
        // Generation never reads `last_hidden_state`: not fetching it spares its copy out of the
        // arena, where ONNX Runtime would otherwise have to keep it for us.
        let skip_hidden = signature.has_hidden_states;
        let mut outputs = if (keeps_cache && !cache_device.is_host()) || skip_hidden {
            let mut selected = OutputSelector::default();
            if skip_hidden {
                selected = selected.without(LAST_HIDDEN_STATE);
            }
            if keeps_cache && !cache_device.is_host() {
                let allocator = cache_device.allocator(&session).map_err(ort_err)?;
                let shape = [batch, config.n_head, past_len + seq, config.head_dim()];
                for slot in 0..config.n_layer * 2 {
                    let present = Tensor::<f32>::new(&allocator, shape).map_err(ort_err)?;
                    selected = selected.preallocate(present_name(slot / 2, slot % 2 == 0), present);
                }
            }
            options = RunOptions::new().map_err(ort_err)?.with_outputs(selected);
            session.run_with_options(inputs, &options)
        } else {
            session.run(inputs)
        }
        .map_err(ort_err)?;
        read_logits(
            config.vocab_size,
            &outputs,
            input,
            logits,
            all_positions,
            &context,
        )?;
        if keeps_cache {
            cache.values.clear();
            for slot in 0..config.n_layer * 2 {
                let name = present_name(slot / 2, slot % 2 == 0);
                let value = outputs
                    .remove(&name)
                    .ok_or_else(|| Error::UnexpectedOutput {
                        tensor: name.clone(),
                        message: "missing from the run's outputs".to_string(),
                    })?
                    .downcast::<TensorValueType<f32>>()
                    .map_err(|e| Error::UnexpectedOutput {
                        tensor: name.clone(),
                        message: format!("not a float32 tensor ({e})"),
                    })?;
                cache.values.push(value);
            }
        }
        Ok(())
    }

    /// The named inputs of one step over `input` (everything but a shared-buffer graph's bindings):
    /// ids, mask, positions, `use_cache_branch`, `logits_to_keep` (1 unless `all_positions`) and the
    /// past (empty on the first step).
    pub(crate) fn feeds<'a>(
        &self,
        config: &ModelConfig,
        input: &StepInput<'a>,
        cache: &'a KvCache,
        all_positions: bool,
    ) -> Result<Vec<(Cow<'a, str>, SessionInputValue<'a>)>> {
        let first_step = cache.is_empty();
        let signature = &self.signature;
        let ort_err = |e: ort::Error| Error::ort(format!("running {}", self.path.display()), e);
        let (batch, seq) = (input.batch, input.seq);
        let past_len = input.attention_mask.len() / batch - seq;
        let mut inputs: Vec<(Cow<'a, str>, SessionInputValue<'a>)> =
            Vec::with_capacity(signature.inputs.len());
        inputs.push((
            "input_ids".into(),
            TensorRef::from_array_view(([batch, seq], input.input_ids))
                .map_err(ort_err)?
                .into(),
        ));
        if signature.has_attention_mask {
            inputs.push((
                "attention_mask".into(),
                TensorRef::from_array_view(([batch, past_len + seq], input.attention_mask))
                    .map_err(ort_err)?
                    .into(),
            ));
        }
        if signature.has_position_ids {
            inputs.push((
                "position_ids".into(),
                TensorRef::from_array_view(([batch, seq], input.position_ids))
                    .map_err(ort_err)?
                    .into(),
            ));
        }
        if signature.has_use_cache_branch {
            let use_cache = Tensor::from_array(([1usize], vec![!first_step])).map_err(ort_err)?;
            inputs.push(("use_cache_branch".into(), use_cache.into()));
        }
        if signature.has_logits_to_keep && (signature.logits_to_keep_is_input || !all_positions) {
            let keep = Tensor::from_array(([0usize; 0], vec![i64::from(!all_positions)]))
                .map_err(ort_err)?;
            inputs.push((LOGITS_TO_KEEP.into(), keep.into()));
        }
        if signature.has_past {
            let layers = config.n_layer;
            if first_step {
                let shape = [batch, config.n_head, 0, config.head_dim()];
                for slot in 0..layers * 2 {
                    let empty = Tensor::from_array((shape, Vec::<f32>::new())).map_err(ort_err)?;
                    inputs.push((past_name(slot / 2, slot % 2 == 0).into(), empty.into()));
                }
            } else {
                for (slot, value) in cache.values.iter().enumerate() {
                    inputs.push((past_name(slot / 2, slot % 2 == 0).into(), value.into()));
                }
            }
        }
        Ok(inputs)
    }

    /// [`Graph::run`] for a shared-buffer graph: the cache tensors are bound as both
    /// past inputs and present outputs (ONNX Runtime IO binding), so the step writes only its new
    /// positions into them. With `hidden`, `last_hidden_state` is read into it too.
    pub(crate) fn run_shared(
        &self,
        config: &ModelConfig,
        input: &StepInput<'_>,
        cache: &mut KvCache,
        logits: &mut Vec<f32>,
        all_positions: bool,
        hidden: Option<&mut Vec<f32>>,
    ) -> Result<()> {
        let graph = self;
        let context = || format!("running {}", graph.path.display());
        let ort_err = |e: ort::Error| Error::ort(context(), e);
        let (batch, seq) = (input.batch, input.seq);
        let past_len = input.attention_mask.len() / batch - seq;
        let (heads, head_dim) = (config.n_head, config.head_dim());
        let shared = match cache.shared.take() {
            None => {
                let empty = (
                    vec![batch as i64, heads as i64, 0, head_dim as i64],
                    Vec::new(),
                );
                SharedKv::from_contiguous(
                    vec![empty; config.n_layer * 2],
                    heads,
                    head_dim,
                    SharedKv::capacity_for(seq),
                    CacheDevice::for_provider(&graph.provider),
                )?
            }
            Some(shared) if shared.batch != batch || shared.len != past_len => {
                return Err(Error::Internal {
                    context: "the KV cache",
                    message: format!(
                        "the shared KV cache holds {} rows x {} positions, the step expects {batch} x {past_len}",
                        shared.batch, shared.len
                    ),
                })
            }
            Some(shared) if past_len + seq > shared.capacity => SharedKv::from_contiguous(
                shared.contiguous("growing")?,
                heads,
                head_dim,
                SharedKv::capacity_for(past_len + seq),
                shared.device,
            )?,
            Some(shared) => shared,
        };
        let shared = cache.shared.insert(shared);

        let mut session = graph.session();
        let mut binding = session.create_binding().map_err(ort_err)?;
        let owned_i64 =
            |shape: [usize; 2], data: &[i64]| Tensor::from_array((shape, data.to_vec()));
        binding
            .bind_input(
                "input_ids",
                &owned_i64([batch, seq], input.input_ids).map_err(ort_err)?,
            )
            .map_err(ort_err)?;
        binding
            .bind_input(
                "attention_mask",
                &owned_i64([batch, past_len + seq], input.attention_mask).map_err(ort_err)?,
            )
            .map_err(ort_err)?;
        if graph.signature.has_position_ids {
            binding
                .bind_input(
                    "position_ids",
                    &owned_i64([batch, seq], input.position_ids).map_err(ort_err)?,
                )
                .map_err(ort_err)?;
        }
        let filled = i32::try_from(past_len).map_err(|_| Error::ContextOverflow {
            prompt_tokens: past_len,
            n_positions: config.n_positions,
        })?;
        binding
            .bind_input(
                PAST_SEQUENCE_LENGTH,
                &Tensor::from_array(([1usize], vec![filled])).map_err(ort_err)?,
            )
            .map_err(ort_err)?;
        if graph.signature.has_logits_to_keep {
            let keep = Tensor::from_array(([0usize; 0], vec![i64::from(!all_positions)]))
                .map_err(ort_err)?;
            binding.bind_input(LOGITS_TO_KEEP, &keep).map_err(ort_err)?;
        }
        for (slot, tensor) in shared.tensors.iter_mut().enumerate() {
            let key = slot % 2 == 0;
            binding
                .bind_input(past_name(slot / 2, key), &*tensor)
                .map_err(ort_err)?;
            binding
                .bind_output(present_name(slot / 2, key), &mut *tensor)
                .map_err(ort_err)?;
        }
        let cpu = ort::memory::MemoryInfo::new(
            ort::memory::AllocationDevice::CPU,
            0,
            ort::memory::AllocatorType::Device,
            ort::memory::MemoryType::Default,
        )
        .map_err(ort_err)?;
        binding
            .bind_output_to_device("logits", &cpu)
            .map_err(ort_err)?;
        if hidden.is_some() {
            binding
                .bind_output_to_device(LAST_HIDDEN_STATE, &cpu)
                .map_err(ort_err)?;
        }
        let outputs = session.run_binding(&binding).map_err(ort_err)?;
        if let Some(hidden) = hidden {
            *hidden = read_hidden(config, &outputs, input, &context)?;
        }
        read_logits(
            config.vocab_size,
            &outputs,
            input,
            logits,
            all_positions,
            &context,
        )?;
        shared.len = past_len + seq;
        Ok(())
    }
}

/// `last_hidden_state` (`[batch, seq, n_embd]`) out of a run's outputs, its shape checked.
pub(crate) fn read_hidden(
    config: &ModelConfig,
    outputs: &ort::session::SessionOutputs<'_>,
    input: &StepInput<'_>,
    context: &dyn Fn() -> String,
) -> Result<Vec<f32>> {
    let value = outputs
        .get(LAST_HIDDEN_STATE)
        .ok_or_else(|| Error::UnexpectedOutput {
            tensor: LAST_HIDDEN_STATE.to_string(),
            message: "missing from the run's outputs".to_string(),
        })?;
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| Error::ort(context(), e))?;
    let expected = [input.batch as i64, input.seq as i64, config.n_embd as i64];
    if shape[..] != expected {
        return Err(Error::UnexpectedOutput {
            tensor: LAST_HIDDEN_STATE.to_string(),
            message: format!("shape {shape:?}, expected {expected:?}"),
        });
    }
    Ok(data.to_vec())
}

/// Copy the logits a step needs out of its outputs: the last position of each row, or every
/// position when `all_positions`.
fn read_logits(
    vocab: usize,
    outputs: &ort::session::SessionOutputs<'_>,
    input: &StepInput<'_>,
    logits: &mut Vec<f32>,
    all_positions: bool,
    context: &dyn Fn() -> String,
) -> Result<()> {
    let (batch, seq) = (input.batch, input.seq);
    let value = outputs
        .get("logits")
        .ok_or_else(|| Error::UnexpectedOutput {
            tensor: "logits".to_string(),
            message: "missing from the run's outputs".to_string(),
        })?;
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| Error::ort(context(), e))?;
    let out_seq = shape.get(1).copied().unwrap_or(-1);
    if shape.len() != 3 || shape[0] as usize != batch || shape[2] as usize != vocab || out_seq < 1 {
        return Err(Error::UnexpectedOutput {
            tensor: "logits".to_string(),
            message: format!("shape {shape:?}, expected [{batch}, {seq}, {vocab}]"),
        });
    }
    let out_seq = out_seq as usize;
    logits.clear();
    if all_positions {
        logits.extend_from_slice(&data[..batch * out_seq * vocab]);
    } else {
        for row in 0..batch {
            let last = (row * out_seq + out_seq - 1) * vocab;
            logits.extend_from_slice(&data[last..last + vocab]);
        }
    }
    Ok(())
}
