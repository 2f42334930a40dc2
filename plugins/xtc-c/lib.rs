//! The XTC sampler plugin is C (xtc.c); this crate only builds it. Its path:

/// The built plugin library (`libgptrt_xtc.so`).
pub const LIBRARY_PATH: &str = env!("GPTRT_XTC_PLUGIN");
