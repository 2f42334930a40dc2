//! What the command's end-to-end tests share: the fixture model, running `gptrt`, failing cleanly,
//! scratch folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixture(layout: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/fixtures/tiny-random-gpt2")
        .join(layout)
}

pub fn model_arg(layout: &str) -> String {
    fixture(layout).display().to_string()
}

/// Run `program` (a `gptrt` binary) with neither a default model nor an ONNX Runtime path from
/// the environment.
pub fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env_remove("GPTRT_MODEL")
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .expect("gptrt runs")
}

pub fn gptrt(args: &[&str]) -> Output {
    run(Path::new(env!("CARGO_BIN_EXE_gptrt")), args)
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A failing run: non-zero exit, no panic, an error that contains every `needle`.
pub fn assert_fails(output: &Output, needles: &[&str]) {
    let err = stderr(output);
    assert!(!output.status.success(), "expected failure, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
}

/// [`assert_fails`], plus: the exit status of an error (1, not a panic's 101) and nothing printed
/// on stdout before the error.
pub fn assert_fails_cleanly(output: &Output, needles: &[&str]) {
    assert_fails(output, needles);
    assert_eq!(
        output.status.code(),
        Some(1),
        "exit status (101 = panic): {}",
        stderr(output)
    );
    assert!(
        output.stdout.is_empty(),
        "printed before failing: {:?}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// A scratch folder removed at the end of the test.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("gptrt-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// A copy of a fixture model folder (links followed).
    pub fn model_copy(name: &str, layout: &str) -> Scratch {
        let scratch = Scratch::new(name);
        for entry in std::fs::read_dir(fixture(layout)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, scratch.0.join(path.file_name().unwrap())).unwrap();
        }
        scratch
    }

    pub fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
