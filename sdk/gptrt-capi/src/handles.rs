//! The handle table. A handle the host holds is an id, never the address of our memory: every call
//! looks the id up in this table and gets a reference-counted object of the expected type. A freed,
//! doubly freed, forged or wrongly typed handle therefore gives `GPTRT_ERROR_INVALID_HANDLE`
//! instead of touching freed memory, and an object freed on one thread while another thread is
//! inside a call on it lives until that call returns.
//!
//! Ids are never reused (a 64-bit counter), so a stale handle cannot alias a newer object. The
//! table lock is held only to insert, look up (clone an `Arc`) or remove; objects are dropped after
//! it is released, so a slow drop (a model, a session joining its worker) never blocks other calls.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use crate::error::{Failure, GPTRT_ERROR_INVALID_HANDLE};

/// A C handle type (`gptrt_model_t` ...) and the object it stands for. Implemented with
/// [`handle_types!`] for every type the C API hands out; this module names none of them, so the
/// object modules can use it without a cycle.
pub(crate) trait Handle: 'static {
    /// The Rust object behind the handle.
    type Target: Send + Sync + 'static;
    /// The C type name, for messages.
    const NAME: &'static str;
}

/// Declares C handle types and their objects: `module::c_type => Target, ...` (the C name, for
/// messages, is the type's own name).
macro_rules! handle_types {
    ($($module:ident::$c_type:ident => $target:ty),+ $(,)?) => {$(
        impl $crate::handles::Handle for $module::$c_type {
            type Target = $target;
            const NAME: &'static str = stringify!($c_type);
        }
    )+};
}
pub(crate) use handle_types;

/// A live object and the handle type it was handed out as. The type is checked on every lookup by
/// the handle type's `TypeId`, not only the object's, so two handle types over one Rust type would
/// still not stand for each other.
struct Entry {
    handle_type: TypeId,
    type_name: &'static str,
    object: Arc<dyn Any + Send + Sync>,
}

impl Entry {
    fn downcast<H: Handle>(&self) -> Option<Arc<H::Target>> {
        if self.handle_type != TypeId::of::<H>() {
            return None;
        }
        self.object.clone().downcast::<H::Target>().ok()
    }
}

static TABLE: LazyLock<RwLock<HashMap<u64, Entry>>> = LazyLock::new(|| RwLock::new(HashMap::new()));

/// Ids start high and step by 16 so that handles look like (aligned) pointers in a debugger and a
/// small integer cast to a handle is never a live one.
static NEXT_ID: AtomicU64 = AtomicU64::new(0x1000);

fn table_read() -> std::sync::RwLockReadGuard<'static, HashMap<u64, Entry>> {
    // The table is consistent after any panic (each operation is one insert/get/remove).
    TABLE
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn table_write() -> std::sync::RwLockWriteGuard<'static, HashMap<u64, Entry>> {
    TABLE
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Register a new object; the returned pointer is the host's handle.
pub(crate) fn insert<H: Handle>(object: Arc<H::Target>) -> *mut H {
    let id = NEXT_ID.fetch_add(16, Ordering::Relaxed);
    let entry = Entry {
        handle_type: TypeId::of::<H>(),
        type_name: H::NAME,
        object,
    };
    table_write().insert(id, entry);
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
        Some(entry) => entry.downcast::<H>().ok_or_else(|| {
            Failure::new(
                GPTRT_ERROR_INVALID_HANDLE,
                format!("`{what}` is a {}, not a {}", entry.type_name, H::NAME),
            )
        }),
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
            Some(entry) if entry.handle_type == TypeId::of::<H>() => table.remove(&id),
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

#[cfg(test)]
mod tests {
    use super::*;

    // Two handle types over one Rust type: only the handle type tells them apart.
    mod kinds {
        pub struct first_t(());
        pub struct second_t(());
    }
    handle_types! {
        kinds::first_t => String,
        kinds::second_t => String,
    }
    use kinds::{first_t, second_t};

    fn status<T>(result: Result<T, Failure>) -> (crate::error::gptrt_status_t, String) {
        match result {
            Ok(_) => panic!("expected a failure"),
            Err(failure) => (failure.status, failure.message),
        }
    }

    #[test]
    fn a_handle_is_found_only_as_its_own_type_while_live() {
        let handle = insert::<first_t>(Arc::new("text".to_string()));
        assert_eq!(*get(handle.cast_const(), "first").unwrap(), "text");

        let wrong = handle.cast::<second_t>();
        let (code, message) = status(get(wrong.cast_const(), "second"));
        assert_eq!(code, GPTRT_ERROR_INVALID_HANDLE);
        assert!(
            message.contains("is a first_t, not a second_t"),
            "{message}"
        );

        // Freeing as the wrong type is ignored: the object stays.
        remove(wrong);
        assert_eq!(*get(handle.cast_const(), "first").unwrap(), "text");

        remove(handle);
        let (code, message) = status(get(handle.cast_const(), "first"));
        assert_eq!(code, GPTRT_ERROR_INVALID_HANDLE);
        assert!(message.contains("not a live first_t"), "{message}");
        remove(handle); // a second free is ignored
    }

    #[test]
    fn forged_and_null_handles_are_refused() {
        let forged = 0x1234usize as *const first_t;
        assert_eq!(status(get(forged, "first")).0, GPTRT_ERROR_INVALID_HANDLE);
        let (code, _) = status(get(std::ptr::null::<first_t>(), "first"));
        assert_eq!(code, crate::error::GPTRT_ERROR_NULL_POINTER);
    }
}
