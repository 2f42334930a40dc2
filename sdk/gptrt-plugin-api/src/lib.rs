//! # The gptrt plugin ABI
//!
//! A plugin is a shared library that exports one C symbol, `gptrt_plugin_entry`, returning a
//! [`GptrtPluginEntry`]: the ABI version and a factory (count + descriptor by index) of the plugins
//! it offers. Each [`GptrtPluginDescriptor`] names a plugin (reverse-domain id, name, version), its
//! kind (sampler or task head) and a vtable of `extern "C"` functions over an opaque `self`.
//!
//! Rules both sides keep:
//! - Every struct starts with `struct_size`; a reader accepts bigger structs (newer minor versions)
//!   and refuses smaller ones. A different `major` is refused.
//! - Each side frees only what it allocated (task-head output goes back through the plugin's own
//!   `free_string`). Plugins are never unloaded.
//! - Statuses are `int32_t`: 0 is success; on failure the plugin's `last_error(self)` may explain.
//! - A plugin instance is used by one thread at a time; the host pointer it gets in `create` stays
//!   valid until `destroy`.
//!
//! Rust authors implement [`SamplerPlugin`] or [`TaskHeadPlugin`] and call [`export_plugins!`],
//! which writes the C entry points, each behind a panic boundary. C authors need only
//! `include/gptrt_plugin.h`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use std::ffi::{c_char, c_void, CStr, CString};

/// ABI major version: a host refuses plugins of another major.
pub const GPTRT_PLUGIN_ABI_MAJOR: u32 = 1;
/// ABI minor version: grows when structs gain fields at their end. 1 added the host's
/// `score_continuations` and `model_config_json`.
pub const GPTRT_PLUGIN_ABI_MINOR: u32 = 1;

/// Success.
pub const GPTRT_PLUGIN_OK: i32 = 0;
/// Generic failure (see `last_error`).
pub const GPTRT_PLUGIN_ERROR: i32 = 1;
/// Bad arguments (config JSON, input JSON, NULL pointers).
pub const GPTRT_PLUGIN_INVALID_ARGUMENT: i32 = 2;
/// The Rust code of a plugin panicked; the panic was caught at the boundary.
pub const GPTRT_PLUGIN_PANIC: i32 = 3;
/// The host cannot do this (no model attached, capability missing).
pub const GPTRT_PLUGIN_UNSUPPORTED: i32 = 4;
/// A caller buffer is too small; the needed size was written.
pub const GPTRT_PLUGIN_BUFFER_TOO_SMALL: i32 = 5;

/// A major/minor version pair.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GptrtAbiVersion {
    /// Incompatible changes.
    pub major: u32,
    /// Compatible additions.
    pub minor: u32,
}

/// The ABI version this crate (and header) describes.
pub const GPTRT_PLUGIN_ABI_VERSION: GptrtAbiVersion = GptrtAbiVersion {
    major: GPTRT_PLUGIN_ABI_MAJOR,
    minor: GPTRT_PLUGIN_ABI_MINOR,
};

/// What a plugin is.
pub type GptrtPluginKind = u32;
/// A link of the sampler chain.
pub const GPTRT_PLUGIN_KIND_SAMPLER: GptrtPluginKind = 1;
/// A task head: JSON in, JSON out, using the model through the host API.
pub const GPTRT_PLUGIN_KIND_TASK_HEAD: GptrtPluginKind = 2;

/// One candidate token (same layout as the host's own candidates: no copy crosses the boundary).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GptrtCandidate {
    /// Token id.
    pub id: u32,
    /// Current logit.
    pub logit: f32,
    /// Probability, when `probs_valid`.
    pub p: f32,
}

/// The candidates a sampler works on. A sampler may change logits and probabilities, reorder,
/// shrink `size` (never grow it), and choose a token by setting `selected` to its index.
#[repr(C)]
#[derive(Debug)]
pub struct GptrtCandidates {
    /// `sizeof(GptrtCandidates)`.
    pub struct_size: usize,
    /// The candidates.
    pub data: *mut GptrtCandidate,
    /// How many are valid.
    pub size: usize,
    /// Sorted by descending logit.
    pub sorted: bool,
    /// `p` holds a softmax of the current logits.
    pub probs_valid: bool,
    /// Index of the chosen candidate, or -1.
    pub selected: i64,
}

/// What a sampler sees besides the candidates.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GptrtSamplerContext {
    /// `sizeof(GptrtSamplerContext)`.
    pub struct_size: usize,
    /// Prompt then generated tokens.
    pub tokens: *const u32,
    /// How many tokens.
    pub n_tokens: usize,
    /// How many of them are the prompt.
    pub prompt_len: usize,
    /// Length at which generation ends.
    pub max_length: usize,
    /// The model's vocabulary size.
    pub vocab_size: usize,
}

/// Host services a plugin may call with the `host_data` it was given. Any slot may be NULL when the
/// host cannot offer it (e.g. no model is attached while inspecting).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GptrtHostApi {
    /// `sizeof(GptrtHostApi)`.
    pub struct_size: usize,
    /// The host's ABI version.
    pub abi: GptrtAbiVersion,
    /// Opaque host pointer, first argument of every function below.
    pub host_data: *mut c_void,
    /// Log a message (level 0 error, 1 warning, 2 info, 3 debug).
    pub log:
        Option<unsafe extern "C" fn(host_data: *mut c_void, level: i32, message: *const c_char)>,
    /// Tokenize UTF-8 `text` into `ids` (capacity `capacity`); writes the count to `out_len` (the
    /// needed count with `GPTRT_PLUGIN_BUFFER_TOO_SMALL`).
    pub tokenize: Option<
        unsafe extern "C" fn(
            host_data: *mut c_void,
            text: *const c_char,
            ids: *mut u32,
            capacity: usize,
            out_len: *mut usize,
        ) -> i32,
    >,
    /// Detokenize into `text` (capacity bytes, NUL included); writes the byte count without NUL.
    pub detokenize: Option<
        unsafe extern "C" fn(
            host_data: *mut c_void,
            ids: *const u32,
            n_ids: usize,
            text: *mut c_char,
            capacity: usize,
            out_len: *mut usize,
        ) -> i32,
    >,
    /// Log-likelihood (natural log) of `continuation` after `context`.
    pub score: Option<
        unsafe extern "C" fn(
            host_data: *mut c_void,
            context: *const u32,
            n_context: usize,
            continuation: *const u32,
            n_continuation: usize,
            out_logprob: *mut f64,
        ) -> i32,
    >,
    /// Next-token logits after `ids` into `logits` (capacity floats); writes the vocabulary size.
    pub forward_logits: Option<
        unsafe extern "C" fn(
            host_data: *mut c_void,
            ids: *const u32,
            n_ids: usize,
            logits: *mut f32,
            capacity: usize,
            out_len: *mut usize,
        ) -> i32,
    >,
    /// Generate from a UTF-8 prompt with a Hugging Face generation config (JSON, may be NULL);
    /// the text is returned in `*out_text`, to be released with `free_string`.
    pub generate: Option<
        unsafe extern "C" fn(
            host_data: *mut c_void,
            prompt: *const c_char,
            config_json: *const c_char,
            out_text: *mut *mut c_char,
        ) -> i32,
    >,
    /// Release a string the host returned.
    pub free_string: Option<unsafe extern "C" fn(host_data: *mut c_void, text: *mut c_char)>,
    /// Optional capabilities by string id (e.g. "org.gptrt.last_hidden_state"); NULL when absent.
    pub get_capability:
        Option<unsafe extern "C" fn(host_data: *mut c_void, id: *const c_char) -> *const c_void>,
    /// ABI 1.1: the log-likelihood of each of `n_continuations` continuations after one `context`,
    /// with the context run through the model once. The continuations are stored back to back in
    /// `ids`, continuation `i` being `lengths[i]` ids; `out_logprobs` receives `n_continuations`
    /// values. Absent (NULL, or beyond a 1.0 host's `struct_size`): call `score` for each.
    pub score_continuations: Option<
        unsafe extern "C" fn(
            host_data: *mut c_void,
            context: *const u32,
            n_context: usize,
            ids: *const u32,
            lengths: *const usize,
            n_continuations: usize,
            out_logprobs: *mut f64,
        ) -> i32,
    >,
    /// ABI 1.1: the model's `config.json` as the host read it (`n_layer`, `n_head`, `n_embd`,
    /// `n_positions`, `vocab_size`, `eos_token_id`, `bos_token_id`), a JSON object in `*out_text`
    /// to be released with `free_string`.
    pub model_config_json:
        Option<unsafe extern "C" fn(host_data: *mut c_void, out_text: *mut *mut c_char) -> i32>,
}

/// The functions of a sampler plugin. Required: `create`, `destroy`, `apply`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GptrtSamplerVtable {
    /// `sizeof(GptrtSamplerVtable)`.
    pub struct_size: usize,
    /// Make an instance from a JSON config (may be NULL: defaults); writes it to `out_self`.
    pub create: Option<
        unsafe extern "C" fn(
            host: *const GptrtHostApi,
            config_json: *const c_char,
            out_self: *mut *mut c_void,
        ) -> i32,
    >,
    /// Free an instance.
    pub destroy: Option<unsafe extern "C" fn(self_: *mut c_void)>,
    /// Forget per-sequence state.
    pub reset: Option<unsafe extern "C" fn(self_: *mut c_void)>,
    /// Work on the candidates.
    pub apply: Option<
        unsafe extern "C" fn(
            self_: *mut c_void,
            candidates: *mut GptrtCandidates,
            context: *const GptrtSamplerContext,
        ) -> i32,
    >,
    /// Told which token the chain chose.
    pub accept: Option<unsafe extern "C" fn(self_: *mut c_void, token: u32)>,
    /// A message for the last failure of this instance (NULL when none); owned by the plugin.
    pub last_error: Option<unsafe extern "C" fn(self_: *mut c_void) -> *const c_char>,
}

/// The functions of a task-head plugin. Required: `create`, `destroy`, `run`, `free_string`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GptrtTaskHeadVtable {
    /// `sizeof(GptrtTaskHeadVtable)`.
    pub struct_size: usize,
    /// Make an instance from a JSON config (may be NULL); writes it to `out_self`.
    pub create: Option<
        unsafe extern "C" fn(
            host: *const GptrtHostApi,
            config_json: *const c_char,
            out_self: *mut *mut c_void,
        ) -> i32,
    >,
    /// Free an instance.
    pub destroy: Option<unsafe extern "C" fn(self_: *mut c_void)>,
    /// Run the task on UTF-8 JSON input; the JSON output (allocated by the plugin) goes to
    /// `*out_json` and is released with `free_string`.
    pub run: Option<
        unsafe extern "C" fn(
            self_: *mut c_void,
            input_json: *const c_char,
            out_json: *mut *mut c_char,
        ) -> i32,
    >,
    /// Release a string `run` returned.
    pub free_string: Option<unsafe extern "C" fn(self_: *mut c_void, text: *mut c_char)>,
    /// A message for the last failure of this instance (NULL when none).
    pub last_error: Option<unsafe extern "C" fn(self_: *mut c_void) -> *const c_char>,
}

/// One plugin offered by a library.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GptrtPluginDescriptor {
    /// `sizeof(GptrtPluginDescriptor)`.
    pub struct_size: usize,
    /// The ABI the plugin was built for.
    pub abi: GptrtAbiVersion,
    /// Reverse-domain id, e.g. "org.gptrt.mirostat" (UTF-8, NUL-terminated).
    pub id: *const c_char,
    /// Human-readable name.
    pub name: *const c_char,
    /// The plugin's own version.
    pub version: *const c_char,
    /// One line on what it does (may be NULL).
    pub description: *const c_char,
    /// `GPTRT_PLUGIN_KIND_SAMPLER` or `GPTRT_PLUGIN_KIND_TASK_HEAD`.
    pub kind: GptrtPluginKind,
    /// `GptrtSamplerVtable*` or `GptrtTaskHeadVtable*`, by kind.
    pub vtable: *const c_void,
}

/// What `gptrt_plugin_entry` returns: the library's plugins.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GptrtPluginEntry {
    /// `sizeof(GptrtPluginEntry)`.
    pub struct_size: usize,
    /// The ABI the library was built for.
    pub abi: GptrtAbiVersion,
    /// How many plugins the library offers.
    pub plugin_count: usize,
    /// The descriptor of plugin `index` (< `plugin_count`).
    pub get_plugin: Option<unsafe extern "C" fn(index: usize) -> *const GptrtPluginDescriptor>,
}

/// The symbol every plugin library exports.
pub const GPTRT_PLUGIN_ENTRY_SYMBOL: &str = "gptrt_plugin_entry";

/// Signature of `gptrt_plugin_entry`.
pub type GptrtPluginEntryFn = unsafe extern "C" fn() -> *const GptrtPluginEntry;

// -------------------------------------------------------------------------------------------------
// Safe authoring layer for Rust plugins.

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
    /// `api` is NULL or points to a valid `GptrtHostApi` that outlives the plugin instance.
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
        // SAFETY: the caller guarantees validity.
        let Some(given) = (unsafe { api.as_ref() }) else {
            return host;
        };
        // An older host's struct is a prefix of this one: take the slots it has, and keep the
        // newer ones empty (a slot holds a function pointer or NULL, so any prefix is valid).
        let size = given.struct_size.min(std::mem::size_of::<GptrtHostApi>());
        if size >= std::mem::offset_of!(GptrtHostApi, score_continuations) {
            // SAFETY: `api` is valid for `struct_size` bytes; both are GptrtHostApi layouts.
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

/// What a Rust sampler plugin sees.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Prompt then generated tokens.
    pub tokens: &'a [u32],
    /// How many of them are the prompt.
    pub prompt_len: usize,
    /// Length at which generation ends.
    pub max_length: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
}

/// Mutable view of the candidates for Rust sampler plugins.
pub struct CandidatesMut<'a> {
    raw: &'a mut GptrtCandidates,
}

impl CandidatesMut<'_> {
    /// The valid candidates.
    pub fn as_mut_slice(&mut self) -> &mut [GptrtCandidate] {
        if self.raw.data.is_null() || self.raw.size == 0 {
            return &mut [];
        }
        // SAFETY: the host hands `size` valid candidates for the duration of `apply`.
        unsafe { std::slice::from_raw_parts_mut(self.raw.data, self.raw.size) }
    }
    /// Keep only the first `n` candidates.
    pub fn truncate(&mut self, n: usize) {
        self.raw.size = self.raw.size.min(n);
    }
    /// Sort by descending logit (ties: lower id first) and mark sorted.
    pub fn sort(&mut self) {
        if !self.raw.sorted {
            self.as_mut_slice()
                .sort_unstable_by(|a, b| b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id)));
            self.raw.sorted = true;
        }
    }
    /// Softmax of the logits into `p`.
    pub fn softmax(&mut self) {
        let items = self.as_mut_slice();
        let max = items
            .iter()
            .map(|c| c.logit)
            .fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for c in items.iter_mut() {
            c.p = if max.is_finite() {
                (c.logit - max).exp()
            } else {
                1.0
            };
            sum += c.p;
        }
        for c in items.iter_mut() {
            c.p /= sum;
        }
        self.raw.probs_valid = true;
    }
    /// Mark logits as changed (order and probabilities no longer known).
    pub fn logits_changed(&mut self) {
        self.raw.sorted = false;
        self.raw.probs_valid = false;
    }
    /// Choose the candidate at `index`.
    pub fn select(&mut self, index: usize) {
        self.raw.selected = index as i64;
    }
}

/// A sampler written in Rust. Implement it and list the type in [`export_plugins!`].
pub trait SamplerPlugin: Sized + 'static {
    /// Reverse-domain id, e.g. "org.example.mirostat".
    const ID: &'static str;
    /// Human-readable name.
    const NAME: &'static str;
    /// The plugin's own version.
    const VERSION: &'static str;
    /// One line on what it does.
    const DESCRIPTION: &'static str = "";
    /// Make an instance from a JSON config (empty string: defaults).
    fn create(host: Host, config_json: &str) -> Result<Self, String>;
    /// Work on the candidates.
    fn apply(
        &mut self,
        candidates: &mut CandidatesMut<'_>,
        context: &Context<'_>,
    ) -> Result<(), String>;
    /// Told which token was chosen.
    fn accept(&mut self, _token: u32) {}
    /// Forget per-sequence state.
    fn reset(&mut self) {}
}

/// A task head written in Rust.
pub trait TaskHeadPlugin: Sized + 'static {
    /// Reverse-domain id.
    const ID: &'static str;
    /// Human-readable name.
    const NAME: &'static str;
    /// The plugin's own version.
    const VERSION: &'static str;
    /// One line on what it does.
    const DESCRIPTION: &'static str = "";
    /// Make an instance from a JSON config (empty string: defaults).
    fn create(host: Host, config_json: &str) -> Result<Self, String>;
    /// JSON in, JSON out.
    fn run(&mut self, input_json: &str) -> Result<String, String>;
}

/// Support code for [`export_plugins!`]; not for direct use.
#[doc(hidden)]
pub mod __private {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// An instance plus the message of its last failure.
    pub struct Instance<T> {
        pub inner: T,
        pub error: Option<CString>,
    }

    fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string())
    }

    fn text_arg(text: *const c_char) -> Result<String, String> {
        if text.is_null() {
            return Ok(String::new());
        }
        // SAFETY: the host passes NUL-terminated strings.
        unsafe { CStr::from_ptr(text) }
            .to_str()
            .map(str::to_string)
            .map_err(|_| "argument is not valid UTF-8".to_string())
    }

    fn fail<T>(instance: &mut Instance<T>, status: i32, message: String) -> i32 {
        instance.error = CString::new(message.replace('\0', " ")).ok();
        status
    }

    /// `create` for any plugin type with a fallible constructor.
    ///
    /// # Safety
    /// Called by the host through the vtable with valid pointers.
    pub unsafe fn create<T>(
        host: *const GptrtHostApi,
        config: *const c_char,
        out: *mut *mut c_void,
        make: fn(Host, &str) -> Result<T, String>,
    ) -> i32 {
        if out.is_null() {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        }
        let result = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: forwarded host contract.
            let host = unsafe { Host::from_raw(host) };
            let config = text_arg(config)?;
            make(host, &config)
        }));
        match result {
            Ok(Ok(inner)) => {
                let instance = Box::new(Instance { inner, error: None });
                // SAFETY: `out` checked non-NULL.
                unsafe { *out = Box::into_raw(instance).cast() };
                GPTRT_PLUGIN_OK
            }
            Ok(Err(message)) => {
                // No instance exists to hold the message: tell the host's log instead.
                // SAFETY: forwarded host contract.
                unsafe { Host::from_raw(host) }.log(0, &message);
                GPTRT_PLUGIN_INVALID_ARGUMENT
            }
            Err(_) => GPTRT_PLUGIN_PANIC,
        }
    }

    /// # Safety
    /// `self_` came from `create` for the same `T`.
    pub unsafe extern "C" fn destroy<T>(self_: *mut c_void) {
        if !self_.is_null() {
            // SAFETY: see above; a panic in Drop is contained.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                drop(unsafe { Box::from_raw(self_.cast::<Instance<T>>()) })
            }));
        }
    }

    /// # Safety
    /// `self_` came from `create` for the same `T`.
    pub unsafe extern "C" fn last_error<T>(self_: *mut c_void) -> *const c_char {
        // SAFETY: see above.
        match unsafe { self_.cast::<Instance<T>>().as_ref() } {
            Some(Instance {
                error: Some(message),
                ..
            }) => message.as_ptr(),
            _ => std::ptr::null(),
        }
    }

    /// # Safety
    /// Host contract.
    pub unsafe extern "C" fn sampler_create<T: SamplerPlugin>(
        host: *const GptrtHostApi,
        config: *const c_char,
        out: *mut *mut c_void,
    ) -> i32 {
        // SAFETY: forwarded.
        unsafe { create(host, config, out, T::create) }
    }

    /// # Safety
    /// Host contract.
    pub unsafe extern "C" fn sampler_apply<T: SamplerPlugin>(
        self_: *mut c_void,
        candidates: *mut GptrtCandidates,
        context: *const GptrtSamplerContext,
    ) -> i32 {
        // SAFETY: host contract: valid, exclusive pointers for the call.
        let (Some(instance), Some(raw), Some(ctx)) = (
            unsafe { self_.cast::<Instance<T>>().as_mut() },
            unsafe { candidates.as_mut() },
            unsafe { context.as_ref() },
        ) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let tokens = if ctx.tokens.is_null() || ctx.n_tokens == 0 {
            &[][..]
        } else {
            // SAFETY: host contract.
            unsafe { std::slice::from_raw_parts(ctx.tokens, ctx.n_tokens) }
        };
        let context = Context {
            tokens,
            prompt_len: ctx.prompt_len,
            max_length: ctx.max_length,
            vocab_size: ctx.vocab_size,
        };
        let inner = &mut instance.inner;
        let result = catch_unwind(AssertUnwindSafe(|| {
            inner.apply(&mut CandidatesMut { raw }, &context)
        }));
        match result {
            Ok(Ok(())) => GPTRT_PLUGIN_OK,
            Ok(Err(message)) => fail(instance, GPTRT_PLUGIN_ERROR, message),
            Err(panic) => fail(
                instance,
                GPTRT_PLUGIN_PANIC,
                format!("panicked: {}", panic_message(panic)),
            ),
        }
    }

    /// # Safety
    /// Host contract.
    pub unsafe extern "C" fn sampler_accept<T: SamplerPlugin>(self_: *mut c_void, token: u32) {
        // SAFETY: host contract.
        if let Some(instance) = unsafe { self_.cast::<Instance<T>>().as_mut() } {
            let _ = catch_unwind(AssertUnwindSafe(|| instance.inner.accept(token)));
        }
    }

    /// # Safety
    /// Host contract.
    pub unsafe extern "C" fn sampler_reset<T: SamplerPlugin>(self_: *mut c_void) {
        // SAFETY: host contract.
        if let Some(instance) = unsafe { self_.cast::<Instance<T>>().as_mut() } {
            let _ = catch_unwind(AssertUnwindSafe(|| instance.inner.reset()));
        }
    }

    /// # Safety
    /// Host contract.
    pub unsafe extern "C" fn head_create<T: TaskHeadPlugin>(
        host: *const GptrtHostApi,
        config: *const c_char,
        out: *mut *mut c_void,
    ) -> i32 {
        // SAFETY: forwarded.
        unsafe { create(host, config, out, T::create) }
    }

    /// # Safety
    /// Host contract.
    pub unsafe extern "C" fn head_run<T: TaskHeadPlugin>(
        self_: *mut c_void,
        input: *const c_char,
        out: *mut *mut c_char,
    ) -> i32 {
        // SAFETY: host contract.
        let Some(instance) = (unsafe { self_.cast::<Instance<T>>().as_mut() }) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        if out.is_null() {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        }
        let input = match text_arg(input) {
            Ok(input) => input,
            Err(message) => return fail(instance, GPTRT_PLUGIN_INVALID_ARGUMENT, message),
        };
        let inner = &mut instance.inner;
        match catch_unwind(AssertUnwindSafe(|| inner.run(&input))) {
            Ok(Ok(output)) => match CString::new(output) {
                Ok(text) => {
                    // SAFETY: `out` checked non-NULL.
                    unsafe { *out = text.into_raw() };
                    GPTRT_PLUGIN_OK
                }
                Err(_) => fail(
                    instance,
                    GPTRT_PLUGIN_ERROR,
                    "output contains NUL".to_string(),
                ),
            },
            Ok(Err(message)) => fail(instance, GPTRT_PLUGIN_ERROR, message),
            Err(panic) => fail(
                instance,
                GPTRT_PLUGIN_PANIC,
                format!("panicked: {}", panic_message(panic)),
            ),
        }
    }

    /// # Safety
    /// `text` came from `head_run`.
    pub unsafe extern "C" fn head_free_string(_self: *mut c_void, text: *mut c_char) {
        if !text.is_null() {
            // SAFETY: allocated by CString::into_raw in head_run.
            drop(unsafe { CString::from_raw(text) });
        }
    }

    /// A descriptor with owned strings, kept alive for the life of the process.
    pub struct Owned {
        pub descriptor: GptrtPluginDescriptor,
        _strings: [CString; 4],
        _vtable: Box<dyn std::any::Any + Send + Sync>,
    }

    // SAFETY: the raw pointers inside point to the owned, immutable data kept alongside.
    unsafe impl Send for Owned {}
    // SAFETY: as above; never mutated after construction.
    unsafe impl Sync for Owned {}

    fn strings(id: &str, name: &str, version: &str, description: &str) -> [CString; 4] {
        [id, name, version, description].map(|s| CString::new(s).unwrap_or_default())
    }

    fn describe(
        kind: GptrtPluginKind,
        strings: [CString; 4],
        vtable: Box<dyn std::any::Any + Send + Sync>,
        vtable_ptr: *const c_void,
    ) -> Owned {
        Owned {
            descriptor: GptrtPluginDescriptor {
                struct_size: std::mem::size_of::<GptrtPluginDescriptor>(),
                abi: GPTRT_PLUGIN_ABI_VERSION,
                id: strings[0].as_ptr(),
                name: strings[1].as_ptr(),
                version: strings[2].as_ptr(),
                description: strings[3].as_ptr(),
                kind,
                vtable: vtable_ptr,
            },
            _strings: strings,
            _vtable: vtable,
        }
    }

    struct SyncVtable<V>(V);
    // SAFETY: vtables hold only function pointers.
    unsafe impl<V> Send for SyncVtable<V> {}
    // SAFETY: as above.
    unsafe impl<V> Sync for SyncVtable<V> {}

    /// Descriptor for a sampler type.
    pub fn sampler<T: SamplerPlugin>() -> Owned {
        let vtable = Box::new(SyncVtable(GptrtSamplerVtable {
            struct_size: std::mem::size_of::<GptrtSamplerVtable>(),
            create: Some(sampler_create::<T>),
            destroy: Some(destroy::<T>),
            reset: Some(sampler_reset::<T>),
            apply: Some(sampler_apply::<T>),
            accept: Some(sampler_accept::<T>),
            last_error: Some(last_error::<T>),
        }));
        let ptr = (&vtable.0 as *const GptrtSamplerVtable).cast();
        describe(
            GPTRT_PLUGIN_KIND_SAMPLER,
            strings(T::ID, T::NAME, T::VERSION, T::DESCRIPTION),
            vtable,
            ptr,
        )
    }

    /// Descriptor for a task-head type.
    pub fn task_head<T: TaskHeadPlugin>() -> Owned {
        let vtable = Box::new(SyncVtable(GptrtTaskHeadVtable {
            struct_size: std::mem::size_of::<GptrtTaskHeadVtable>(),
            create: Some(head_create::<T>),
            destroy: Some(destroy::<T>),
            run: Some(head_run::<T>),
            free_string: Some(head_free_string),
            last_error: Some(last_error::<T>),
        }));
        let ptr = (&vtable.0 as *const GptrtTaskHeadVtable).cast();
        describe(
            GPTRT_PLUGIN_KIND_TASK_HEAD,
            strings(T::ID, T::NAME, T::VERSION, T::DESCRIPTION),
            vtable,
            ptr,
        )
    }

    /// The entry struct for a list of descriptors.
    pub struct Entry(pub GptrtPluginEntry);
    // SAFETY: only a count and a function pointer.
    unsafe impl Sync for Entry {}
}

/// Export Rust plugins from a `cdylib`: writes `gptrt_plugin_entry` and every C shim.
///
/// ```ignore
/// gptrt_plugin_api::export_plugins!(samplers: [Mirostat], task_heads: []);
/// ```
#[macro_export]
macro_rules! export_plugins {
    (samplers: [$($sampler:ty),* $(,)?], task_heads: [$($head:ty),* $(,)?] $(,)?) => {
        fn __gptrt_descriptors() -> &'static [$crate::__private::Owned] {
            static DESCRIPTORS: ::std::sync::OnceLock<::std::vec::Vec<$crate::__private::Owned>> = ::std::sync::OnceLock::new();
            DESCRIPTORS.get_or_init(|| {
                let mut list = ::std::vec::Vec::new();
                $(list.push($crate::__private::sampler::<$sampler>());)*
                $(list.push($crate::__private::task_head::<$head>());)*
                list
            })
        }

        unsafe extern "C" fn __gptrt_get_plugin(index: usize) -> *const $crate::GptrtPluginDescriptor {
            ::std::panic::catch_unwind(|| {
                __gptrt_descriptors().get(index).map_or(::std::ptr::null(), |owned| &owned.descriptor as *const _)
            })
            .unwrap_or(::std::ptr::null())
        }

        /// The plugin library's entry point.
        #[unsafe(no_mangle)]
        pub extern "C" fn gptrt_plugin_entry() -> *const $crate::GptrtPluginEntry {
            static ENTRY: ::std::sync::OnceLock<$crate::__private::Entry> = ::std::sync::OnceLock::new();
            let entry = ENTRY.get_or_init(|| {
                $crate::__private::Entry($crate::GptrtPluginEntry {
                    struct_size: ::std::mem::size_of::<$crate::GptrtPluginEntry>(),
                    abi: $crate::GPTRT_PLUGIN_ABI_VERSION,
                    plugin_count: __gptrt_descriptors().len(),
                    get_plugin: Some(__gptrt_get_plugin),
                })
            });
            &entry.0
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn fake_free(_host_data: *mut c_void, _text: *mut c_char) {}

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
        // Too small even for 1.0: nothing is trusted.
        api.struct_size = 8;
        // SAFETY: as above.
        let host = unsafe { Host::from_raw(&api) };
        assert!(host.api.free_string.is_none());
    }
}
