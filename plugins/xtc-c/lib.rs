//! The XTC sampler plugin is C (xtc.c); this crate builds it, and lends its strict C build to the
//! tests that compile C plugin fixtures.

mod compile;

pub use compile::compile_c_plugin;

/// The built plugin library (`libgptrt_xtc.so`).
pub const LIBRARY_PATH: &str = env!("GPTRT_XTC_PLUGIN");
