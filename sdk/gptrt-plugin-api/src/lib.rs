//! # The gptrt plugin ABI
//!
//! A plugin is a shared library that exports one C symbol, `gptrt_plugin_entry`, returning a
//! [`GptrtPluginEntry`]: the ABI version and a factory (count + descriptor by index) of the plugins
//! it offers. Each [`GptrtPluginDescriptor`] names a plugin (reverse-domain id, name, version), its
//! kind (sampler or task head) and a vtable of `extern "C"` functions over an opaque `self`.
//!
//! Rules both sides keep:
//! - Every struct starts with `struct_size`; a reader accepts bigger structs (newer minor versions)
//!   and refuses smaller ones. A different `major` is refused.
//! - Each side frees only what it allocated (task-head output goes back through the plugin's own
//!   `free_string`). Plugins are never unloaded.
//! - Statuses are `int32_t`: 0 is success; on failure the plugin's `last_error(self)` may explain.
//! - A plugin instance is used by one thread at a time; the host pointer it gets in `create` stays
//!   valid until `destroy`.
//!
//! Rust authors implement [`SamplerPlugin`] or [`TaskHeadPlugin`] and call [`export_plugins!`],
//! which writes the C entry points, each behind a panic boundary. C authors need only
//! `include/gptrt_plugin.h`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
mod abi;
mod authoring;
mod generate;
mod hidden;
mod host;
mod output;
pub mod qa;
mod sessions;
mod turns;

pub use abi::*;
pub use authoring::{CandidatesMut, Context, SamplerPlugin, TaskHeadPlugin};
pub use hidden::{HiddenStates, Pooling};
pub use host::{Host, TokenBytes};
pub use output::OutputStream;
pub use sessions::{HostSession, Sessions};
pub use turns::{TurnWindow, DEFAULT_OVERFLOW_KEEP};

/// Support code for [`export_plugins!`]; not for direct use.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// Export Rust plugins from a `cdylib`: writes `gptrt_plugin_entry` and every C shim.
///
/// ```ignore
/// gptrt_plugin_api::export_plugins!(samplers: [Mirostat], task_heads: []);
/// ```
#[macro_export]
macro_rules! export_plugins {
    (samplers: [$($sampler:ty),* $(,)?], task_heads: [$($head:ty),* $(,)?] $(,)?) => {
        fn __gptrt_descriptors() -> &'static [$crate::__private::Owned] {
            static DESCRIPTORS: ::std::sync::OnceLock<::std::vec::Vec<$crate::__private::Owned>> = ::std::sync::OnceLock::new();
            DESCRIPTORS.get_or_init(|| {
                let mut list = ::std::vec::Vec::new();
                $(list.push($crate::__private::sampler::<$sampler>());)*
                $(list.push($crate::__private::task_head::<$head>());)*
                list
            })
        }

        unsafe extern "C" fn __gptrt_get_plugin(index: usize) -> *const $crate::GptrtPluginDescriptor {
            ::std::panic::catch_unwind(|| {
                __gptrt_descriptors().get(index).map_or(::std::ptr::null(), |owned| &owned.descriptor as *const _)
            })
            .unwrap_or(::std::ptr::null())
        }

        /// The plugin library's entry point.
        #[unsafe(no_mangle)]
        pub extern "C" fn gptrt_plugin_entry() -> *const $crate::GptrtPluginEntry {
            static ENTRY: ::std::sync::OnceLock<$crate::__private::Entry> = ::std::sync::OnceLock::new();
            let entry = ENTRY.get_or_init(|| {
                $crate::__private::Entry($crate::GptrtPluginEntry {
                    struct_size: ::std::mem::size_of::<$crate::GptrtPluginEntry>(),
                    abi: $crate::GPTRT_PLUGIN_ABI_VERSION,
                    plugin_count: __gptrt_descriptors().len(),
                    get_plugin: Some(__gptrt_get_plugin),
                })
            });
            &entry.0
        }
    };
}
