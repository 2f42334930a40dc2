//! The shared past/present buffer of graphs that update the cache in place.

use ort::value::Tensor;

use crate::error::{Error, Result};
use crate::kv::device::{with_host_data, CacheDevice};

/// The cache of a shared-buffer graph (`Signature::shares_kv_buffer`): one ONNX Runtime tensor per
/// layer and kind, `[batch, heads, capacity, head_dim]`, bound as both the past input and the present
/// output, so each step writes only its new positions. The first `len` positions are filled.
pub(crate) struct SharedKv {
    pub(crate) tensors: Vec<Tensor<f32>>,
    pub(crate) device: CacheDevice,
    pub(crate) batch: usize,
    pub(crate) heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) capacity: usize,
    pub(crate) len: usize,
}

/// One cache tensor as a plain `[batch, heads, len, head_dim]` array.
pub(crate) type Contiguous = (Vec<i64>, Vec<f32>);

impl SharedKv {
    /// Room for `needed` positions and then some: growing copies the cache once, so it leaves a
    /// quarter (at least 64 positions) of headroom.
    pub(crate) fn capacity_for(needed: usize) -> usize {
        (needed + (needed / 4).max(64)).div_ceil(64) * 64
    }

    /// Cache tensors on `device` for `batch` rows holding `parts` (each
    /// `[batch, heads, len, head_dim]`, possibly empty), with room for `capacity` positions.
    pub(crate) fn from_contiguous(
        parts: Vec<Contiguous>,
        heads: usize,
        head_dim: usize,
        capacity: usize,
        device: CacheDevice,
    ) -> Result<SharedKv> {
        let err = |e| Error::ort("allocating the shared KV cache", e);
        let (mut batch, mut len) = (0, 0);
        let mut tensors = Vec::with_capacity(parts.len());
        for (dims, data) in parts {
            batch = dims[0] as usize;
            len = dims[2] as usize;
            let capacity = capacity.max(len);
            let allocator = ort::memory::Allocator::default();
            let mut tensor =
                Tensor::<f32>::new(&allocator, [batch, heads, capacity, head_dim]).map_err(err)?;
            let (_, buffer) = tensor.extract_tensor_mut();
            // Positions past `len` are never read (a step reads `past_sequence_length + seq` of
            // them; ort's `Tensor::new` has zeroed them); debug builds make them NaN so that any
            // read of them fails the tests.
            if cfg!(debug_assertions) {
                buffer.fill(f32::NAN);
            }
            if len > 0 {
                for (row, block) in data.chunks_exact(len * head_dim).enumerate() {
                    let at = row * capacity * head_dim;
                    buffer[at..at + block.len()].copy_from_slice(block);
                }
            }
            // a copy made by ONNX Runtime, so it can be bound as an output like the host tensor
            tensors.push(device.place(tensor).map_err(err)?);
        }
        Ok(SharedKv {
            tensors,
            device,
            batch,
            heads,
            head_dim,
            capacity: capacity.max(len),
            len,
        })
    }

    /// Every tensor's filled positions as `[batch, heads, len, head_dim]` arrays in host memory.
    pub(crate) fn contiguous(&self, what: &str) -> Result<Vec<Contiguous>> {
        let (len, width) = (self.len, self.head_dim);
        let dims = vec![
            self.batch as i64,
            self.heads as i64,
            len as i64,
            width as i64,
        ];
        self.tensors
            .iter()
            .map(|tensor| {
                with_host_data(tensor, what, |_, data| {
                    let mut out = Vec::with_capacity(self.batch * self.heads * len * width);
                    for block in data.chunks_exact(self.capacity * width) {
                        out.extend_from_slice(&block[..len * width]);
                    }
                    (dims.clone(), out)
                })
            })
            .collect()
    }
}
