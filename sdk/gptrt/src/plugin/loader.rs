//! Loading a plugin library: the one file hashed is the one loaded, its ABI and descriptors
//! checked, never unloaded.

use std::ffi::{c_char, c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gptrt_plugin_api::*;

use crate::error::{Error, Result};
use crate::sampling::SamplerStage;

use super::{open, plugin_error, Allowlist, PluginInfo, PluginKind, PluginLibrary, Vtable};

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

/// Copy a struct that starts with `struct_size`, accepting one as small as `min_size` (an older
/// minor version, whose struct ends before the newer fields): the fields it lacks read as zero
/// (NULL slots, stage 0).
///
/// # Safety
/// `ptr` is NULL or points to a struct that begins with a `usize` size and is that large; a
/// zeroed `T` is valid.
unsafe fn read_prefix<T: Copy>(
    plugin: &str,
    what: &str,
    ptr: *const c_void,
    min_size: usize,
) -> Result<T> {
    if ptr.is_null() {
        return Err(plugin_error(plugin, format!("{what} is NULL")));
    }
    // SAFETY: every ABI struct starts with its size.
    let size = unsafe { ptr.cast::<usize>().read_unaligned() };
    if size < min_size {
        return Err(plugin_error(
            plugin,
            format!("{what} struct_size is {size} bytes, smaller than the {min_size} its ABI version needs (built against an older or broken header?)"),
        ));
    }
    let copied = size.min(std::mem::size_of::<T>());
    let mut value = std::mem::MaybeUninit::<T>::zeroed();
    // SAFETY: `copied` bytes are readable at `ptr` (the struct says it is `size` large) and fit
    // in `value`; the rest stays zeroed, which the caller says is valid.
    unsafe {
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), value.as_mut_ptr().cast::<u8>(), copied);
        Ok(value.assume_init())
    }
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
    // SAFETY: the entry point returned it, so it follows the ABI or is NULL.
    unsafe { read_entry(&path, sha256, entry_ptr) }
}

/// Check what a plugin's entry point returned: the entry, then each descriptor and its vtable.
/// Apart from `dlopen` and the entry call this is everything the loader decides, kept separate so
/// the fuzz target `plugin_descriptor` can feed it arbitrary structs.
///
/// # Safety
/// `entry_ptr` is NULL or points to a struct that starts with a `usize` size and is that large;
/// each pointer inside it (strings, vtables, `get_plugin`'s results) is NULL or valid the same way.
pub(crate) unsafe fn read_entry(
    path: &Path,
    sha256: String,
    entry_ptr: *const GptrtPluginEntry,
) -> Result<PluginLibrary> {
    let label = path.display().to_string();
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
        let (kind, vtable, stage) = match descriptor.kind {
            GPTRT_PLUGIN_KIND_SAMPLER => {
                // A 1.0/1.1 vtable ends before `stage`: it keeps today's position.
                let min_size = if descriptor.abi.minor >= 2 {
                    std::mem::size_of::<GptrtSamplerVtable>()
                } else {
                    GPTRT_SAMPLER_VTABLE_SIZE_V1_1
                };
                // SAFETY: the kind says which vtable this is; all its fields are zeroable
                // (optional function pointers and an integer).
                let mut v: GptrtSamplerVtable = unsafe {
                    read_prefix(&named, "the sampler vtable", descriptor.vtable, min_size)
                }?;
                if descriptor.abi.minor < 2 {
                    v.stage = GPTRT_SAMPLER_STAGE_DEFAULT;
                }
                require_slots(
                    &named,
                    "sampler",
                    &[
                        ("create", v.create.is_some()),
                        ("destroy", v.destroy.is_some()),
                        ("apply", v.apply.is_some()),
                    ],
                )?;
                let stage = SamplerStage::from_abi(v.stage).ok_or_else(|| {
                    plugin_error(
                        &named,
                        format!(
                            "sampler vtable `stage` is {}, not a GPTRT_SAMPLER_STAGE_* value (0-3)",
                            v.stage
                        ),
                    )
                })?;
                (PluginKind::Sampler, Vtable::Sampler(v), Some(stage))
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
                (PluginKind::TaskHead, Vtable::TaskHead(v), None)
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
            stage,
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
