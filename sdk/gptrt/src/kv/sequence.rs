//! What a session does with the cache of its one sequence: cut it back (rewind), copy it (fork),
//! and move its filled positions in and out of plain arrays (save and restore).

use crate::error::{Error, Result};
use crate::kv::device::{cache_tensor, with_host_data, CacheDevice};
use crate::kv::shared::Contiguous;
use crate::kv::{KvCache, SharedKv};

impl KvCache {
    /// Positions the cache holds (of its first row).
    pub(crate) fn positions(&self) -> usize {
        match (&self.shared, self.values.first()) {
            (Some(shared), _) => shared.len,
            (None, Some(value)) => value.shape().get(2).map_or(0, |&len| len.max(0) as usize),
            (None, None) => 0,
        }
    }

    /// Keep only the first `len` positions. A shared buffer just forgets the rest (positions
    /// past its length are never read); separate tensors are rebuilt.
    pub(crate) fn truncate(&mut self, len: usize) -> Result<()> {
        if len == 0 {
            *self = KvCache::default();
            return Ok(());
        }
        if len >= self.positions() {
            return Ok(());
        }
        if let Some(shared) = &mut self.shared {
            shared.len = len;
            return Ok(());
        }
        self.rebuild("rewinding", |shape, data| {
            let (outer, old, inner) = (
                shape[0] as usize * shape[1] as usize,
                shape[2] as usize,
                shape[3] as usize,
            );
            let mut out = Vec::with_capacity(outer * len * inner);
            for block in data.chunks_exact(old * inner).take(outer) {
                out.extend_from_slice(&block[..len * inner]);
            }
            (vec![shape[0], shape[1], len as i64, shape[3]], out)
        })
    }

    /// Every tensor's filled positions as plain `[batch, heads, len, head_dim]` arrays in host
    /// memory, in the graph's order (layer 0 key, layer 0 value, layer 1 key, ...).
    pub(crate) fn to_parts(&self) -> Result<Vec<Contiguous>> {
        if let Some(shared) = &self.shared {
            return shared.contiguous("copying");
        }
        self.values
            .iter()
            .map(|value| {
                with_host_data(value, "copying", |dims, data| {
                    (dims.to_vec(), data.to_vec())
                })
            })
            .collect()
    }

    /// A cache holding `parts` ([`KvCache::to_parts`]'s arrays) on `device`, as a shared buffer
    /// when the model's graph updates its cache in place.
    pub(crate) fn from_parts(
        parts: Vec<Contiguous>,
        shared: bool,
        device: &CacheDevice,
    ) -> Result<KvCache> {
        if parts.is_empty() {
            return Ok(KvCache::default());
        }
        if shared {
            let dims = &parts[0].0;
            let (heads, head_dim, len) = (dims[1] as usize, dims[3] as usize, dims[2] as usize);
            return Ok(KvCache {
                values: Vec::new(),
                shared: Some(SharedKv::from_contiguous(
                    parts,
                    heads,
                    head_dim,
                    SharedKv::capacity_for(len + 1),
                    device.clone(),
                )?),
            });
        }
        let values = parts
            .into_iter()
            .map(|(dims, data)| cache_tensor(dims, data, device, "restoring"))
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache {
            values,
            shared: None,
        })
    }

    /// A copy of the cache on the same device (a fork: the copy never shares memory with this
    /// one, so each can grow on its own).
    pub(crate) fn duplicate(&self) -> Result<KvCache> {
        let device = match (&self.shared, self.values.first()) {
            (Some(shared), _) => shared.device.clone(),
            (None, Some(value)) => CacheDevice::of(value),
            (None, None) => return Ok(KvCache::default()),
        };
        let parts = self.to_parts()?;
        if parts.iter().any(|(dims, _)| dims.len() != 4) {
            return Err(Error::Internal {
                context: "the KV cache",
                message: "a cache tensor is not 4-dimensional".to_string(),
            });
        }
        KvCache::from_parts(parts, self.shared.is_some(), &device)
    }
}

impl KvCache {
    /// A one-row cache holding row `row` of this batch's cache from position `skip` on (the
    /// batch's left padding of that row left out).
    pub(crate) fn row_copy(&self, row: usize, skip: usize) -> Result<KvCache> {
        let device = match (&self.shared, self.values.first()) {
            (Some(shared), _) => shared.device.clone(),
            (None, Some(value)) => CacheDevice::of(value),
            (None, None) => return Ok(KvCache::default()),
        };
        let mut parts = Vec::new();
        for (dims, data) in self.to_parts()? {
            let (batch, heads, len, width) = (
                dims[0] as usize,
                dims[1] as usize,
                dims[2] as usize,
                dims[3] as usize,
            );
            if row >= batch || skip > len {
                return Err(Error::Internal {
                    context: "the KV cache",
                    message: format!("row {row} from {skip} of a cache of shape {dims:?}"),
                });
            }
            if len == skip {
                return Ok(KvCache::default());
            }
            let block = heads * len * width;
            let mine = &data[row * block..(row + 1) * block];
            let mut out = Vec::with_capacity(heads * (len - skip) * width);
            for head in mine.chunks_exact(len * width) {
                out.extend_from_slice(&head[skip * width..]);
            }
            parts.push((
                vec![1, heads as i64, (len - skip) as i64, width as i64],
                out,
            ));
        }
        KvCache::from_parts(parts, self.shared.is_some(), &device)
    }
}
