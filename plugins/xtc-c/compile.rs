//! Compiling a plugin written in C with the strictest flags a C author would use (C11, every
//! warning an error, pedantic), so a build proves the plugin header is clean C11. Shared by this
//! crate's build script and the tests that build C plugin fixtures.

use std::path::Path;
use std::process::Command;

/// Compile `source` into the shared library `out` against the repository's `include/`, with each
/// of `defines` as a `-D` flag.
pub fn compile_c_plugin(source: &Path, out: &Path, defines: &[String]) -> Result<(), String> {
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../include");
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&compiler)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-O2",
            "-fPIC",
        ])
        .args(["-shared", "-fvisibility=hidden"])
        .args(defines.iter().map(|d| format!("-D{d}")))
        .arg("-I")
        .arg(&include)
        .arg(source)
        .arg("-o")
        .arg(out)
        .arg("-lm")
        .status()
        .map_err(|e| format!("cannot run the C compiler `{compiler}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("compiling {} failed", source.display()))
    }
}
