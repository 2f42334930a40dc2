//! Saving a session's sequence to bytes and restoring it: the format of docs/saved-sessions.md.
//!
//! Header (152 bytes, little-endian): magic `GPTRTSES`, format version (u32), flags (u32: the KV
//! encoding), the model's [`Fingerprint`] (96 bytes), the payload's length (u64) and its SHA-256
//! (32 bytes). Payload: the token ids, the random state, the last turn's settings (JSON), the
//! stop filter's held text, the caller's data, and optionally the KV cache's filled positions (fp32 or fp16).
//! Every length read from the bytes is checked against what is left and against the model before
//! anything is allocated.

use half::f16;
use half::slice::HalfFloatSliceExt;
use sha2::{Digest, Sha256};

use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::kv::{CacheDevice, KvCache};
use crate::model::{Fingerprint, Model};

use super::context::Context;
use super::Session;

/// The first 8 bytes of every saved session.
pub const MAGIC: &[u8; 8] = b"GPTRTSES";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 4 + 96 + 8 + 32;
/// The most bytes of settings JSON a saved state may hold.
const MAX_CONFIG_JSON: usize = 1 << 20;
/// The most bytes of the caller's data a saved state may hold.
const MAX_APP_DATA: usize = 16 << 20;

/// Whether (and how) a saved session holds its KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedKv {
    /// Tokens only (about 4 bytes a token): restoring runs them through the model again at the
    /// next turn.
    None,
    /// The filled positions as fp32: restored exactly.
    F32,
    /// The filled positions as fp16 (half the bytes; the restored cache is rounded to fp16).
    F16,
}

impl SavedKv {
    fn flag(self) -> u32 {
        match self {
            SavedKv::None => 0,
            SavedKv::F32 => 1,
            SavedKv::F16 => 2,
        }
    }
}

fn damaged(message: impl Into<String>) -> Error {
    Error::SavedState {
        message: message.into(),
    }
}

impl Session {
    /// The session's sequence as bytes (the format of docs/saved-sessions.md): token ids, random
    /// state, the last turn's settings and, with `kv`, the KV cache's filled positions. Restore
    /// it with [`Session::restore`] on a session over the same model. [`Error::Busy`] while a
    /// generation runs.
    pub fn save(&self, kv: SavedKv) -> Result<Vec<u8>> {
        self.save_with_data(kv, &[])
    }

    /// [`Session::save`] with `data` of the caller's own kept beside the sequence (a dialogue's
    /// turn boundaries, a game's NPC id; at most 16 MB), returned by
    /// [`Session::restore_with_data`].
    pub fn save_with_data(&self, kv: SavedKv, data: &[u8]) -> Result<Vec<u8>> {
        if data.len() > MAX_APP_DATA {
            return Err(Error::InvalidArgument {
                name: "data",
                message: format!("{} bytes, more than {MAX_APP_DATA}", data.len()),
            });
        }
        let fingerprint = self.model.fingerprint()?;
        let context = self.context()?;
        let mut payload = Vec::with_capacity(64 + context.tokens.len() * 4);
        put_u32(&mut payload, len_u32(context.tokens.len(), "token count")?);
        for &id in &context.tokens {
            put_u32(&mut payload, id);
        }
        payload.extend_from_slice(&context.next_seed.to_le_bytes());
        let config = match &context.last_config {
            Some(config) => serde_json::to_vec(config).map_err(|e| Error::Internal {
                context: "saving a session",
                message: format!("the settings do not serialize: {e}"),
            })?,
            None => Vec::new(),
        };
        put_u32(&mut payload, len_u32(config.len(), "settings")?);
        payload.extend_from_slice(&config);
        // The stop filter holds text only inside a turn; between turns (when a session can be
        // saved) it is empty. Kept so that a later version can save mid-turn.
        put_u32(&mut payload, 0);
        put_u32(&mut payload, len_u32(data.len(), "data")?);
        payload.extend_from_slice(data);
        let mut kv = kv;
        if context.cached == 0 {
            kv = SavedKv::None;
        }
        if kv != SavedKv::None {
            let parts = context.cache.to_parts()?;
            let config = self.model.config();
            put_u32(&mut payload, len_u32(context.cached, "cached positions")?);
            put_u32(&mut payload, len_u32(parts.len(), "cache tensors")?);
            put_u32(&mut payload, len_u32(config.n_head, "heads")?);
            put_u32(&mut payload, len_u32(config.head_dim(), "head size")?);
            for (dims, data) in &parts {
                let expected = [
                    1,
                    config.n_head as i64,
                    context.cached as i64,
                    config.head_dim() as i64,
                ];
                if dims[..] != expected {
                    return Err(Error::Internal {
                        context: "saving a session",
                        message: format!("a cache tensor of shape {dims:?}, expected {expected:?}"),
                    });
                }
                match kv {
                    SavedKv::F16 => {
                        // the slice conversion uses the CPU's F16C instructions where it has them
                        let mut halves = vec![f16::ZERO; data.len()];
                        halves.convert_from_f32_slice(data);
                        for half in halves {
                            payload.extend_from_slice(&half.to_le_bytes());
                        }
                    }
                    _ => {
                        for &value in data {
                            payload.extend_from_slice(&value.to_le_bytes());
                        }
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(MAGIC);
        put_u32(&mut out, FORMAT_VERSION);
        put_u32(&mut out, kv.flag());
        out.extend_from_slice(&fingerprint.to_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&Sha256::digest(&payload));
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Replace the session's sequence with a saved one ([`Session::save`]). A state saved for
    /// another model is refused naming both fingerprints; a damaged or truncated one is refused
    /// naming what is wrong. Either way the session keeps what it held. A state without its KV
    /// cache runs its tokens through the model at the next turn. [`Error::Busy`] while a
    /// generation runs.
    pub fn restore(&self, bytes: &[u8]) -> Result<()> {
        self.restore_with_data(bytes).map(drop)
    }

    /// [`Session::restore`], returning the caller's data saved with
    /// [`Session::save_with_data`] (empty when none).
    pub fn restore_with_data(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let (restored, data) = parse(&self.model, bytes)?;
        *self.context()? = restored;
        Ok(data)
    }

    /// A new session (with its own worker) holding a saved sequence.
    pub fn from_saved(model: std::sync::Arc<Model>, bytes: &[u8]) -> Result<Session> {
        let (restored, _) = parse(&model, bytes)?;
        let session = Session::new(model)?;
        *session.shared.lock_context() = restored;
        Ok(session)
    }
}

fn len_u32(len: usize, what: &str) -> Result<u32> {
    u32::try_from(len).map_err(|_| Error::Internal {
        context: "saving a session",
        message: format!("{what} ({len}) does not fit the format's 32-bit count"),
    })
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Reads a payload front to back; every read checks what is left.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize, what: &str) -> Result<&'a [u8]> {
        if count > self.bytes.len() {
            return Err(damaged(format!(
                "truncated: {what} needs {count} bytes, {} are left",
                self.bytes.len()
            )));
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let bytes = self.take(8, what)?;
        let mut out = [0u8; 8];
        out.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(out))
    }

    /// A count of items of `size` bytes each, refused when they could not fit what is left (so
    /// nothing is allocated for a count the bytes cannot back) or exceed `max`.
    fn count(&mut self, size: usize, max: usize, what: &str) -> Result<usize> {
        let count = self.u32(what)? as usize;
        if count > max {
            return Err(damaged(format!(
                "{what} is {count}, more than the most this model allows ({max})"
            )));
        }
        if count.saturating_mul(size) > self.bytes.len() {
            return Err(damaged(format!(
                "truncated: {count} {what} need {} bytes, {} are left",
                count.saturating_mul(size),
                self.bytes.len()
            )));
        }
        Ok(count)
    }
}

/// Check and decode a saved state for `model`.
fn parse(model: &Model, bytes: &[u8]) -> Result<(Context, Vec<u8>)> {
    let magic_len = bytes.len().min(8);
    if bytes[..magic_len] != MAGIC[..magic_len] || bytes.is_empty() {
        return Err(damaged("not a gptrt saved session (no GPTRTSES magic)"));
    }
    if bytes.len() < HEADER_LEN {
        return Err(damaged(format!(
            "truncated: {} bytes, the header alone is {HEADER_LEN}",
            bytes.len()
        )));
    }
    let mut header = Reader {
        bytes: &bytes[..HEADER_LEN],
    };
    if header.take(8, "magic")? != MAGIC {
        return Err(damaged("not a gptrt saved session (no GPTRTSES magic)"));
    }
    let version = header.u32("format version")?;
    if version != FORMAT_VERSION {
        return Err(damaged(format!(
            "format version {version}; this gptrt reads version {FORMAT_VERSION}"
        )));
    }
    let flags = header.u32("flags")?;
    let kv = match flags {
        0 => SavedKv::None,
        1 => SavedKv::F32,
        2 => SavedKv::F16,
        other => return Err(damaged(format!("unknown flags {other:#x}"))),
    };
    let mut saved_for = [0u8; 96];
    saved_for.copy_from_slice(header.take(96, "fingerprint")?);
    let saved_for = Fingerprint::from_bytes(&saved_for);
    let payload_len = header.u64("payload length")?;
    let checksum = header.take(32, "checksum")?;
    let payload = &bytes[HEADER_LEN..];
    if payload_len != payload.len() as u64 {
        return Err(damaged(format!(
            "truncated or extended: the header says {payload_len} payload bytes, {} follow it",
            payload.len()
        )));
    }
    if Sha256::digest(payload).as_slice() != checksum {
        return Err(damaged(
            "damaged: the payload does not match its SHA-256 checksum",
        ));
    }
    let fingerprint = model.fingerprint()?;
    if saved_for != fingerprint {
        return Err(damaged(format!(
            "saved for another model: the state's model is [{saved_for}], this one is \
             [{fingerprint}] ({} differ)",
            saved_for.differences(&fingerprint).join(", ")
        )));
    }
    let config = model.config();
    let mut reader = Reader { bytes: payload };
    // A session may hold more than one window of tokens (appended, not yet run); bounded anyway.
    let max_tokens = config.n_positions.saturating_mul(64);
    let count = reader.count(4, max_tokens, "token ids")?;
    let mut tokens = Vec::with_capacity(count);
    for _ in 0..count {
        tokens.push(reader.u32("a token id")?);
    }
    model
        .check_ids(&tokens)
        .map_err(|e| damaged(format!("{e}")))?;
    let next_seed = reader.u64("random state")?;
    let config_len = reader.count(1, MAX_CONFIG_JSON, "settings bytes")?;
    let last_config = match config_len {
        0 => None,
        len => {
            let json = reader.take(len, "settings")?;
            Some(
                serde_json::from_slice::<GenerationConfig>(json)
                    .map_err(|e| damaged(format!("the settings are not valid JSON: {e}")))?,
            )
        }
    };
    let held = reader.count(1, MAX_CONFIG_JSON, "stop filter bytes")?;
    reader.take(held, "stop filter text")?;
    let data_len = reader.count(1, MAX_APP_DATA, "data bytes")?;
    let data = reader.take(data_len, "data")?.to_vec();
    let (cache, cached) = match kv {
        SavedKv::None => (KvCache::default(), 0),
        SavedKv::F32 | SavedKv::F16 => read_cache(model, &mut reader, kv, tokens.len())?,
    };
    if !reader.bytes.is_empty() {
        return Err(damaged(format!(
            "{} unexpected bytes after the payload",
            reader.bytes.len()
        )));
    }
    Ok((
        Context {
            tokens,
            cache,
            cached,
            next_seed,
            tokens_run: 0,
            last_config,
        },
        data,
    ))
}

fn read_cache(
    model: &Model,
    reader: &mut Reader<'_>,
    kv: SavedKv,
    tokens: usize,
) -> Result<(KvCache, usize)> {
    let config = model.config();
    let cached = reader.u32("cached positions")? as usize;
    if cached == 0 || cached > tokens || cached > config.n_positions {
        return Err(damaged(format!(
            "{cached} cached positions for {tokens} tokens (window {})",
            config.n_positions
        )));
    }
    let tensors = reader.u32("cache tensors")? as usize;
    let heads = reader.u32("heads")? as usize;
    let head_dim = reader.u32("head size")? as usize;
    if tensors != config.n_layer * 2 || heads != config.n_head || head_dim != config.head_dim() {
        return Err(damaged(format!(
            "a cache of {tensors} tensors x {heads} heads x {head_dim}, the model has {} x {} x {}",
            config.n_layer * 2,
            config.n_head,
            config.head_dim()
        )));
    }
    if !model.uses_cache() {
        return Err(damaged("a KV cache for a layout without one (no-past)"));
    }
    let values = heads * cached * head_dim;
    let width = if kv == SavedKv::F16 { 2 } else { 4 };
    let needed = tensors.saturating_mul(values).saturating_mul(width);
    if needed != reader.bytes.len() {
        return Err(damaged(format!(
            "the cache needs {needed} bytes, {} are left",
            reader.bytes.len()
        )));
    }
    let mut parts = Vec::with_capacity(tensors);
    for _ in 0..tensors {
        let raw = reader.take(values * width, "a cache tensor")?;
        let data: Vec<f32> = if kv == SavedKv::F16 {
            let halves: Vec<f16> = raw
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]))
                .collect();
            let mut data = vec![0.0; halves.len()];
            halves.convert_to_f32_slice(&mut data);
            data
        } else {
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        parts.push((vec![1, heads as i64, cached as i64, head_dim as i64], data));
    }
    let device = CacheDevice::for_provider(model.provider_choice());
    let shared = model
        .graphs()
        .first()
        .is_some_and(|(_, s)| s.shares_kv_buffer);
    Ok((KvCache::from_parts(parts, shared, &device)?, cached))
}
