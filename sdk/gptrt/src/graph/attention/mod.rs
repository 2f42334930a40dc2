//! `ai.gptrt:CachedAttention`, gptrt's own ONNX Runtime operator: causal multi-head attention of a
//! step's new tokens over a KV cache that the caller binds as both its past input and its present
//! output, updated in place (the `--shared-kv --attention gptrt` export of
//! `models/export_fused.py`).
//!
//! Why not ONNX Runtime's `MultiHeadAttention`: on the CPU it multiplies each head's queries by its
//! keys through a general matrix product that first copies (packs) the keys, then makes a second
//! pass for the values. A turn of 16 new tokens after 800 tokens of history spent 9.8 ms of a 48 ms
//! step there (124M fp32), against 2.3 ms after 32 tokens. This kernel reads each key and value
//! once per step and is batch-invariant by construction (see [`kernel`]).
//!
//! Inputs, as `MultiHeadAttention`'s without its attention-bias slot: query, key, value
//! `[batch, seq, hidden]` (before the bias), bias `[3 * hidden]`, key padding mask int32
//! `[batch, past + seq]`, past key and value `[batch, heads, capacity, head_dim]`,
//! past_sequence_length int32 `[1]`. Outputs: attention `[batch, seq, hidden]`, present key and
//! value (the cache, same shape as the past). Attributes: `num_heads`, `scale`.

mod kernel;

use std::cell::RefCell;

use ort::operator::{
    ComputeContext, Kernel, KernelContext, Operator, OperatorDomain, OperatorInput, OperatorOutput,
};
use ort::value::TensorElementType;

use crate::worker::panic_message;

/// The operator domain of gptrt's own operators.
pub(crate) const DOMAIN: &str = "ai.gptrt";

/// The domain to register on every session: graphs without the operator never call it.
pub(crate) fn operators() -> ort::Result<OperatorDomain> {
    OperatorDomain::new(DOMAIN)?.add(CachedAttention)
}

struct CachedAttention;

impl Operator for CachedAttention {
    type Kernel<'attr> = AttentionKernel;

    fn name(&self) -> &str {
        "CachedAttention"
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        use TensorElementType::{Float32, Int32};
        [
            Float32, Float32, Float32, Float32, Int32, Float32, Float32, Int32,
        ]
        .map(OperatorInput::required)
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        (0..3).map(|_| OperatorOutput::required(TensorElementType::Float32))
    }

    fn create_kernel<'attr>(&self, info: &KernelContext<'attr>) -> ort::Result<AttentionKernel> {
        let heads = info
            .get::<i64>("num_heads")
            .filter(|&h| h > 0)
            .ok_or_else(|| {
                ort::Error::new("CachedAttention: num_heads must be a positive integer")
            })?;
        let scale = info
            .get::<f32>("scale")
            .ok_or_else(|| ort::Error::new("CachedAttention: the scale attribute is missing"))?;
        Ok(AttentionKernel {
            heads: heads as usize,
            scale,
        })
    }
}

struct AttentionKernel {
    heads: usize,
    scale: f32,
}

thread_local! {
    static SCRATCH: RefCell<(kernel::Scratch, Vec<f32>, Vec<f32>)> = RefCell::default();
}

/// Raw pointers handed to ONNX Runtime's worker threads: each task writes only its own head's
/// columns of the output and reads the cache, which no task writes.
#[derive(Clone, Copy)]
struct Shared {
    out: *mut f32,
    keys: *const f32,
    values: *const f32,
}
// SAFETY: see the type's documentation; the pointers outlive the parallel loop.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

fn error(message: String) -> ort::Error {
    ort::Error::new(format!("CachedAttention: {message}"))
}

impl Kernel for AttentionKernel {
    /// ONNX Runtime calls this through C: a panic must not unwind into it (it would abort the
    /// host), so one becomes the step's error.
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.attend(ctx))).unwrap_or_else(
            |panic| Err(error(format!("internal error: {}", panic_message(&panic)))),
        )
    }
}

impl AttentionKernel {
    fn attend(&self, ctx: &ComputeContext) -> ort::Result<()> {
        let input = |index: usize| {
            ctx.input(index)?
                .ok_or_else(|| error(format!("input {index} is missing")))
        };
        let (query, key, value, bias, mask) =
            (input(0)?, input(1)?, input(2)?, input(3)?, input(4)?);
        let (past_key, past_value, past_len) = (input(5)?, input(6)?, input(7)?);
        let (q_shape, q) = query.try_extract_tensor::<f32>()?;
        let (_, k) = key.try_extract_tensor::<f32>()?;
        let (_, v) = value.try_extract_tensor::<f32>()?;
        let (_, bias) = bias.try_extract_tensor::<f32>()?;
        let (mask_shape, mask) = mask.try_extract_tensor::<i32>()?;
        let (_, past_len) = past_len.try_extract_tensor::<i32>()?;
        let cache_shape = past_key.shape().to_vec();
        let (batch, seq, hidden) = match **q_shape {
            [b, s, h] => (b as usize, s as usize, h as usize),
            _ => {
                return Err(error(format!(
                    "query must be [batch, seq, hidden], not {q_shape}"
                )))
            }
        };
        let heads = self.heads;
        if hidden == 0 || hidden % heads != 0 {
            return Err(error(format!(
                "the query's width {hidden} is not a positive multiple of num_heads {heads}"
            )));
        }
        let head_dim = hidden / heads;
        let past = past_len.first().copied().unwrap_or(-1);
        let capacity = match *cache_shape {
            [b, h, c, d] if b as usize == batch && h as usize == heads && d as usize == head_dim => {
                c as usize
            }
            _ => {
                return Err(error(format!(
                    "the past key must be [{batch}, {heads}, capacity, {head_dim}], not {cache_shape:?}"
                )))
            }
        };
        if past_value.shape().to_vec() != cache_shape {
            return Err(error(format!(
                "the past value must have the past key's shape {cache_shape:?}, not {:?}",
                past_value.shape().to_vec()
            )));
        }
        let past = usize::try_from(past)
            .map_err(|_| error(format!("past_sequence_length {past} is negative")))?;
        let total = past + seq;
        if k.len() != q.len() || v.len() != q.len() || bias.len() != 3 * hidden {
            return Err(error(format!(
                "query, key, value must be [{batch}, {seq}, {hidden}] with {heads} heads and the bias [{}]",
                3 * hidden
            )));
        }
        if **mask_shape != [batch as i64, total as i64] {
            return Err(error(format!(
                "the mask must be [{batch}, {total}] (past {past} + {seq} new), not {mask_shape}"
            )));
        }
        if total > capacity {
            return Err(error(format!(
                "{total} positions do not fit a cache of {capacity}"
            )));
        }

        let mut present_key = ctx
            .output(1, cache_shape.clone())?
            .ok_or_else(|| error("present key output missing".into()))?;
        let mut present_value = ctx
            .output(2, cache_shape.clone())?
            .ok_or_else(|| error("present value output missing".into()))?;
        let mut attention = ctx
            .output(0, vec![batch as i64, seq as i64, hidden as i64])?
            .ok_or_else(|| error("attention output missing".into()))?;
        let block = capacity * head_dim;
        for (past_cache, present, new, offset) in [
            (&past_key, &mut present_key, k, hidden),
            (&past_value, &mut present_value, v, 2 * hidden),
        ] {
            let source = past_cache.try_extract_tensor::<f32>()?.1.as_ptr();
            let (_, cache) = present.try_extract_tensor_mut::<f32>()?;
            if !std::ptr::eq(source, cache.as_ptr()) {
                // Not bound in place: the past comes over first.
                let (_, old) = past_cache.try_extract_tensor::<f32>()?;
                for (to, from) in cache.chunks_exact_mut(block).zip(old.chunks_exact(block)) {
                    to[..past * head_dim].copy_from_slice(&from[..past * head_dim]);
                }
            }
            let bias = &bias[offset..offset + hidden];
            for b in 0..batch {
                for s in 0..seq {
                    let row = &new[(b * seq + s) * hidden..][..hidden];
                    for h in 0..heads {
                        let at = ((b * heads + h) * capacity + past + s) * head_dim;
                        for ((c, &x), &bias) in cache[at..at + head_dim]
                            .iter_mut()
                            .zip(&row[h * head_dim..])
                            .zip(&bias[h * head_dim..])
                        {
                            *c = x + bias;
                        }
                    }
                }
            }
        }

        let (_, out) = attention.try_extract_tensor_mut::<f32>()?;
        let shared = Shared {
            out: out.as_mut_ptr(),
            keys: present_key.try_extract_tensor_mut::<f32>()?.1.as_ptr(),
            values: present_value.try_extract_tensor_mut::<f32>()?.1.as_ptr(),
        };
        let (scale, q_bias) = (self.scale, &bias[..hidden]);
        let attend_head = move |task: usize| {
            let shared = shared;
            let (b, h) = (task / heads, task % heads);
            SCRATCH.with_borrow_mut(|(scratch, queries, result)| {
                queries.clear();
                for s in 0..seq {
                    let row = &q[(b * seq + s) * hidden + h * head_dim..][..head_dim];
                    let bias = &q_bias[h * head_dim..][..head_dim];
                    queries.extend(row.iter().zip(bias).map(|(&x, &b)| (x + b) * scale));
                }
                result.clear();
                result.resize(seq * head_dim, 0.0);
                let at = (b * heads + h) * block;
                // SAFETY: the cache outlives the loop and no task writes it.
                let (keys, values) = unsafe {
                    (
                        std::slice::from_raw_parts(shared.keys.add(at), total * head_dim),
                        std::slice::from_raw_parts(shared.values.add(at), total * head_dim),
                    )
                };
                let head = kernel::Head {
                    queries,
                    keys,
                    values,
                    attends: &mask[b * total..(b + 1) * total],
                    past,
                    head_dim,
                };
                kernel::attend(&head, result, scratch);
                for (s, row) in result.chunks_exact(head_dim).enumerate() {
                    // SAFETY: this task alone writes head h's columns of row (b, s).
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            row.as_ptr(),
                            shared.out.add((b * seq + s) * hidden + h * head_dim),
                            head_dim,
                        );
                    }
                }
            });
        };
        // Set by a task that panicked (on one of ONNX Runtime's threads, where it must not unwind).
        let failed = std::sync::Mutex::new(None);
        ctx.par_for(batch * heads, batch * heads, |task| {
            let run = std::panic::AssertUnwindSafe(|| attend_head(task));
            if let Err(panic) = std::panic::catch_unwind(run) {
                if let Ok(mut failed) = failed.lock() {
                    *failed = Some(panic_message(&panic));
                }
            }
        })?;
        match failed.into_inner().ok().flatten() {
            Some(message) => Err(error(format!("internal error: {message}"))),
            None => Ok(()),
        }
    }
}
