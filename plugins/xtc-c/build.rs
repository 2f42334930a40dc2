//! Compiles xtc.c into a shared library with the strictest flags a C author would use, so the
//! project's build proves the plugin header is clean C11. Output: target/<profile>/plugins/.

use std::path::PathBuf;

#[path = "compile.rs"]
mod compile;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let source = manifest.join("xtc.c");
    let library = out_dir.join("libgptrt_xtc.so");
    if let Err(message) = compile::compile_c_plugin(&source, &library, &[]) {
        panic!("{message}");
    }
    // Also place it where people look for built artefacts: target/<profile>/plugins/.
    if let Some(profile_dir) = out_dir.ancestors().nth(3) {
        let plugins = profile_dir.join("plugins");
        let _ = std::fs::create_dir_all(&plugins);
        let _ = std::fs::copy(&library, plugins.join("libgptrt_xtc.so"));
    }
    println!("cargo:rustc-env=GPTRT_XTC_PLUGIN={}", library.display());
    println!("cargo:rerun-if-changed={}", source.display());
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("../../include/gptrt_plugin.h").display()
    );
}
