//! The host's services, safely wrapped for Rust plugin authors.

use std::ffi::{c_char, CStr, CString};

use crate::*;

/// Safe view of the host API for Rust plugins.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    api: GptrtHostApi,
}

// SAFETY: the host promises its API may be called from the thread using the plugin instance.
unsafe impl Send for Host {}

impl Host {
    /// Wrap a host API pointer (NULL gives a host without services).
    ///
    /// # Safety
    /// `api` is NULL or points to a host API struct valid for its `struct_size` bytes (at least
    /// the ABI 1.0 part) that outlives the plugin instance.
    pub unsafe fn from_raw(api: *const GptrtHostApi) -> Host {
        let empty = GptrtHostApi {
            struct_size: std::mem::size_of::<GptrtHostApi>(),
            abi: GPTRT_PLUGIN_ABI_VERSION,
            host_data: std::ptr::null_mut(),
            log: None,
            tokenize: None,
            detokenize: None,
            score: None,
            forward_logits: None,
            generate: None,
            free_string: None,
            get_capability: None,
            score_continuations: None,
            model_config_json: None,
        };
        let mut host = Host { api: empty };
        if api.is_null() {
            return host;
        }
        // SAFETY: a non-NULL `api` is valid for its `struct_size` bytes, which come first; read
        // the size alone, since an older host's struct is shorter than this crate's.
        let given = unsafe { api.cast::<usize>().read_unaligned() };
        // An older host's struct is a prefix of this one: take the slots it has, whole (every slot
        // after `abi` is one pointer), and keep the newer ones empty.
        let slot = std::mem::size_of::<usize>();
        let size = given.min(std::mem::size_of::<GptrtHostApi>()) / slot * slot;
        if size >= std::mem::offset_of!(GptrtHostApi, score_continuations) {
            // SAFETY: `api` is valid for `struct_size` >= `size` bytes, a whole-slot prefix of the
            // same layout.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    api.cast::<u8>(),
                    (&mut host.api as *mut GptrtHostApi).cast::<u8>(),
                    size,
                );
            }
            host.api.struct_size = std::mem::size_of::<GptrtHostApi>();
        }
        host
    }

    /// Log through the host.
    pub fn log(&self, level: i32, message: &str) {
        if let (Some(log), Ok(text)) = (self.api.log, CString::new(message)) {
            // SAFETY: the host API contract; the string lives for the call.
            unsafe { log(self.api.host_data, level, text.as_ptr()) };
        }
    }

    /// Tokenize text with the model's tokenizer.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, String> {
        let f = self.api.tokenize.ok_or("the host offers no tokenizer")?;
        let text = CString::new(text).map_err(|_| "text contains NUL".to_string())?;
        let mut ids = vec![0u32; text.as_bytes().len() + 1];
        let mut len = 0usize;
        // SAFETY: buffers are valid for their stated sizes.
        let status = unsafe {
            f(
                self.api.host_data,
                text.as_ptr(),
                ids.as_mut_ptr(),
                ids.len(),
                &mut len,
            )
        };
        if status != GPTRT_PLUGIN_OK {
            return Err(format!("host tokenize failed with status {status}"));
        }
        ids.truncate(len);
        Ok(ids)
    }

    /// Log-likelihood of `continuation` after `context`.
    pub fn score(&self, context: &[u32], continuation: &[u32]) -> Result<f64, String> {
        let f = self
            .api
            .score
            .ok_or("the host offers no scoring (no model attached)")?;
        let mut out = 0.0f64;
        // SAFETY: slices are valid for their lengths.
        let status = unsafe {
            f(
                self.api.host_data,
                context.as_ptr(),
                context.len(),
                continuation.as_ptr(),
                continuation.len(),
                &mut out,
            )
        };
        if status != GPTRT_PLUGIN_OK {
            return Err(format!("host score failed with status {status}"));
        }
        Ok(out)
    }
}

impl Host {
    /// The raw host API struct, for the capability wrappers of sibling modules.
    pub(crate) fn raw(&self) -> &GptrtHostApi {
        &self.api
    }

    /// The host's table for capability `id`, copied out: `None` when the host does not offer it
    /// or its `struct_size` is under `required` bytes. Slots past the host's `struct_size` (added
    /// by a later minor version) read as zero, so as `None`; only whole slots are copied.
    ///
    /// # Safety
    /// `T` is the capability's `#[repr(C)]` table: a `struct_size` first, then sizes, raw pointers
    /// and optional function pointers only (every field valid when zeroed), with no padding.
    pub(crate) unsafe fn capability<T: Copy>(&self, id: &str, required: usize) -> Option<T> {
        let get = self.api.get_capability?;
        let id = CString::new(id).ok()?;
        // SAFETY: a NUL-terminated id; the host returns NULL or a table valid for its life.
        let table = unsafe { get(self.api.host_data, id.as_ptr()) }.cast::<u8>();
        if table.is_null() {
            return None;
        }
        // SAFETY: non-NULL: a host table, whose size is read alone before the rest.
        let size = unsafe { table.cast::<usize>().read_unaligned() };
        let whole = std::mem::size_of::<T>();
        if size < required {
            return None;
        }
        let known = if size >= whole { whole } else { required };
        let mut out = std::mem::MaybeUninit::<T>::zeroed();
        // SAFETY: the host's table holds `size >= known` bytes; the rest stays zeroed, which is
        // valid for `T` by this function's contract.
        unsafe {
            std::ptr::copy_nonoverlapping(table, out.as_mut_ptr().cast::<u8>(), known);
            Some(out.assume_init())
        }
    }

    /// The log-likelihood of each continuation after `context`, the context run once (ABI 1.1);
    /// on a 1.0 host, [`Host::score`] for each.
    pub fn score_continuations(
        &self,
        context: &[u32],
        continuations: &[Vec<u32>],
    ) -> Result<Vec<f64>, String> {
        let Some(f) = self.api.score_continuations else {
            return continuations
                .iter()
                .map(|c| self.score(context, c))
                .collect();
        };
        let ids: Vec<u32> = continuations.iter().flatten().copied().collect();
        let lengths: Vec<usize> = continuations.iter().map(Vec::len).collect();
        let mut out = vec![0.0f64; continuations.len()];
        // SAFETY: every buffer is valid for the length passed with it.
        let status = unsafe {
            f(
                self.api.host_data,
                context.as_ptr(),
                context.len(),
                ids.as_ptr(),
                lengths.as_ptr(),
                lengths.len(),
                out.as_mut_ptr(),
            )
        };
        if status != GPTRT_PLUGIN_OK {
            return Err(format!(
                "host score_continuations failed with status {status}"
            ));
        }
        Ok(out)
    }

    /// The model's token byte table (capability `org.gptrt.token_bytes`), when the host offers it.
    pub fn token_bytes(&self) -> Option<TokenBytes<'_>> {
        // SAFETY: the capability's table type.
        let table: GptrtTokenBytes = unsafe {
            self.capability(
                GPTRT_CAPABILITY_TOKEN_BYTES,
                std::mem::size_of::<GptrtTokenBytes>(),
            )
        }?;
        let n = table.vocab_size;
        if table.offsets.is_null() || table.bytes.is_null() || table.special.is_null() {
            return None;
        }
        // SAFETY: the capability's contract: `n + 1` offsets, `n` flags, and the bytes they span,
        // alive as long as the host API (which outlives `self`).
        let (offsets, special) = unsafe {
            (
                std::slice::from_raw_parts(table.offsets, n + 1),
                std::slice::from_raw_parts(table.special, n),
            )
        };
        let total = *offsets.last()?;
        // SAFETY: as above.
        let bytes = unsafe { std::slice::from_raw_parts(table.bytes, total) };
        Some(TokenBytes {
            offsets,
            bytes,
            special,
        })
    }

    /// The model's `config.json` fields as a JSON object (ABI 1.1).
    pub fn model_config_json(&self) -> Result<String, String> {
        let (Some(f), Some(free)) = (self.api.model_config_json, self.api.free_string) else {
            return Err("the host does not report its model's config (ABI 1.0 host)".to_string());
        };
        let mut text: *mut c_char = std::ptr::null_mut();
        // SAFETY: `text` is valid for a write.
        let status = unsafe { f(self.api.host_data, &mut text) };
        if status != GPTRT_PLUGIN_OK || text.is_null() {
            return Err(format!(
                "host model_config_json failed with status {status}"
            ));
        }
        // SAFETY: a NUL-terminated string the host returned, released right after the copy.
        let json = unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: returned by this host's model_config_json.
        unsafe { free(self.api.host_data, text) };
        Ok(json)
    }
}

/// The model's token byte table, borrowed from the host ([`Host::token_bytes`]).
#[derive(Debug, Clone, Copy)]
pub struct TokenBytes<'a> {
    offsets: &'a [usize],
    bytes: &'a [u8],
    special: &'a [u8],
}

impl<'a> TokenBytes<'a> {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.special.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.special.is_empty()
    }

    /// A token's bytes (`None` for an id outside the vocabulary or a malformed table).
    pub fn token(&self, id: u32) -> Option<&'a [u8]> {
        let id = id as usize;
        let (start, end) = (*self.offsets.get(id)?, *self.offsets.get(id + 1)?);
        self.bytes.get(start..end)
    }

    /// Whether a token is special (`<|endoftext|>`).
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).is_some_and(|&flag| flag != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_void;

    unsafe extern "C" fn fake_free(_host_data: *mut c_void, _text: *mut c_char) {}

    unsafe extern "C" fn fake_scores(
        _host_data: *mut c_void,
        _context: *const u32,
        _n_context: usize,
        _ids: *const u32,
        _lengths: *const usize,
        _n_continuations: usize,
        _out: *mut f64,
    ) -> i32 {
        GPTRT_PLUGIN_ERROR
    }

    #[test]
    fn an_older_hosts_struct_keeps_its_slots_and_leaves_the_newer_ones_empty() {
        let mut api = GptrtHostApi {
            struct_size: std::mem::offset_of!(GptrtHostApi, score_continuations),
            abi: GptrtAbiVersion { major: 1, minor: 0 },
            host_data: std::ptr::null_mut(),
            log: None,
            tokenize: None,
            detokenize: None,
            score: None,
            forward_logits: None,
            generate: None,
            free_string: Some(fake_free),
            get_capability: None,
            score_continuations: None,
            model_config_json: None,
        };
        // SAFETY: a valid struct that outlives the host.
        let host = unsafe { Host::from_raw(&api) };
        assert!(host.api.free_string.is_some(), "a 1.0 slot is kept");
        assert!(host.model_config_json().unwrap_err().contains("1.0 host"));
        // A size that ends inside a slot takes only the whole slots before it.
        api.struct_size = std::mem::offset_of!(GptrtHostApi, score_continuations) + 4;
        api.score_continuations = Some(fake_scores);
        // SAFETY: as above.
        let host = unsafe { Host::from_raw(&api) };
        assert!(
            host.api.score_continuations.is_none(),
            "half a slot is not a slot"
        );
        // Too small even for 1.0: nothing is trusted.
        api.struct_size = 8;
        // SAFETY: as above.
        let host = unsafe { Host::from_raw(&api) };
        assert!(host.api.free_string.is_none());
    }
}
