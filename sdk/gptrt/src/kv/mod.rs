//! The KV cache of a batch between steps: where it lives (the provider's device), the shared
//! past/present buffer of graphs that update it in place, and the host-side operations batching
//! and beam search need (pad, trim, merge rows, reorder rows).

use ort::value::Tensor;

use crate::error::{Error, Result};

mod device;
mod sequence;
mod shared;

pub(crate) use device::CacheDevice;
use device::{cache_tensor, with_host_data};
use shared::Contiguous;
pub(crate) use shared::SharedKv;

/// The key/value cache of a batch: one tensor per layer and kind, `[batch, heads, length, head_dim]`,
/// the previous step's present outputs fed back as the next step's past inputs without copying; or,
/// for graphs that share the past/present buffer, [`SharedKv`]. Either way the tensors live on the
/// [`CacheDevice`] of the session's provider.
#[derive(Default)]
pub(crate) struct KvCache {
    pub(crate) values: Vec<Tensor<f32>>,
    pub(crate) shared: Option<SharedKv>,
}

impl KvCache {
    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty() && self.shared.is_none()
    }

    /// Apply `f` to every cache tensor's `(shape, data)`, replacing the tensor with its result.
    fn rebuild(
        &mut self,
        what: &str,
        mut f: impl FnMut(&[i64], &[f32]) -> (Vec<i64>, Vec<f32>),
    ) -> Result<()> {
        if let Some(shared) = self.shared.take() {
            let parts: Vec<Contiguous> = shared
                .contiguous(what)?
                .into_iter()
                .map(|(dims, data)| f(&dims, &data))
                .collect();
            let len = parts.first().map_or(0, |(dims, _)| dims[2] as usize);
            self.shared = Some(SharedKv::from_contiguous(
                parts,
                shared.heads,
                shared.head_dim,
                SharedKv::capacity_for(len + 1).max(shared.capacity),
                shared.device,
            )?);
            return Ok(());
        }
        for value in &mut self.values {
            let device = CacheDevice::of(value);
            let (dims, data) = with_host_data(value, what, &mut f)?;
            *value = cache_tensor(dims, data, &device, what)?;
        }
        Ok(())
    }

    /// Insert `extra` zero positions at the start of the sequence axis of every row (left padding,
    /// masked out by the attention mask).
    pub(crate) fn pad_left(&mut self, extra: usize) -> Result<()> {
        self.rebuild("padding", |shape, data| {
            let (outer, len, inner) = (
                shape[0] as usize * shape[1] as usize,
                shape[2] as usize,
                shape[3] as usize,
            );
            let mut out = Vec::with_capacity(outer * (len + extra) * inner);
            for block in data.chunks_exact(len * inner).take(outer) {
                out.extend(std::iter::repeat_n(0.0, extra * inner));
                out.extend_from_slice(block);
            }
            (
                vec![shape[0], shape[1], (len + extra) as i64, shape[3]],
                out,
            )
        })
    }

    /// Drop the first `count` positions of the sequence axis (padding no row needs any more).
    pub(crate) fn drop_left(&mut self, count: usize) -> Result<()> {
        self.rebuild("trimming", |shape, data| {
            let (outer, len, inner) = (
                shape[0] as usize * shape[1] as usize,
                shape[2] as usize,
                shape[3] as usize,
            );
            let mut out = Vec::with_capacity(outer * (len - count) * inner);
            for block in data.chunks_exact(len * inner).take(outer) {
                out.extend_from_slice(&block[count * inner..]);
            }
            (
                vec![shape[0], shape[1], (len - count) as i64, shape[3]],
                out,
            )
        })
    }

    /// Append another cache's rows (same sequence length) after this one's.
    pub(crate) fn append_rows(&mut self, other: KvCache) -> Result<()> {
        if let (Some(mine), Some(theirs)) = (&self.shared, &other.shared) {
            if mine.len != theirs.len || mine.tensors.len() != theirs.tensors.len() {
                return Err(Error::Internal {
                    context: "the KV cache",
                    message: format!(
                        "cannot merge shared caches of {} and {} positions",
                        mine.len, theirs.len
                    ),
                });
            }
            let parts = mine
                .contiguous("merging")?
                .into_iter()
                .zip(theirs.contiguous("merging")?)
                .map(|((mut dims, mut data), (extra_dims, extra))| {
                    dims[0] += extra_dims[0];
                    data.extend_from_slice(&extra);
                    (dims, data)
                })
                .collect();
            let (heads, head_dim, capacity) = (mine.heads, mine.head_dim, mine.capacity);
            let device = mine.device.clone();
            self.shared = Some(SharedKv::from_contiguous(
                parts, heads, head_dim, capacity, device,
            )?);
            return Ok(());
        }
        if self.values.len() != other.values.len() {
            return Err(Error::Internal {
                context: "the KV cache",
                message: "caches of different layer counts cannot be merged".to_string(),
            });
        }
        for (value, extra) in self.values.iter_mut().zip(other.values) {
            let (shape, extra_shape) = (value.shape().to_vec(), extra.shape().to_vec());
            if shape[1..] != extra_shape[1..] {
                return Err(Error::Internal {
                    context: "the KV cache",
                    message: format!("cannot merge caches of shapes {shape:?} and {extra_shape:?}"),
                });
            }
            let mut dims = shape;
            dims[0] += extra_shape[0];
            let merged = with_host_data(value, "merging", |_, data| {
                with_host_data(&extra, "merging", |_, extra_data| {
                    data.iter().chain(extra_data).copied().collect::<Vec<f32>>()
                })
            })??;
            *value = cache_tensor(dims, merged, &CacheDevice::of(value), "merging")?;
        }
        Ok(())
    }

    /// Rebuild the cache so that row `i` holds the old row `rows[i]` (beam search reordering).
    /// Copies only when the order actually changes.
    pub(crate) fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        let batch = match (&self.shared, self.values.first()) {
            (Some(shared), _) => shared.batch,
            (None, Some(value)) => value.shape()[0] as usize,
            (None, None) => return Ok(()),
        };
        if rows.len() == batch && rows.iter().enumerate().all(|(i, &row)| i == row) {
            return Ok(());
        }
        let mut result = Ok(());
        self.rebuild("reordering", |shape, data| {
            let batch = shape[0] as usize;
            if rows.iter().any(|&row| row >= batch) {
                result = Err(Error::Internal {
                    context: "the KV cache",
                    message: format!("KV cache batch {batch} cannot be reordered to rows {rows:?}"),
                });
                return (shape.to_vec(), data.to_vec());
            }
            let row_len = data.len() / batch.max(1);
            let mut gathered = Vec::with_capacity(row_len * rows.len());
            for &row in rows {
                gathered.extend_from_slice(&data[row * row_len..(row + 1) * row_len]);
            }
            let mut dims = shape.to_vec();
            dims[0] = rows.len() as i64;
            (dims, gathered)
        })?;
        result
    }
}
