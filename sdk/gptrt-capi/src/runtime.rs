//! `gptrt_runtime_t`: the ONNX Runtime library, execution providers, threads.

use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::Arc;

use gptrt::{ExecutionProvider, OptimizationLevel, ProviderRequest};

use crate::error::{boundary, gptrt_status_t, Failure};
use crate::ffi::{check_out, read_slice, read_str, write_out, write_text};
use crate::handles;

/// The ONNX Runtime environment and the session options models are loaded with. Opaque; made by
/// `gptrt_runtime_new`, released by `gptrt_runtime_free`.
pub struct gptrt_runtime_t(());

/// How far ONNX Runtime rewrites a graph before running it (`gptrt_runtime_options_t`
/// `optimization_level`): one of the `GPTRT_OPTIMIZATION_*` values.
pub type gptrt_optimization_level_t = u32;

/// ONNX Runtime's default: every optimisation (same as `GPTRT_OPTIMIZATION_ALL`). The value of a
/// zero-initialised options struct.
pub const GPTRT_OPTIMIZATION_DEFAULT: gptrt_optimization_level_t = 0;
/// No graph rewriting.
pub const GPTRT_OPTIMIZATION_DISABLED: gptrt_optimization_level_t = 1;
/// Constant folding and redundant node removal.
pub const GPTRT_OPTIMIZATION_BASIC: gptrt_optimization_level_t = 2;
/// Basic plus node fusions.
pub const GPTRT_OPTIMIZATION_EXTENDED: gptrt_optimization_level_t = 3;
/// Everything, including layout changes.
pub const GPTRT_OPTIMIZATION_ALL: gptrt_optimization_level_t = 4;

/// Options for `gptrt_runtime_new`. Get them from `gptrt_runtime_options_default()` (or
/// zero-initialise the struct and set `struct_size`), then change what you need. Every field's zero
/// value means "the default", and later versions only append fields, which `struct_size` tells
/// apart.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct gptrt_runtime_options_t {
    /// `sizeof(gptrt_runtime_options_t)` as the caller compiled it. Required.
    pub struct_size: usize,
    /// Path of the ONNX Runtime shared library (`libonnxruntime.so.1.31.1`), UTF-8, or NULL to
    /// search: `$ORT_DYLIB_PATH`, then next to the executable, then (development builds) the
    /// `.ort/` folder of the gptrt source tree this library was built from (where
    /// `scripts/setup.sh` puts it; a program shipped to another machine has no such folder: ship
    /// the library next to the executable or set `ORT_DYLIB_PATH`). An explicit path that does not
    /// load is an error, never silently replaced. The first runtime made in a process loads the
    /// library; a later runtime with NULL here reuses it, and one naming another file fails with
    /// `GPTRT_ERROR_RUNTIME_LIBRARY` (the message names the loaded and the requested library).
    pub library_path: *const c_char,
    /// Execution providers in priority order, each `NAME[:strict][:DEVICE]` with NAME one of
    /// `cpu`, `cuda`, `tensorrt`, `directml` (for example `{"cuda:0", "cpu"}`). When a model is
    /// loaded, the first usable one runs it; an entry that cannot be used (not compiled in, see
    /// `GPTRT_FEATURE_*`; no GPU build of ONNX Runtime; no device) is skipped, unless marked
    /// `strict`, which makes `gptrt_model_load` fail with `GPTRT_ERROR_EXECUTION_PROVIDER`. CPU
    /// ends every list. NULL (count 0): CPU only. A malformed entry is
    /// `GPTRT_ERROR_INVALID_ARGUMENT`. `gptrt_model_execution_provider` tells which one runs.
    pub execution_providers: *const *const c_char,
    /// Number of entries in `execution_providers`.
    pub execution_provider_count: usize,
    /// Threads inside one operator (0 = one per available core).
    pub intra_threads: u32,
    /// Threads across independent operators (0 = ONNX Runtime's choice).
    pub inter_threads: u32,
    /// One of `GPTRT_OPTIMIZATION_*` (0 = `GPTRT_OPTIMIZATION_DEFAULT`).
    pub optimization_level: gptrt_optimization_level_t,
}

/// The end of the last field of the first version of `gptrt_runtime_options_t`: the smallest
/// `struct_size` accepted. Frozen: fields added later go after it.
const OPTIONS_V1_SIZE: usize = std::mem::offset_of!(gptrt_runtime_options_t, optimization_level)
    + std::mem::size_of::<gptrt_optimization_level_t>();

/// The object behind a `gptrt_runtime_t`.
pub(crate) struct RuntimeObject {
    pub runtime: gptrt::Runtime,
}

/// A NUL-terminated static name for a provider (ONNX Runtime's name, as `Model::provider` gives).
pub(crate) fn provider_cstr(provider: ExecutionProvider) -> *const c_char {
    let name = match provider {
        ExecutionProvider::Cpu => c"CPUExecutionProvider",
        ExecutionProvider::Cuda => c"CUDAExecutionProvider",
        ExecutionProvider::TensorRt => c"TensorrtExecutionProvider",
        ExecutionProvider::DirectMl => c"DmlExecutionProvider",
        #[allow(unreachable_patterns)]
        _ => c"unknown",
    };
    name.as_ptr()
}

fn parse_provider(text: &str, what: &str) -> Result<ProviderRequest, Failure> {
    ProviderRequest::parse(text).map_err(|e| Failure::invalid(format!("{what}: {e}")))
}

/// Default runtime options: `struct_size` set, everything else zero (search for the library, CPU,
/// one thread per core, every graph optimisation).
///
/// [thread-safe] Never fails.
#[no_mangle]
pub extern "C" fn gptrt_runtime_options_default() -> gptrt_runtime_options_t {
    gptrt_runtime_options_t {
        struct_size: std::mem::size_of::<gptrt_runtime_options_t>(),
        library_path: std::ptr::null(),
        execution_providers: std::ptr::null(),
        execution_provider_count: 0,
        intra_threads: 0,
        inter_threads: 0,
        optimization_level: GPTRT_OPTIMIZATION_DEFAULT,
    }
}

/// Copy the caller's options, reading only the `struct_size` bytes it declared; fields it does not
/// have keep their defaults.
///
/// # Safety
/// `options` is NULL or points to at least `struct_size` readable bytes starting with a `size_t`.
unsafe fn read_options(
    options: *const gptrt_runtime_options_t,
) -> Result<gptrt_runtime_options_t, Failure> {
    let mut copy = gptrt_runtime_options_default();
    if options.is_null() {
        return Ok(copy);
    }
    // SAFETY: the struct starts with `struct_size`; the caller guarantees it is readable.
    let declared = unsafe { std::ptr::addr_of!((*options).struct_size).read_unaligned() };
    if declared < OPTIONS_V1_SIZE {
        return Err(Failure::invalid(format!(
            "options->struct_size is {declared}; expected sizeof(gptrt_runtime_options_t) \
             (start from gptrt_runtime_options_default())"
        )));
    }
    // Fields a newer header appended are ignored; fields an older header lacks keep defaults.
    let size = declared.min(std::mem::size_of::<gptrt_runtime_options_t>());
    // SAFETY: the caller's struct has `declared >= size` readable bytes; `copy` has `size` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            options.cast::<u8>(),
            (&mut copy as *mut gptrt_runtime_options_t).cast::<u8>(),
            size,
        );
    }
    copy.struct_size = std::mem::size_of::<gptrt_runtime_options_t>();
    Ok(copy)
}

/// Load ONNX Runtime (the first time in the process) and make a runtime.
///
/// `options` may be NULL for the defaults. On success `*out_runtime` receives a new handle to
/// release with `gptrt_runtime_free`. Errors: `GPTRT_ERROR_RUNTIME_LIBRARY` (the message lists
/// every place searched), `GPTRT_ERROR_EXECUTION_PROVIDER`, `GPTRT_ERROR_INVALID_ARGUMENT`.
///
/// [thread-safe]
///
/// # Safety
/// `options` is NULL or a valid options struct; its strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn gptrt_runtime_new(
    options: *const gptrt_runtime_options_t,
    out_runtime: *mut *mut gptrt_runtime_t,
) -> gptrt_status_t {
    boundary("gptrt_runtime_new", || {
        check_out(out_runtime, "out_runtime")?;
        // SAFETY: per this function's contract.
        let options = unsafe { read_options(options)? };
        let mut builder = gptrt::Runtime::builder();
        if !options.library_path.is_null() {
            // SAFETY: NUL-terminated per the contract.
            let path = unsafe { read_str(options.library_path, "options->library_path")? };
            builder = builder.library_path(PathBuf::from(path));
        }
        // SAFETY: `execution_provider_count` pointers per the contract.
        let names = unsafe {
            read_slice(
                options.execution_providers,
                options.execution_provider_count,
                "options->execution_providers",
            )?
        };
        let mut providers = Vec::with_capacity(names.len());
        for (index, &name) in names.iter().enumerate() {
            let what = format!("options->execution_providers[{index}]");
            // SAFETY: each entry is a NUL-terminated string per the contract.
            let name = unsafe { read_str(name, &what)? };
            providers.push(parse_provider(name, &what)?);
        }
        builder = builder.providers(providers);
        let threads = |value: u32| usize::try_from(value).unwrap_or(usize::MAX);
        builder = builder
            .intra_threads(threads(options.intra_threads))
            .inter_threads(threads(options.inter_threads))
            .optimization_level(match options.optimization_level {
                GPTRT_OPTIMIZATION_DEFAULT | GPTRT_OPTIMIZATION_ALL => OptimizationLevel::All,
                GPTRT_OPTIMIZATION_DISABLED => OptimizationLevel::Disabled,
                GPTRT_OPTIMIZATION_BASIC => OptimizationLevel::Basic,
                GPTRT_OPTIMIZATION_EXTENDED => OptimizationLevel::Extended,
                other => {
                    return Err(Failure::invalid(format!(
                    "options->optimization_level is {other}; expected a GPTRT_OPTIMIZATION_* value"
                )))
                }
            });
        let runtime = builder.build()?;
        let handle = handles::insert::<gptrt_runtime_t>(Arc::new(RuntimeObject { runtime }));
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_runtime, handle) };
        Ok(())
    })
}

/// Release a runtime handle. NULL, or a handle freed already, is ignored (set your variable to
/// NULL after freeing). Models loaded with it keep what they need.
///
/// [thread-safe] Do not use the handle after this call.
#[no_mangle]
pub extern "C" fn gptrt_runtime_free(runtime: *mut gptrt_runtime_t) {
    crate::error::boundary_value((), || handles::remove(runtime));
}

/// The path of the ONNX Runtime library in use, copied into `buffer` (NUL-terminated). `*out_size`
/// receives the size needed (the NUL included), also when the status is
/// `GPTRT_ERROR_BUFFER_TOO_SMALL`; pass `buffer = NULL, capacity = 0` to ask for it.
///
/// [thread-safe]
///
/// # Safety
/// `buffer` is NULL or valid for `capacity` bytes.
#[no_mangle]
pub unsafe extern "C" fn gptrt_runtime_library_path(
    runtime: *const gptrt_runtime_t,
    buffer: *mut c_char,
    capacity: usize,
    out_size: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_runtime_library_path", || {
        check_out(out_size, "out_size")?;
        let object = handles::get(runtime, "runtime")?;
        let path = object.runtime.library_path().to_string_lossy().into_owned();
        // SAFETY: per this function's contract.
        unsafe { write_text(&path, buffer, capacity, out_size, "buffer") }
    })
}

/// Whether an execution provider (`"cpu"`, `"cuda"`, `"tensorrt"`, `"directml"`) is compiled into
/// this library: the run-time answer to the `GPTRT_FEATURE_*` macros of the header you compiled
/// with. (A compiled-in GPU provider still needs a GPU build of ONNX Runtime and a device when a
/// model is loaded.) An unknown name is `GPTRT_ERROR_INVALID_ARGUMENT`.
///
/// [thread-safe]
///
/// # Safety
/// `name` is NULL or NUL-terminated; `out_available` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_execution_provider_available(
    name: *const c_char,
    out_available: *mut bool,
) -> gptrt_status_t {
    boundary("gptrt_execution_provider_available", || {
        check_out(out_available, "out_available")?;
        // SAFETY: per this function's contract.
        let name = unsafe { read_str(name, "name")? };
        let provider = parse_provider(name, "name")?.provider;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_available, provider.compiled_in()) };
        Ok(())
    })
}
