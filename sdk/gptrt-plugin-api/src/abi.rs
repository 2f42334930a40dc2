//! The `#[repr(C)]` types and constants of the ABI, as `include/gptrt_plugin.h` declares them.

use std::ffi::{c_char, c_void};

/// ABI major version: a host refuses plugins of another major.
pub const GPTRT_PLUGIN_ABI_MAJOR: u32 = 1;
/// ABI minor version: grows when structs gain fields at their end. 1 added the host's
/// `score_continuations` and `model_config_json`; 2 added the sampler's `stage`, the
/// candidates' `stop_reason` and host capabilities by string id, among them
/// `org.gptrt.hidden_states`.
pub const GPTRT_PLUGIN_ABI_MINOR: u32 = 2;

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
    /// ABI 1.2: set by the sampler to end the sequence before this step's token, with this stop
    /// reason (a static NUL-terminated name of 1 to 48 characters `[a-z0-9_]`, e.g.
    /// "grammar_complete"), which the host reports as the generation's stop reason. NULL: go on.
    /// Written only when `struct_size` covers it (a 1.0/1.1 host's candidates end before it).
    pub stop_reason: *const c_char,
}

/// Where a sampler sits in the chain (`GptrtSamplerVtable::stage`, ABI 1.2).
pub type GptrtSamplerStage = u32;
/// Today's position and what a 1.0/1.1 plugin gets: after the built-in warpers (temperature,
/// top-k, top-p, ...), just before the built-in draw. The same place as
/// `GPTRT_SAMPLER_STAGE_WARPER`.
pub const GPTRT_SAMPLER_STAGE_DEFAULT: GptrtSamplerStage = 0;
/// A logits processor (bans, biases, grammars): after the built-in logits processors
/// (penalties, bad words, ...) and before temperature and the truncating warpers, so a banned
/// token never reaches top-k/top-p and a forced choice skips them.
pub const GPTRT_SAMPLER_STAGE_PROCESSOR: GptrtSamplerStage = 1;
/// A warper (like XTC): after temperature and the built-in truncating warpers, just before the
/// draw.
pub const GPTRT_SAMPLER_STAGE_WARPER: GptrtSamplerStage = 2;
/// A selector (like Mirostat): replaces the built-in draw (greedy or the seeded draw), so it must
/// select a token itself.
pub const GPTRT_SAMPLER_STAGE_SELECTOR: GptrtSamplerStage = 3;

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
    /// ABI 1.2: where the sampler sits in the chain, a `GPTRT_SAMPLER_STAGE_*` value (a user may
    /// override it). Read only when the descriptor declares minor >= 2; a 1.0/1.1 plugin's vtable
    /// ends before it and keeps `GPTRT_SAMPLER_STAGE_DEFAULT`.
    pub stage: GptrtSamplerStage,
}

/// The size of a 1.0/1.1 `GptrtSamplerVtable`: everything before `stage`.
pub const GPTRT_SAMPLER_VTABLE_SIZE_V1_1: usize = std::mem::offset_of!(GptrtSamplerVtable, stage);
/// The size of a 1.0/1.1 `GptrtCandidates`: everything before `stop_reason`.
pub const GPTRT_CANDIDATES_SIZE_V1_1: usize = std::mem::offset_of!(GptrtCandidates, stop_reason);

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

/// The id (for `GptrtHostApi::get_capability`) of the model's token byte table, a
/// `GptrtTokenBytes`; NULL when the host has no model attached.
pub const GPTRT_CAPABILITY_TOKEN_BYTES: &str = "org.gptrt.token_bytes";

/// Capability `org.gptrt.token_bytes`: every token's bytes, as the tokenizer decodes them (GPT-2's
/// byte-level pieces mapped back to raw bytes, which need not be valid UTF-8 alone), and which
/// tokens are special (their bytes are their text, e.g. `<|endoftext|>`). Owned by the host and
/// valid, unchanged, for the life of the plugin instance that got it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GptrtTokenBytes {
    /// `sizeof(GptrtTokenBytes)`.
    pub struct_size: usize,
    /// Number of tokens.
    pub vocab_size: usize,
    /// `vocab_size + 1` offsets into `bytes`: token `i` is `bytes[offsets[i] .. offsets[i + 1]]`.
    pub offsets: *const usize,
    /// Every token's bytes, back to back.
    pub bytes: *const u8,
    /// `vocab_size` flags: 1 for a special token, 0 otherwise.
    pub special: *const u8,
}

/// The id (for `GptrtHostApi::get_capability`) of the model's final hidden states, a
/// `GptrtHiddenStates` (ABI 1.2); NULL when the host has no model attached or the model's graph
/// has no `last_hidden_state` output (`models/add_hidden_states.py` adds it).
pub const GPTRT_CAPABILITY_HIDDEN_STATES: &str = "org.gptrt.hidden_states";

/// `GptrtHiddenStates::features` pooling: the last token's hidden state.
pub const GPTRT_POOLING_LAST: i32 = 0;
/// `GptrtHiddenStates::features` pooling: the mean over the sequence's tokens.
pub const GPTRT_POOLING_MEAN: i32 = 1;

/// Capability `org.gptrt.hidden_states`: pooled final hidden states (after ln_f) of token
/// sequences, the features a trained classification head reads. Owned by the host and valid for
/// the life of the plugin instance that got it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GptrtHiddenStates {
    /// `sizeof(GptrtHiddenStates)`.
    pub struct_size: usize,
    /// Floats per feature vector (the model's `n_embd`).
    pub hidden_size: usize,
    /// Pooled features of `n_sequences` token sequences, given back to back in `ids` with their
    /// `lengths` (each at least one token): writes `n_sequences * hidden_size` floats to `out` and
    /// that count to `*out_len` (`GPTRT_PLUGIN_BUFFER_TOO_SMALL` when `capacity` is less).
    /// `pooling` is `GPTRT_POOLING_LAST` or `GPTRT_POOLING_MEAN`; `host_data` is the host API's.
    pub features: Option<
        unsafe extern "C" fn(
            host_data: *mut c_void,
            ids: *const u32,
            lengths: *const usize,
            n_sequences: usize,
            pooling: i32,
            out: *mut f32,
            capacity: usize,
            out_len: *mut usize,
        ) -> i32,
    >,
}

/// The id (for `GptrtHostApi::get_capability`) of dialogue sessions over the attached model, a
/// `GptrtSessions` (ABI 1.2); NULL when the host has no model attached.
pub const GPTRT_CAPABILITY_SESSIONS: &str = "org.gptrt.sessions";

/// The id (for `GptrtHostApi::get_capability`) of the caller's output stream, a `GptrtOutput`
/// (ABI 1.2): while a task head's `run` is under way, text it writes there goes to whoever called
/// that run as it is made (a dialogue's reply, token by token). Offered to every instance.
pub const GPTRT_CAPABILITY_OUTPUT: &str = "org.gptrt.output";

/// Capability `org.gptrt.output`. The table is owned by the host and valid for the life of the
/// instance.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GptrtOutput {
    /// `sizeof(GptrtOutput)`.
    pub struct_size: usize,
    /// Pass `len` bytes of UTF-8 `text` (not NUL-terminated) to the caller of the `run` under way
    /// on this thread. Returns 0 to go on, or non-zero when the caller asks the run to stop early
    /// (the plugin then ends it as soon as it can, still returning its result). Outside a run, or
    /// when the caller takes no text, the text is dropped and 0 returned.
    pub write_text: Option<
        unsafe extern "C" fn(host_data: *mut c_void, text: *const c_char, len: usize) -> i32,
    >,
}

/// An opaque session handle of capability `org.gptrt.sessions`; 0 is never a session.
pub type GptrtSessionHandle = u64;

/// `GptrtSessions::generate_turn`'s text callback: `len` bytes of UTF-8 (not NUL-terminated) that
/// the reply's latest token completed; return 0 to go on, anything else to stop the turn.
pub type GptrtSessionTextFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, text: *const c_char, len: usize) -> i32>;

/// Capability `org.gptrt.sessions`: token sequences that keep their KV cache between turns, over
/// the host's model. Every function takes the host API's `host_data` first and returns a
/// `GPTRT_PLUGIN_*` status; a handle belongs to the plugin instance whose host API made it and is
/// freed by `destroy` or, at the latest, when that instance is destroyed. A session is used by one
/// thread at a time. The table is owned by the host and valid for the life of the instance.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GptrtSessions {
    /// `sizeof(GptrtSessions)`.
    pub struct_size: usize,
    /// The model's context window in tokens (`n_positions`).
    pub context_window: usize,
    /// Make an empty session; writes its handle to `*out_handle`.
    pub create: Option<
        unsafe extern "C" fn(host_data: *mut c_void, out_handle: *mut GptrtSessionHandle) -> i32,
    >,
    /// Free a session (an unknown handle is `GPTRT_PLUGIN_INVALID_ARGUMENT`).
    pub destroy:
        Option<unsafe extern "C" fn(host_data: *mut c_void, handle: GptrtSessionHandle) -> i32>,
    /// Append UTF-8 `text`, tokenized on its own, to the sequence (nothing runs yet); writes how
    /// many tokens it added to `*out_added` (may be NULL).
    pub append_text: Option<
        unsafe extern "C" fn(
            host_data: *mut c_void,
            handle: GptrtSessionHandle,
            text: *const c_char,
            out_added: *mut usize,
        ) -> i32,
    >,
    /// Generate a turn after the sequence: only tokens not yet in the cache run through the
    /// model. `config_json` (may be NULL) is a Hugging Face generation config whose fields
    /// override the model's `generation_config.json`. `on_text` (may be NULL) gets each piece of
    /// text with `user_data`. The turn's tokens join the sequence. `*out_json` receives
    /// `{"text", "stop_reason", "stop_string", "token_ids", "prompt_tokens_processed"}`, to be
    /// released with the host API's `free_string`.
    pub generate_turn: Option<
        unsafe extern "C" fn(
            host_data: *mut c_void,
            handle: GptrtSessionHandle,
            config_json: *const c_char,
            on_text: GptrtSessionTextFn,
            user_data: *mut c_void,
            out_json: *mut *mut c_char,
        ) -> i32,
    >,
    /// Keep the first `len` tokens of the sequence (and their cache).
    pub rewind: Option<
        unsafe extern "C" fn(host_data: *mut c_void, handle: GptrtSessionHandle, len: usize) -> i32,
    >,
    /// The sequence's length in tokens into `*out_len`.
    pub length: Option<
        unsafe extern "C" fn(
            host_data: *mut c_void,
            handle: GptrtSessionHandle,
            out_len: *mut usize,
        ) -> i32,
    >,
    /// The sequence's tokens into `ids` (capacity ids); writes the length to `*out_len`
    /// (`GPTRT_PLUGIN_BUFFER_TOO_SMALL` when `capacity` is less).
    pub tokens: Option<
        unsafe extern "C" fn(
            host_data: *mut c_void,
            handle: GptrtSessionHandle,
            ids: *mut u32,
            capacity: usize,
            out_len: *mut usize,
        ) -> i32,
    >,
    /// Replace the sequence by `ids`, keeping the cache of the prefix they share with it.
    pub set_tokens: Option<
        unsafe extern "C" fn(
            host_data: *mut c_void,
            handle: GptrtSessionHandle,
            ids: *const u32,
            n_ids: usize,
        ) -> i32,
    >,
    /// The session's state (tokens, KV cache: fp16 when `fp16_kv` is non-zero, and the caller's
    /// `data_len` bytes of `data`) as bytes in `*out_bytes` / `*out_len`, released with
    /// `free_bytes`.
    pub save: Option<
        unsafe extern "C" fn(
            host_data: *mut c_void,
            handle: GptrtSessionHandle,
            fp16_kv: i32,
            data: *const u8,
            data_len: usize,
            out_bytes: *mut *mut u8,
            out_len: *mut usize,
        ) -> i32,
    >,
    /// Continue from `save`'s bytes; the caller's data comes back in `*out_data` / `*out_len`
    /// (released with `free_bytes`). A damaged or foreign state is
    /// `GPTRT_PLUGIN_INVALID_ARGUMENT` and leaves the session unchanged.
    pub restore: Option<
        unsafe extern "C" fn(
            host_data: *mut c_void,
            handle: GptrtSessionHandle,
            bytes: *const u8,
            len: usize,
            out_data: *mut *mut u8,
            out_len: *mut usize,
        ) -> i32,
    >,
    /// Release bytes `save` or `restore` returned.
    pub free_bytes:
        Option<unsafe extern "C" fn(host_data: *mut c_void, bytes: *mut u8, len: usize)>,
    /// The message of the last failed call on this host API's sessions into `*out_text` (NULL
    /// when none), released with the host API's `free_string`.
    pub last_error:
        Option<unsafe extern "C" fn(host_data: *mut c_void, out_text: *mut *mut c_char) -> i32>,
    /// Run the sequence's tokens that are not in the cache yet through the model now (a persona
    /// before the first turn, so that turn runs only its own tokens). A table whose
    /// `struct_size` ends before this field has none: the tokens then run with the next turn.
    pub prefill:
        Option<unsafe extern "C" fn(host_data: *mut c_void, handle: GptrtSessionHandle) -> i32>,
}

/// The symbol every plugin library exports.
pub const GPTRT_PLUGIN_ENTRY_SYMBOL: &str = "gptrt_plugin_entry";

/// Signature of `gptrt_plugin_entry`.
pub type GptrtPluginEntryFn = unsafe extern "C" fn() -> *const GptrtPluginEntry;

// -------------------------------------------------------------------------------------------------
// Safe authoring layer for Rust plugins.
