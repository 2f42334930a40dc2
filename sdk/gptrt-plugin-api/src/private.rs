//! Support code for [`export_plugins!`](crate::export_plugins); not for direct use.

use std::ffi::{c_char, c_void, CStr, CString};

use crate::*;
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
        stage: T::STAGE,
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
