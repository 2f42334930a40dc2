//! The handle table. A handle the host holds is an id, never the address of our memory: every call
//! looks the id up in this table and gets a reference-counted object of the expected type. A freed,
//! doubly freed, forged or wrongly typed handle therefore gives `GPTRT_ERROR_INVALID_HANDLE`
//! instead of touching freed memory, and an object freed on one thread while another thread is
//! inside a call on it lives until that call returns.
//!
//! Ids are never reused (a 64-bit counter), so a stale handle cannot alias a newer object. The
//! table lock is held only to insert, look up (clone an `Arc`) or remove; objects are dropped after
//! it is released, so a slow drop (a model, a session joining its worker) never blocks other calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use crate::error::{Failure, GPTRT_ERROR_INVALID_HANDLE};

/// Every kind of object the C API hands out.
pub(crate) enum Object {
    Runtime(Arc<crate::runtime::RuntimeObject>),
    Model(Arc<gptrt::Model>),
    Options(Arc<crate::options::OptionsObject>),
    Session(Arc<crate::session::Session>),
    Tokenizer(Arc<crate::tokenizer::TokenizerObject>),
    PluginHost(Arc<crate::plugin::PluginHostObject>),
    Batcher(Arc<crate::batcher::Batcher>),
}

impl Object {
    fn type_name(&self) -> &'static str {
        match self {
            Object::Runtime(_) => "gptrt_runtime_t",
            Object::Model(_) => "gptrt_model_t",
            Object::Options(_) => "gptrt_generation_options_t",
            Object::Session(_) => "gptrt_session_t",
            Object::Tokenizer(_) => "gptrt_tokenizer_t",
            Object::PluginHost(_) => "gptrt_plugin_host_t",
            Object::Batcher(_) => "gptrt_batcher_t",
        }
    }
}

/// A C handle type (`gptrt_model_t` ...) and the object it stands for.
pub(crate) trait Handle {
    /// The Rust object behind the handle.
    type Target;
    /// The C type name, for messages.
    const NAME: &'static str;
    fn wrap(object: Arc<Self::Target>) -> Object;
    fn unwrap(object: &Object) -> Option<&Arc<Self::Target>>;
}

macro_rules! handle {
    ($c_type:ty, $variant:ident, $target:ty, $name:literal) => {
        impl Handle for $c_type {
            type Target = $target;
            const NAME: &'static str = $name;
            fn wrap(object: Arc<$target>) -> Object {
                Object::$variant(object)
            }
            fn unwrap(object: &Object) -> Option<&Arc<$target>> {
                match object {
                    Object::$variant(inner) => Some(inner),
                    _ => None,
                }
            }
        }
    };
}

handle!(
    crate::runtime::gptrt_runtime_t,
    Runtime,
    crate::runtime::RuntimeObject,
    "gptrt_runtime_t"
);
handle!(
    crate::model::gptrt_model_t,
    Model,
    gptrt::Model,
    "gptrt_model_t"
);
handle!(
    crate::options::gptrt_generation_options_t,
    Options,
    crate::options::OptionsObject,
    "gptrt_generation_options_t"
);
handle!(
    crate::session::gptrt_session_t,
    Session,
    crate::session::Session,
    "gptrt_session_t"
);
handle!(
    crate::tokenizer::gptrt_tokenizer_t,
    Tokenizer,
    crate::tokenizer::TokenizerObject,
    "gptrt_tokenizer_t"
);

handle!(
    crate::plugin::gptrt_plugin_host_t,
    PluginHost,
    crate::plugin::PluginHostObject,
    "gptrt_plugin_host_t"
);

handle!(
    crate::batcher::gptrt_batcher_t,
    Batcher,
    crate::batcher::Batcher,
    "gptrt_batcher_t"
);

static TABLE: LazyLock<RwLock<HashMap<u64, Object>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// Ids start high and step by 16 so that handles look like (aligned) pointers in a debugger and a
/// small integer cast to a handle is never a live one.
static NEXT_ID: AtomicU64 = AtomicU64::new(0x1000);

fn table_read() -> std::sync::RwLockReadGuard<'static, HashMap<u64, Object>> {
    // The table is consistent after any panic (each operation is one insert/get/remove).
    TABLE
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn table_write() -> std::sync::RwLockWriteGuard<'static, HashMap<u64, Object>> {
    TABLE
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Register a new object; the returned pointer is the host's handle.
pub(crate) fn insert<H: Handle>(object: Arc<H::Target>) -> *mut H {
    let id = NEXT_ID.fetch_add(16, Ordering::Relaxed);
    table_write().insert(id, H::wrap(object));
    id as usize as *mut H
}

/// The object behind a handle, or the reason there is none.
pub(crate) fn get<H: Handle>(handle: *const H, what: &str) -> Result<Arc<H::Target>, Failure> {
    if handle.is_null() {
        return Err(Failure::null(what));
    }
    let id = handle as usize as u64;
    let table = table_read();
    match table.get(&id) {
        Some(object) => match H::unwrap(object) {
            Some(inner) => Ok(inner.clone()),
            None => Err(Failure::new(
                GPTRT_ERROR_INVALID_HANDLE,
                format!("`{what}` is a {}, not a {}", object.type_name(), H::NAME),
            )),
        },
        None => Err(Failure::new(
            GPTRT_ERROR_INVALID_HANDLE,
            format!(
                "`{what}` ({handle:p}) is not a live {}: freed already, or not made by gptrt",
                H::NAME
            ),
        )),
    }
}

/// Release the host's handle. NULL, an unknown handle (freed already) or a handle of another type
/// is ignored. The object itself is dropped here, outside the table lock, unless another thread is
/// still inside a call on it (then it is dropped when that call returns).
pub(crate) fn remove<H: Handle>(handle: *mut H) {
    if handle.is_null() {
        return;
    }
    let id = handle as usize as u64;
    let removed = {
        let mut table = table_write();
        let removed = match table.get(&id) {
            Some(object) if H::unwrap(object).is_some() => table.remove(&id),
            _ => None,
        };
        if table.is_empty() {
            // Give the memory back when the host has freed everything, so that leak checkers
            // (valgrind) see nothing of gptrt's left at exit.
            *table = HashMap::new();
        }
        removed
    };
    drop(removed);
}
