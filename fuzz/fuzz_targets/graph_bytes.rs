//! Graph bytes as the loader scans them before ONNX Runtime sees them (external-data initializers,
//! batch-dependent operators): any bytes, never a panic or an endless loop.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gptrt::fuzzing::scan_graph_bytes(data);
});
