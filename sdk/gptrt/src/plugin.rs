//! The plugin host: finds, checks (ABI version, struct sizes, required slots, optional SHA-256
//! pin), loads and never unloads plugin libraries; turns their samplers into links of the sampler
//! chain and runs their task heads. Every fault of a plugin becomes an [`Error::Plugin`] naming the
//! plugin; the session stays usable.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gptrt_plugin_api::*;

pub(crate) mod calls;
mod open;

pub use calls::PluginCallWatch;

mod samplers;
pub use samplers::{add_samplers, SamplerSpec, SharedPluginHost};

mod host_model;

use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::sampling::{Candidate, Candidates, Sampler, SamplerContext};

/// The environment variable listing plugin folders (separated by `:`).
pub const PLUGIN_PATH_ENV: &str = "GPTRT_PLUGIN_PATH";

const _: () = {
    assert!(std::mem::size_of::<Candidate>() == std::mem::size_of::<GptrtCandidate>());
    assert!(std::mem::align_of::<Candidate>() == std::mem::align_of::<GptrtCandidate>());
};

fn plugin_error(plugin: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Plugin {
        plugin: plugin.into(),
        message: message.into(),
    }
}

/// What kind of plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// A sampler: a link of the sampler chain.
    Sampler,
    /// A task head: JSON in, JSON out.
    TaskHead,
}

impl PluginKind {
    /// `sampler` or `task_head`.
    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Sampler => "sampler",
            PluginKind::TaskHead => "task_head",
        }
    }
}

enum Vtable {
    Sampler(GptrtSamplerVtable),
    TaskHead(GptrtTaskHeadVtable),
}

/// One plugin a library offers, checked and ready to instantiate.
pub struct PluginInfo {
    /// The library file.
    pub library: PathBuf,
    /// Reverse-domain id.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// One line on what it does.
    pub description: String,
    /// Sampler or task head.
    pub kind: PluginKind,
    /// The ABI version it was built for.
    pub abi: (u32, u32),
    vtable: Vtable,
}

impl std::fmt::Debug for PluginInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInfo")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("library", &self.library)
            .finish()
    }
}

impl PluginInfo {
    /// `id@version (library)`, for messages.
    pub fn label(&self) -> String {
        format!("{}@{} ({})", self.id, self.version, self.library.display())
    }
}

/// A loaded library and what it offers.
#[derive(Debug)]
pub struct PluginLibrary {
    /// The file.
    pub path: PathBuf,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// The ABI version the library declares.
    pub abi: (u32, u32),
    /// Its plugins.
    pub plugins: Vec<Arc<PluginInfo>>,
}

/// SHA-256 pins, one `HEX  FILE-NAME` per line (the format `sha256sum` prints); `#` comments.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    pins: BTreeMap<String, String>,
    path: PathBuf,
}

impl Allowlist {
    /// Read an allowlist file.
    pub fn from_file(path: &Path) -> Result<Allowlist> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut pins = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(hash), Some(file)) = (fields.next(), fields.next()) else {
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    message: format!("line {}: expected `SHA256  FILE`", number + 1),
                });
            };
            if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    message: format!("line {}: {hash:?} is not a SHA-256", number + 1),
                });
            }
            let name = Path::new(file.trim_start_matches('*'))
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            pins.insert(name.unwrap_or_default(), hash.to_ascii_lowercase());
        }
        Ok(Allowlist {
            pins,
            path: path.to_path_buf(),
        })
    }

    fn check(&self, library: &Path, sha256: &str) -> Result<()> {
        let name = library
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match self.pins.get(&name) {
            Some(pinned) if pinned == sha256 => Ok(()),
            Some(pinned) => Err(plugin_error(
                library.display().to_string(),
                format!(
                    "SHA-256 mismatch: {} pins {pinned}, the file is {sha256}",
                    self.path.display()
                ),
            )),
            None => Err(plugin_error(
                library.display().to_string(),
                format!(
                    "not in the allowlist {} (its SHA-256 is {sha256})",
                    self.path.display()
                ),
            )),
        }
    }
}

/// Libraries are never unloaded: `dlclose` is unsafe with Rust thread-locals and not honoured
/// everywhere, and instances may outlive any handle the host keeps.
fn keep_loaded(library: libloading::Library) -> &'static libloading::Library {
    Box::leak(Box::new(library))
}

fn c_text(plugin: &str, what: &str, text: *const c_char, required: bool) -> Result<String> {
    if text.is_null() {
        return if required {
            Err(plugin_error(
                plugin,
                format!("descriptor field `{what}` is NULL"),
            ))
        } else {
            Ok(String::new())
        };
    }
    // SAFETY: the descriptor promises NUL-terminated strings that live as long as the library.
    unsafe { CStr::from_ptr(text) }
        .to_str()
        .map(str::to_string)
        .map_err(|_| plugin_error(plugin, format!("descriptor field `{what}` is not UTF-8")))
}

/// Copy a struct that starts with `struct_size`, refusing one smaller than this host's version.
///
/// # Safety
/// `ptr` is NULL or points to a struct that begins with a `usize` size and is that large.
unsafe fn read_sized<T: Copy>(plugin: &str, what: &str, ptr: *const c_void) -> Result<T> {
    if ptr.is_null() {
        return Err(plugin_error(plugin, format!("{what} is NULL")));
    }
    // SAFETY: every ABI struct starts with its size.
    let size = unsafe { ptr.cast::<usize>().read_unaligned() };
    let expected = std::mem::size_of::<T>();
    if size < expected {
        return Err(plugin_error(
            plugin,
            format!("{what} struct_size is {size} bytes, smaller than the {expected} this host needs (built against an older or broken header?)"),
        ));
    }
    // SAFETY: at least `expected` bytes are there; newer, larger structs keep our prefix.
    Ok(unsafe { ptr.cast::<T>().read_unaligned() })
}

/// Refuse a vtable whose required slots are NULL, naming the first one missing.
fn require_slots(plugin: &str, kind: &str, slots: &[(&str, bool)]) -> Result<()> {
    match slots.iter().find(|(_, present)| !present) {
        Some((slot, _)) => Err(plugin_error(
            plugin,
            format!("required {kind} slot `{slot}` is NULL"),
        )),
        None => Ok(()),
    }
}

fn check_abi(plugin: &str, abi: GptrtAbiVersion) -> Result<()> {
    if abi.major != GPTRT_PLUGIN_ABI_MAJOR {
        return Err(plugin_error(
            plugin,
            format!(
                "plugin ABI {}.{} is incompatible with this host's ABI {}.{} (major versions differ)",
                abi.major, abi.minor, GPTRT_PLUGIN_ABI_MAJOR, GPTRT_PLUGIN_ABI_MINOR
            ),
        ));
    }
    Ok(())
}

/// Load and check one library. With an allowlist, its SHA-256 must be pinned there.
///
/// A relative `path` (a bare file name included) is taken relative to the working directory,
/// never searched for on the loader's path, and the bytes hashed are the bytes loaded (on Linux;
/// elsewhere see the module `open`'s notes, summed up in the README).
pub fn load_library(path: &Path, allowlist: Option<&Allowlist>) -> Result<PluginLibrary> {
    let opened = open::open(path, allowlist)?;
    let path = opened.path;
    let sha256 = opened.sha256;
    let label = path.display().to_string();
    let library = keep_loaded(opened.library);
    // SAFETY: the symbol's type is fixed by the ABI.
    let entry_fn: libloading::Symbol<'_, GptrtPluginEntryFn> =
        unsafe { library.get(GPTRT_PLUGIN_ENTRY_SYMBOL.as_bytes()) }.map_err(|_| {
            plugin_error(
                &label,
                format!("does not export `{GPTRT_PLUGIN_ENTRY_SYMBOL}`: not a gptrt plugin"),
            )
        })?;
    // SAFETY: calling the plugin's entry point per the ABI.
    let entry_ptr = unsafe { entry_fn() };
    // SAFETY: checked for NULL and size by read_sized.
    let entry: GptrtPluginEntry =
        unsafe { read_sized(&label, "the entry (gptrt_plugin_entry)", entry_ptr.cast()) }?;
    check_abi(&label, entry.abi)?;
    let get = entry
        .get_plugin
        .ok_or_else(|| plugin_error(&label, "entry slot `get_plugin` is NULL"))?;
    if entry.plugin_count > 4096 {
        return Err(plugin_error(
            &label,
            format!("claims {} plugins", entry.plugin_count),
        ));
    }
    let mut plugins = Vec::with_capacity(entry.plugin_count);
    for index in 0..entry.plugin_count {
        let at = format!("{label} plugin #{index}");
        // SAFETY: index < plugin_count per the ABI.
        let descriptor_ptr = unsafe { get(index) };
        // SAFETY: checked for NULL and size.
        let descriptor: GptrtPluginDescriptor =
            unsafe { read_sized(&at, "the descriptor", descriptor_ptr.cast()) }?;
        let id = c_text(&at, "id", descriptor.id, true)?;
        let named = format!("{id} ({label})");
        check_abi(&named, descriptor.abi)?;
        let name = c_text(&named, "name", descriptor.name, true)?;
        let version = c_text(&named, "version", descriptor.version, true)?;
        let description = c_text(&named, "description", descriptor.description, false)?;
        let (kind, vtable) = match descriptor.kind {
            GPTRT_PLUGIN_KIND_SAMPLER => {
                // SAFETY: the kind says which vtable this is.
                let v: GptrtSamplerVtable =
                    unsafe { read_sized(&named, "the sampler vtable", descriptor.vtable) }?;
                require_slots(
                    &named,
                    "sampler",
                    &[
                        ("create", v.create.is_some()),
                        ("destroy", v.destroy.is_some()),
                        ("apply", v.apply.is_some()),
                    ],
                )?;
                (PluginKind::Sampler, Vtable::Sampler(v))
            }
            GPTRT_PLUGIN_KIND_TASK_HEAD => {
                // SAFETY: as above.
                let v: GptrtTaskHeadVtable =
                    unsafe { read_sized(&named, "the task-head vtable", descriptor.vtable) }?;
                require_slots(
                    &named,
                    "task-head",
                    &[
                        ("create", v.create.is_some()),
                        ("destroy", v.destroy.is_some()),
                        ("run", v.run.is_some()),
                        ("free_string", v.free_string.is_some()),
                    ],
                )?;
                (PluginKind::TaskHead, Vtable::TaskHead(v))
            }
            other => return Err(plugin_error(&named, format!("unknown plugin kind {other}"))),
        };
        plugins.push(Arc::new(PluginInfo {
            library: path.to_path_buf(),
            id,
            name,
            version,
            description,
            kind,
            abi: (descriptor.abi.major, descriptor.abi.minor),
            vtable,
        }));
    }
    Ok(PluginLibrary {
        path: path.to_path_buf(),
        sha256,
        abi: (entry.abi.major, entry.abi.minor),
        plugins,
    })
}

/// Shared-library files in a folder (`.so`, `.dylib`, `.dll`), sorted.
pub fn libraries_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|ext| ext == "so" || ext == "dylib" || ext == "dll")
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The plugins a process has loaded, found by id.
#[derive(Debug, Default)]
pub struct PluginHost {
    libraries: Vec<PluginLibrary>,
    allowlist: Option<Allowlist>,
}

impl PluginHost {
    /// A host with no plugins and no allowlist.
    pub fn new() -> PluginHost {
        PluginHost::default()
    }

    /// Only load libraries pinned in this allowlist.
    pub fn with_allowlist(mut self, allowlist: Allowlist) -> PluginHost {
        self.allowlist = Some(allowlist);
        self
    }

    /// Load one library (explicit path).
    pub fn load(&mut self, path: &Path) -> Result<&PluginLibrary> {
        let library = load_library(path, self.allowlist.as_ref())?;
        for plugin in &library.plugins {
            if let Some(existing) = self.find(&plugin.id) {
                return Err(plugin_error(
                    plugin.label(),
                    format!("id already provided by {}", existing.label()),
                ));
            }
        }
        self.libraries.push(library);
        Ok(self.libraries.last().expect("just pushed"))
    }

    /// Load every library in `$GPTRT_PLUGIN_PATH` folders; returns the failures (a bad plugin does
    /// not stop the others).
    pub fn load_from_env(&mut self) -> Vec<Error> {
        let Some(value) = std::env::var_os(PLUGIN_PATH_ENV) else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        for dir in std::env::split_paths(&value).filter(|d| !d.as_os_str().is_empty()) {
            match libraries_in(&dir) {
                Ok(files) => {
                    for file in files {
                        if let Err(e) = self.load(&file) {
                            errors.push(e);
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    /// Every loaded library.
    pub fn libraries(&self) -> &[PluginLibrary] {
        &self.libraries
    }

    /// A loaded plugin by id.
    pub fn find(&self, id: &str) -> Option<&Arc<PluginInfo>> {
        self.libraries
            .iter()
            .flat_map(|l| &l.plugins)
            .find(|p| p.id == id)
    }

    fn find_kind(&self, id: &str, kind: PluginKind) -> Result<Arc<PluginInfo>> {
        let plugin = self.find(id).ok_or_else(|| {
            let known: Vec<&str> = self
                .libraries
                .iter()
                .flat_map(|l| &l.plugins)
                .map(|p| p.id.as_str())
                .collect();
            plugin_error(
                id,
                format!(
                    "no such plugin loaded (loaded: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })?;
        if plugin.kind != kind {
            return Err(plugin_error(
                plugin.label(),
                format!("is a {}, not a {}", plugin.kind.name(), kind.name()),
            ));
        }
        Ok(plugin.clone())
    }

    /// An instance of a sampler plugin, ready to join a [`crate::SamplerChain`].
    pub fn sampler(
        &self,
        id: &str,
        config_json: Option<&str>,
        model: Option<Arc<Model>>,
    ) -> Result<PluginSampler> {
        PluginSampler::new(self.find_kind(id, PluginKind::Sampler)?, config_json, model)
    }

    /// An instance of a task-head plugin over `model`.
    pub fn task_head(
        &self,
        id: &str,
        config_json: Option<&str>,
        model: Arc<Model>,
    ) -> Result<TaskHead> {
        TaskHead::new(
            self.find_kind(id, PluginKind::TaskHead)?,
            config_json,
            model,
        )
    }
}

// -------------------------------------------------------------------------------------------------
// The host API handed to plugins.

/// What `host_data` points to: the model (if any) and the last message the plugin logged.
struct HostContext {
    model: Option<Arc<Model>>,
    last_log: Mutex<Option<String>>,
}

/// The host API struct and its context, at a stable address for the life of an instance.
struct HostApi {
    api: GptrtHostApi,
    context: Box<HostContext>,
}

impl HostApi {
    fn new(model: Option<Arc<Model>>) -> Box<HostApi> {
        let mut context = Box::new(HostContext {
            model,
            last_log: Mutex::new(None),
        });
        let host_data = (&mut *context as *mut HostContext).cast();
        Box::new(HostApi {
            api: GptrtHostApi {
                struct_size: std::mem::size_of::<GptrtHostApi>(),
                abi: GPTRT_PLUGIN_ABI_VERSION,
                host_data,
                log: Some(host_log),
                tokenize: Some(host_tokenize),
                detokenize: Some(host_detokenize),
                score: Some(host_score),
                forward_logits: Some(host_forward_logits),
                generate: Some(host_generate),
                free_string: Some(host_free_string),
                get_capability: Some(host_get_capability),
                score_continuations: Some(host_model::host_score_continuations),
                model_config_json: Some(host_model::host_model_config_json),
            },
            context,
        })
    }

    fn last_log(&self) -> Option<String> {
        self.context.last_log.lock().ok().and_then(|m| m.clone())
    }
}

/// # Safety
/// `host_data` is the `HostContext` this module created.
unsafe fn context<'a>(host_data: *mut c_void) -> Option<&'a HostContext> {
    // SAFETY: see above.
    unsafe { host_data.cast::<HostContext>().as_ref() }
}

/// Run a host function body behind a panic boundary; a panic becomes an error status.
fn guarded(body: impl FnOnce() -> i32) -> i32 {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(GPTRT_PLUGIN_ERROR)
}

/// # Safety
/// `text` is NULL or NUL-terminated.
unsafe fn arg_str<'a>(text: *const c_char) -> Option<&'a str> {
    if text.is_null() {
        return None;
    }
    // SAFETY: see above.
    unsafe { CStr::from_ptr(text) }.to_str().ok()
}

/// # Safety
/// `ptr` is valid for `len` elements (or `len` is 0).
unsafe fn arg_slice<'a, T>(ptr: *const T, len: usize) -> Option<&'a [T]> {
    if len == 0 {
        return Some(&[]);
    }
    if ptr.is_null() {
        return None;
    }
    // SAFETY: see above.
    Some(unsafe { std::slice::from_raw_parts(ptr, len) })
}

unsafe extern "C" fn host_log(host_data: *mut c_void, level: i32, message: *const c_char) {
    guarded(|| {
        // SAFETY: host API contract.
        if let (Some(ctx), Some(text)) =
            (unsafe { context(host_data) }, unsafe { arg_str(message) })
        {
            if level <= 1 {
                eprintln!("plugin: {text}");
            }
            if let Ok(mut last) = ctx.last_log.lock() {
                *last = Some(text.to_string());
            }
        }
        GPTRT_PLUGIN_OK
    });
}

fn write_out<T: Copy>(values: &[T], out: *mut T, capacity: usize, out_len: *mut usize) -> i32 {
    if out_len.is_null() {
        return GPTRT_PLUGIN_INVALID_ARGUMENT;
    }
    // SAFETY: `out_len` checked; `out` is valid for `capacity` per the contract.
    unsafe { *out_len = values.len() };
    if values.len() > capacity || (out.is_null() && !values.is_empty()) {
        return GPTRT_PLUGIN_BUFFER_TOO_SMALL;
    }
    // SAFETY: capacity checked above.
    unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), out, values.len()) };
    GPTRT_PLUGIN_OK
}

unsafe extern "C" fn host_tokenize(
    host_data: *mut c_void,
    text: *const c_char,
    ids: *mut u32,
    capacity: usize,
    out_len: *mut usize,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(text)) = (unsafe { context(host_data) }, unsafe { arg_str(text) })
        else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(model) = &ctx.model else {
            return GPTRT_PLUGIN_UNSUPPORTED;
        };
        match model.tokenizer().encode(text) {
            Ok(encoded) => write_out(&encoded, ids, capacity, out_len),
            Err(_) => GPTRT_PLUGIN_ERROR,
        }
    })
}

unsafe extern "C" fn host_detokenize(
    host_data: *mut c_void,
    ids: *const u32,
    n_ids: usize,
    text: *mut c_char,
    capacity: usize,
    out_len: *mut usize,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(ids)) = (unsafe { context(host_data) }, unsafe {
            arg_slice(ids, n_ids)
        }) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(model) = &ctx.model else {
            return GPTRT_PLUGIN_UNSUPPORTED;
        };
        let Ok(decoded) = model.tokenizer().decode(ids, false) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let bytes = decoded.as_bytes();
        if out_len.is_null() {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        }
        // SAFETY: checked non-NULL.
        unsafe { *out_len = bytes.len() };
        if text.is_null() || capacity < bytes.len() + 1 {
            return GPTRT_PLUGIN_BUFFER_TOO_SMALL;
        }
        // SAFETY: capacity checked, NUL included.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), text.cast::<u8>(), bytes.len());
            *text.add(bytes.len()) = 0;
        }
        GPTRT_PLUGIN_OK
    })
}

unsafe extern "C" fn host_score(
    host_data: *mut c_void,
    context_ids: *const u32,
    n_context: usize,
    continuation: *const u32,
    n_continuation: usize,
    out_logprob: *mut f64,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(context_ids), Some(continuation)) = (
            unsafe { context(host_data) },
            unsafe { arg_slice(context_ids, n_context) },
            unsafe { arg_slice(continuation, n_continuation) },
        ) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(model) = &ctx.model else {
            return GPTRT_PLUGIN_UNSUPPORTED;
        };
        if out_logprob.is_null() {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        }
        match model.score(context_ids, continuation) {
            Ok(score) => {
                // SAFETY: checked non-NULL.
                unsafe { *out_logprob = score };
                GPTRT_PLUGIN_OK
            }
            Err(_) => GPTRT_PLUGIN_INVALID_ARGUMENT,
        }
    })
}

unsafe extern "C" fn host_forward_logits(
    host_data: *mut c_void,
    ids: *const u32,
    n_ids: usize,
    logits: *mut f32,
    capacity: usize,
    out_len: *mut usize,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(ids)) = (unsafe { context(host_data) }, unsafe {
            arg_slice(ids, n_ids)
        }) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(model) = &ctx.model else {
            return GPTRT_PLUGIN_UNSUPPORTED;
        };
        match model.next_token_logits(ids) {
            Ok(values) => write_out(&values, logits, capacity, out_len),
            Err(_) => GPTRT_PLUGIN_INVALID_ARGUMENT,
        }
    })
}

unsafe extern "C" fn host_generate(
    host_data: *mut c_void,
    prompt: *const c_char,
    config_json: *const c_char,
    out_text: *mut *mut c_char,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(prompt)) = (unsafe { context(host_data) }, unsafe { arg_str(prompt) })
        else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(model) = &ctx.model else {
            return GPTRT_PLUGIN_UNSUPPORTED;
        };
        if out_text.is_null() {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        }
        // SAFETY: host API contract.
        let config = match unsafe { arg_str(config_json) } {
            None if !config_json.is_null() => return GPTRT_PLUGIN_INVALID_ARGUMENT,
            None => model.generation_config().clone(),
            Some(json) => match serde_json::from_str::<GenerationConfig>(json) {
                Ok(config) => config,
                Err(_) => return GPTRT_PLUGIN_INVALID_ARGUMENT,
            },
        };
        match model
            .generate(prompt, &config)
            .map(|g| CString::new(g.text.replace('\0', "")))
        {
            Ok(Ok(text)) => {
                // SAFETY: checked non-NULL; released by host_free_string.
                unsafe { *out_text = text.into_raw() };
                GPTRT_PLUGIN_OK
            }
            _ => GPTRT_PLUGIN_ERROR,
        }
    })
}

unsafe extern "C" fn host_free_string(_host_data: *mut c_void, text: *mut c_char) {
    if !text.is_null() {
        // SAFETY: allocated by CString::into_raw in host_generate.
        drop(unsafe { CString::from_raw(text) });
    }
}

unsafe extern "C" fn host_get_capability(
    _host_data: *mut c_void,
    _id: *const c_char,
) -> *const c_void {
    // No optional capability yet (the exports carry no hidden states); plugins must cope with NULL.
    std::ptr::null()
}

// -------------------------------------------------------------------------------------------------
// Instances.

fn last_error(
    instance: *mut c_void,
    slot: Option<unsafe extern "C" fn(*mut c_void) -> *const c_char>,
) -> Option<String> {
    let f = slot?;
    // SAFETY: the plugin's own function on its own instance.
    let text = unsafe { f(instance) };
    if text.is_null() {
        return None;
    }
    // SAFETY: NUL-terminated per the ABI, valid until the next call on the instance.
    Some(
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned(),
    )
}

fn create_instance(
    plugin: &PluginInfo,
    create: Option<
        unsafe extern "C" fn(*const GptrtHostApi, *const c_char, *mut *mut c_void) -> i32,
    >,
    host: &HostApi,
    config_json: Option<&str>,
) -> Result<*mut c_void> {
    let create = create.ok_or_else(|| plugin_error(plugin.label(), "slot `create` is NULL"))?;
    let config = config_json
        .map(|c| {
            CString::new(c).map_err(|_| plugin_error(plugin.label(), "config JSON contains NUL"))
        })
        .transpose()?;
    let mut instance: *mut c_void = std::ptr::null_mut();
    let _in_call = calls::InCall::enter();
    // SAFETY: ABI call with valid pointers; the host API outlives the instance.
    let status = unsafe {
        create(
            &host.api,
            config.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            &mut instance,
        )
    };
    if status != GPTRT_PLUGIN_OK || instance.is_null() {
        let detail = host
            .last_log()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        return Err(plugin_error(
            plugin.label(),
            format!("create failed (status {status}){detail}"),
        ));
    }
    Ok(instance)
}

/// A sampler plugin instance: a link of the sampler chain like any built-in one. The host checks
/// what it returns (sizes, token ids, NaN logits, the selection) before trusting it.
pub struct PluginSampler {
    plugin: Arc<PluginInfo>,
    vtable: GptrtSamplerVtable,
    instance: *mut c_void,
    host: Box<HostApi>,
}

// SAFETY: an instance is used by one thread at a time (the ABI's rule); the host API it holds is
// thread-safe (the model is Send + Sync).
unsafe impl Send for PluginSampler {}

impl PluginSampler {
    fn new(
        plugin: Arc<PluginInfo>,
        config_json: Option<&str>,
        model: Option<Arc<Model>>,
    ) -> Result<PluginSampler> {
        let Vtable::Sampler(vtable) = plugin.vtable else {
            return Err(plugin_error(plugin.label(), "is not a sampler"));
        };
        let host = HostApi::new(model);
        let instance = create_instance(&plugin, vtable.create, &host, config_json)?;
        Ok(PluginSampler {
            plugin,
            vtable,
            instance,
            host,
        })
    }

    /// The plugin this instance comes from.
    pub fn plugin(&self) -> &PluginInfo {
        &self.plugin
    }

    fn fault(&self, message: String) -> Error {
        plugin_error(self.plugin.label(), message)
    }
}

impl Drop for PluginSampler {
    fn drop(&mut self) {
        if let Some(destroy) = self.vtable.destroy {
            let _in_call = calls::InCall::enter();
            // SAFETY: destroying the instance this struct owns, once.
            unsafe { destroy(self.instance) };
        }
        let _ = &self.host;
    }
}

impl Sampler for PluginSampler {
    // The chain names links by id: unique and what users pass to --sampler.
    #[allow(clippy::misnamed_getters)]
    fn name(&self) -> &str {
        &self.plugin.id
    }

    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()> {
        let apply = self
            .vtable
            .apply
            .ok_or_else(|| self.fault("slot `apply` is NULL".to_string()))?;
        let vocab_limit = context.vocab_size;
        let items = candidates.items_mut();
        let before = items.len();
        let mut raw = GptrtCandidates {
            struct_size: std::mem::size_of::<GptrtCandidates>(),
            data: items.as_mut_ptr().cast::<GptrtCandidate>(),
            size: before,
            sorted: false,
            probs_valid: false,
            selected: -1,
        };
        let ctx = GptrtSamplerContext {
            struct_size: std::mem::size_of::<GptrtSamplerContext>(),
            tokens: context.tokens.as_ptr(),
            n_tokens: context.tokens.len(),
            prompt_len: context.prompt_len,
            max_length: context.max_length,
            vocab_size: vocab_limit,
        };
        // A generation that is cancelled or out of time calls no more plugins: the generator
        // stops the row without this token (see `calls::take_skipped`).
        if let Some(reason) = calls::stop_before_call() {
            return Err(self.fault(format!(
                "apply not called: the generation stopped ({})",
                reason.name()
            )));
        }
        let status = {
            let _in_call = calls::InCall::enter();
            // SAFETY: `raw.data` points to `before` initialised candidates with the ABI layout
            // (checked at compile time); the plugin may only shrink `size`.
            unsafe { apply(self.instance, &mut raw, &ctx) }
        };
        if status != GPTRT_PLUGIN_OK {
            let detail = last_error(self.instance, self.vtable.last_error)
                .unwrap_or_else(|| "no message".to_string());
            return Err(self.fault(format!("apply failed with status {status}: {detail}")));
        }
        if raw.data != items.as_mut_ptr().cast::<GptrtCandidate>() {
            return Err(self.fault(
                "apply replaced the candidates buffer (only shrinking `size` is allowed)"
                    .to_string(),
            ));
        }
        if raw.size > before || raw.size == 0 {
            return Err(self.fault(format!(
                "apply left {} candidates out of {before} (must be 1..={before})",
                raw.size
            )));
        }
        items.truncate(raw.size);
        if let Some(bad) = items.iter().find(|c| c.id as usize >= vocab_limit) {
            return Err(self.fault(format!(
                "returned token id {} outside the vocabulary (size {vocab_limit})",
                bad.id
            )));
        }
        if let Some(bad) = items.iter().find(|c| c.logit.is_nan()) {
            return Err(self.fault(format!("returned a NaN logit for token {}", bad.id)));
        }
        if raw.selected >= 0 {
            let index = usize::try_from(raw.selected).unwrap_or(usize::MAX);
            if index >= items.len() {
                return Err(self.fault(format!(
                    "selected index {} but only {} candidates remain",
                    raw.selected,
                    items.len()
                )));
            }
            candidates.select(index);
        }
        Ok(())
    }

    fn accept(&mut self, token: u32) {
        if let Some(accept) = self.vtable.accept {
            let _in_call = calls::InCall::enter();
            // SAFETY: ABI call on the owned instance.
            unsafe { accept(self.instance, token) };
        }
    }

    fn reset(&mut self) {
        if let Some(reset) = self.vtable.reset {
            let _in_call = calls::InCall::enter();
            // SAFETY: ABI call on the owned instance.
            unsafe { reset(self.instance) };
        }
    }
}

/// A task-head plugin instance over a model.
pub struct TaskHead {
    plugin: Arc<PluginInfo>,
    vtable: GptrtTaskHeadVtable,
    instance: *mut c_void,
    host: Box<HostApi>,
}

// SAFETY: as for PluginSampler.
unsafe impl Send for TaskHead {}

impl TaskHead {
    fn new(
        plugin: Arc<PluginInfo>,
        config_json: Option<&str>,
        model: Arc<Model>,
    ) -> Result<TaskHead> {
        let Vtable::TaskHead(vtable) = plugin.vtable else {
            return Err(plugin_error(plugin.label(), "is not a task head"));
        };
        let host = HostApi::new(Some(model));
        let instance = create_instance(&plugin, vtable.create, &host, config_json)?;
        Ok(TaskHead {
            plugin,
            vtable,
            instance,
            host,
        })
    }

    /// The plugin this instance comes from.
    pub fn plugin(&self) -> &PluginInfo {
        &self.plugin
    }

    /// Run the task: JSON in, JSON out (checked to be UTF-8 JSON).
    pub fn run(&mut self, input_json: &str) -> Result<String> {
        let label = self.plugin.label();
        let run = self
            .vtable
            .run
            .ok_or_else(|| plugin_error(&label, "slot `run` is NULL"))?;
        let input = CString::new(input_json)
            .map_err(|_| plugin_error(&label, "input JSON contains NUL"))?;
        let mut output: *mut c_char = std::ptr::null_mut();
        let status = {
            let _in_call = calls::InCall::enter();
            // SAFETY: ABI call with valid pointers.
            unsafe { run(self.instance, input.as_ptr(), &mut output) }
        };
        if status != GPTRT_PLUGIN_OK {
            let detail = last_error(self.instance, self.vtable.last_error)
                .unwrap_or_else(|| "no message".to_string());
            return Err(plugin_error(
                &label,
                format!("run failed with status {status}: {detail}"),
            ));
        }
        if output.is_null() {
            return Err(plugin_error(&label, "run succeeded but returned NULL"));
        }
        // SAFETY: NUL-terminated per the ABI; copied before it is freed.
        let text = unsafe { CStr::from_ptr(output) }
            .to_str()
            .map(str::to_string);
        if let Some(free) = self.vtable.free_string {
            // SAFETY: releasing the plugin's own allocation through its own function.
            unsafe { free(self.instance, output) };
        }
        let text = text.map_err(|_| plugin_error(&label, "run returned invalid UTF-8"))?;
        serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|e| plugin_error(&label, format!("run returned invalid JSON: {e}")))?;
        let _ = &self.host;
        Ok(text)
    }
}

impl Drop for TaskHead {
    fn drop(&mut self) {
        if let Some(destroy) = self.vtable.destroy {
            let _in_call = calls::InCall::enter();
            // SAFETY: destroying the owned instance once.
            unsafe { destroy(self.instance) };
        }
    }
}
