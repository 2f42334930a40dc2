//! Entry points for the fuzz targets under `fuzz/` (feature `fuzzing`, never on by default): the
//! checks that decide about outside bytes before ONNX Runtime or a plugin's code sees them, which
//! are crate-private in normal builds. Not part of the supported API.

use std::path::Path;

use gptrt_plugin_api::GptrtPluginEntry;

use crate::error::Result;
use crate::plugin::PluginLibrary;

/// What the graph byte scanner finds in a graph: the initializer that keeps its data in a separate
/// file (`(initializer, file)`), and the operators that make a row depend on its batch mates.
pub fn scan_graph_bytes(graph: &[u8]) -> (Option<(String, String)>, Vec<String>) {
    (
        crate::graph::bytes::external_initializer(graph),
        crate::graph::bytes::batch_dependent_ops(graph),
    )
}

/// The plugin loader's checks of what `gptrt_plugin_entry` returned, as if `path` had returned it.
///
/// # Safety
/// As the loader's: `entry` is NULL or a struct at least as large as its `struct_size` claims up to
/// this host's size, and every pointer reachable from it is NULL or valid the same way (strings
/// NUL-terminated).
pub unsafe fn check_plugin_entry(
    path: &Path,
    entry: *const GptrtPluginEntry,
) -> Result<PluginLibrary> {
    // SAFETY: per this function's contract.
    unsafe { crate::plugin::loader::read_entry(path, String::new(), entry) }
}
