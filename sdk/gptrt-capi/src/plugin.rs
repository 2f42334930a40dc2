//! Plugins from C: a plugin host loads sampler and task-head libraries (checked, optionally pinned
//! by SHA-256, never unloaded); sessions put plugin samplers in their chain; task heads run with
//! JSON in and JSON out.

use std::ffi::{c_char, CString};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{boundary, gptrt_status_t, Failure};
use crate::ffi::{check_out, read_str, write_out, write_text};
use crate::handles;

/// A set of loaded plugin libraries. Opaque; made by `gptrt_plugin_host_new`, released by
/// `gptrt_plugin_host_free` (the libraries themselves stay loaded: plugins are never unloaded).
pub struct gptrt_plugin_host_t(());

/// The object behind a `gptrt_plugin_host_t`.
pub(crate) struct PluginHostObject {
    /// Shared with the sessions that put its samplers in their chains.
    pub(crate) host: gptrt::SharedPluginHost,
}

impl PluginHostObject {
    pub(crate) fn lock(&self) -> MutexGuard<'_, gptrt::PluginHost> {
        // Loading is all-or-nothing per library: the host is consistent after a panic.
        self.host
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Make an empty plugin host. `allowlist_path` may be NULL; otherwise only libraries whose SHA-256
/// is pinned in that file (lines `HEX  FILE-NAME`, as `sha256sum` prints) will load.
///
/// [thread-safe]
///
/// # Safety
/// `allowlist_path` is NULL or a NUL-terminated string; `out_host` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_plugin_host_new(
    allowlist_path: *const c_char,
    out_host: *mut *mut gptrt_plugin_host_t,
) -> gptrt_status_t {
    boundary("gptrt_plugin_host_new", || {
        check_out(out_host, "out_host")?;
        let mut host = gptrt::PluginHost::new();
        if !allowlist_path.is_null() {
            // SAFETY: caller contract.
            let path = unsafe { read_str(allowlist_path, "allowlist_path") }?;
            host = host.with_allowlist(gptrt::Allowlist::from_file(std::path::Path::new(path))?);
        }
        let object = Arc::new(PluginHostObject {
            host: Arc::new(Mutex::new(host)),
        });
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_host, handles::insert::<gptrt_plugin_host_t>(object)) };
        Ok(())
    })
}

/// Release a plugin host (NULL and freed handles are ignored). Sessions that use its samplers keep
/// it alive.
///
/// [thread-safe]
#[no_mangle]
pub extern "C" fn gptrt_plugin_host_free(host: *mut gptrt_plugin_host_t) {
    crate::error::boundary_value((), || handles::remove(host));
}

/// Load a plugin library. Its ABI version, struct sizes and required slots are checked (and its
/// SHA-256 against the allowlist); a refusal returns `GPTRT_ERROR_PLUGIN` and a message naming the
/// library and the fault. `path` names a file, never a search: a relative path or a bare name is
/// that file in the working directory (`LD_LIBRARY_PATH` is not consulted), and on Linux the bytes
/// hashed are the bytes loaded (README: Plugin authors).
///
/// [thread-safe]
///
/// # Safety
/// `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gptrt_plugin_host_load(
    host: *const gptrt_plugin_host_t,
    path: *const c_char,
) -> gptrt_status_t {
    boundary("gptrt_plugin_host_load", || {
        let host = handles::get(host, "host")?;
        // SAFETY: caller contract.
        let path = unsafe { read_str(path, "path") }?;
        host.lock().load(std::path::Path::new(path))?;
        Ok(())
    })
}

/// Describe the loaded plugins as JSON (`[{"id", "name", "version", "kind", "library",
/// "description"}]`) into `buffer`. `*out_size` receives the bytes needed, NUL included; a buffer
/// too small gives `GPTRT_ERROR_BUFFER_TOO_SMALL`.
///
/// [thread-safe]
///
/// # Safety
/// `buffer` is NULL (with `capacity` 0) or valid for `capacity` bytes; `out_size` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_plugin_host_info_json(
    host: *const gptrt_plugin_host_t,
    buffer: *mut c_char,
    capacity: usize,
    out_size: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_plugin_host_info_json", || {
        let host = handles::get(host, "host")?;
        let plugins: Vec<serde_json::Value> = host
            .lock()
            .libraries()
            .iter()
            .flat_map(|library| &library.plugins)
            .map(|p| {
                serde_json::json!({
                    "id": p.id, "name": p.name, "version": p.version, "kind": p.kind.name(),
                    "library": p.library.display().to_string(), "description": p.description,
                })
            })
            .collect();
        let text = serde_json::Value::Array(plugins).to_string();
        // SAFETY: caller contract.
        unsafe { write_text(&text, buffer, capacity, out_size, "buffer") }
    })
}

/// Put plugin sampler `id` (loaded in `host`) in the session's chain, before its selector, for
/// every later generation. `config_json` (may be NULL) is handed to the plugin's `create`; an
/// instance is made now to check it, so a bad id or config fails here.
///
/// [one thread at a time per session; not while a generation runs on it]
///
/// # Safety
/// `id` is a NUL-terminated string; `config_json` is NULL or one.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_add_sampler(
    session: *const crate::session::gptrt_session_t,
    host: *const gptrt_plugin_host_t,
    id: *const c_char,
    config_json: *const c_char,
) -> gptrt_status_t {
    boundary("gptrt_session_add_sampler", || {
        let session = handles::get(session, "session")?;
        let host = handles::get(host, "host")?;
        // SAFETY: caller contract.
        let id = unsafe { read_str(id, "id") }?;
        let config = if config_json.is_null() {
            None
        } else {
            // SAFETY: caller contract.
            Some(unsafe { read_str(config_json, "config_json") }?.to_string())
        };
        Ok(session.add_sampler(host.host.clone(), gptrt::SamplerSpec::new(id, config))?)
    })
}

/// Remove every plugin sampler from the session's chain.
///
/// [one thread at a time per session; not while a generation runs on it]
#[no_mangle]
pub extern "C" fn gptrt_session_clear_samplers(
    session: *const crate::session::gptrt_session_t,
) -> gptrt_status_t {
    boundary("gptrt_session_clear_samplers", || {
        Ok(handles::get(session, "session")?.clear_samplers()?)
    })
}

/// Run task-head plugin `id` over `model`: `input_json` in, JSON out. On success `*out_json`
/// receives a NUL-terminated string owned by gptrt, to release with `gptrt_string_free`.
///
/// [thread-safe; the task head runs on the calling thread]
///
/// # Safety
/// `id` and `input_json` are NUL-terminated strings, `config_json` NULL or one; `out_json` valid
/// for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_task_head_run(
    host: *const gptrt_plugin_host_t,
    model: *const crate::model::gptrt_model_t,
    id: *const c_char,
    config_json: *const c_char,
    input_json: *const c_char,
    out_json: *mut *mut c_char,
) -> gptrt_status_t {
    boundary("gptrt_task_head_run", || {
        check_out(out_json, "out_json")?;
        let host = handles::get(host, "host")?;
        let model = handles::get(model, "model")?;
        // SAFETY: caller contract.
        let id = unsafe { read_str(id, "id") }?;
        // SAFETY: caller contract.
        let input = unsafe { read_str(input_json, "input_json") }?;
        let config = if config_json.is_null() {
            None
        } else {
            // SAFETY: caller contract.
            Some(unsafe { read_str(config_json, "config_json") }?)
        };
        let mut head = host.lock().task_head(id, config, model)?;
        let output = head.run(input)?;
        let text = CString::new(output)
            .map_err(|_| Failure::invalid("the task head's output contains NUL"))?;
        // SAFETY: checked non-NULL above; released by gptrt_string_free.
        unsafe { write_out(out_json, text.into_raw()) };
        Ok(())
    })
}

/// Release a string gptrt returned (`gptrt_task_head_run`). NULL is ignored.
///
/// [thread-safe]
///
/// # Safety
/// `text` is NULL or a string gptrt returned and that was not released yet.
#[no_mangle]
pub unsafe extern "C" fn gptrt_string_free(text: *mut c_char) {
    if !text.is_null() {
        // SAFETY: allocated by CString::into_raw in this library.
        crate::error::boundary_value((), || drop(unsafe { CString::from_raw(text) }));
    }
}
