//! What the C API tests share: building the libraries and the C/C++ programs, running them, the
//! reference ids.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

pub fn tiny(layout: &str) -> PathBuf {
    repo().join("models/fixtures/tiny-random-gpt2").join(layout)
}

/// `target/<profile>`: where cargo puts `libgptrt.so` and `libgptrt.a` for this profile.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/c_api-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// Build `libgptrt.so` and `libgptrt.a` once per test run.
pub fn libraries() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = profile_dir();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut command = Command::new(cargo);
        command
            .args(["build", "-p", "gptrt-capi"])
            .current_dir(repo());
        if dir.file_name().is_some_and(|name| name == "release") {
            command.arg("--release");
        }
        let output = command.output().expect("running cargo build -p gptrt-capi");
        assert!(
            output.status.success(),
            "cargo build -p gptrt-capi failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        for file in ["libgptrt.so", "libgptrt.a"] {
            assert!(dir.join(file).is_file(), "{} was not built", file);
        }
        dir
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lang {
    C,
    Cxx,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Link {
    Dynamic,
    Static,
}

/// Compile and link one program once per test run (tests run in parallel and share programs);
/// returns the executable.
pub fn build(source: &str, lang: Lang, link: Link) -> PathBuf {
    static BUILT: Mutex<Vec<(String, Lang, Link, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((.., exe)) = built
        .iter()
        .find(|(s, l, k, _)| s == source && *l == lang && *k == link)
    {
        return exe.clone();
    }
    let exe = compile(source, lang, link);
    built.push((source.to_string(), lang, link, exe.clone()));
    exe
}

pub fn compile(source: &str, lang: Lang, link: Link) -> PathBuf {
    let libs = libraries();
    let out_dir = libs.join("capi-tests");
    std::fs::create_dir_all(&out_dir).expect("output folder");
    let stem = Path::new(source)
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("source name");
    let exe = out_dir.join(format!(
        "{stem}-{}-{}",
        match lang {
            Lang::C => "c",
            Lang::Cxx => "cxx",
        },
        match link {
            Link::Dynamic => "dynamic",
            Link::Static => "static",
        }
    ));
    let (compiler, standard) = match lang {
        Lang::C => ("gcc", "-std=c11"),
        Lang::Cxx => ("g++", "-std=c++17"),
    };
    let mut command = Command::new(compiler);
    command.current_dir(repo()).arg(standard);
    if lang == Lang::Cxx && source.ends_with(".c") {
        command.args(["-x", "c++"]); // the C header and C programs compiled as C++
    }
    command
        .args([
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-pthread",
            "-Iinclude",
        ])
        .arg(source);
    if lang == Lang::Cxx && source.ends_with(".c") {
        command.args(["-x", "none"]);
    }
    command.arg("-o").arg(&exe);
    match link {
        Link::Dynamic => {
            command
                .arg(format!("-L{}", libs.display()))
                .arg("-lgptrt")
                .arg(format!("-Wl,-rpath,{}", libs.display()));
        }
        Link::Static => {
            command
                .arg(libs.join("libgptrt.a"))
                .args(["-lpthread", "-ldl", "-lm"]);
        }
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {compiler} (needed by the C API tests): {e}"));
    assert!(
        output.status.success(),
        "{compiler} {source} ({link:?}) failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    if link == Link::Dynamic {
        assert!(
            needed_libraries(&exe).contains("libgptrt.so"),
            "{} is not dynamically linked to libgptrt.so",
            exe.display()
        );
    } else {
        assert!(
            !needed_libraries(&exe).contains("libgptrt.so"),
            "{} should not need libgptrt.so",
            exe.display()
        );
    }
    exe
}

/// The `NEEDED` entries of an executable (its dynamic section), as text.
pub fn needed_libraries(exe: &Path) -> String {
    Command::new("readelf")
        .arg("-d")
        .arg(exe)
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

pub fn run(exe: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(exe);
    command.current_dir(repo()).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()))
}

pub fn run_ok(exe: &Path, args: &[&str]) -> String {
    let output = run(exe, args, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        exe.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

pub struct Case {
    pub prompt: String,
    pub greedy_ids: Vec<u32>,
}

pub fn reference() -> (usize, Vec<Case>) {
    let path = repo().join("models/fixtures/tiny-random-gpt2/reference.json");
    let text = std::fs::read_to_string(&path).expect("reference.json");
    let json: Value = serde_json::from_str(&text).expect("reference.json parses");
    let max_new = json["max_new_tokens"].as_u64().expect("max_new_tokens") as usize;
    let cases = json["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| Case {
            prompt: case["prompt"].as_str().expect("prompt").to_string(),
            greedy_ids: case["greedy_ids"]
                .as_array()
                .expect("greedy_ids")
                .iter()
                .map(|id| id.as_u64().expect("id") as u32)
                .collect(),
        })
        .collect();
    (max_new, cases)
}

/// Every `label[i]: ids` line of a program's output.
pub fn ids_lines(stdout: &str, label: &str) -> Vec<(usize, Vec<u32>)> {
    let prefix = format!("{label}[");
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|rest| {
            let (index, ids) = rest.split_once("]:").expect("label[i]: ids");
            let ids = ids
                .split_whitespace()
                .map(|id| id.parse().expect("token id"))
                .collect();
            (index.parse().expect("index"), ids)
        })
        .collect()
}

/// Run a test program over every reference prompt and check every labelled line.
pub fn check_program(exe: &Path, labels: &[(&str, usize)]) {
    let (max_new, cases) = reference();
    let max_new = max_new.to_string();
    let model = tiny("single");
    let mut args = vec![model.to_str().expect("UTF-8 path"), max_new.as_str()];
    args.extend(cases.iter().map(|case| case.prompt.as_str()));
    let stdout = run_ok(exe, &args);
    assert!(
        stdout
            .lines()
            .any(|line| line.ends_with(" passed, 0 failed")),
        "{}: its own checks failed:\n{stdout}",
        exe.display()
    );
    for &(label, expected_lines) in labels {
        let lines = ids_lines(&stdout, label);
        assert_eq!(lines.len(), expected_lines, "{label} lines in:\n{stdout}");
        for (index, ids) in lines {
            let case = &cases[index % cases.len()];
            assert_eq!(
                ids,
                case.greedy_ids,
                "{} {label}[{index}] ({:?}) differs from the reference",
                exe.display(),
                case.prompt
            );
        }
    }
}

/// The labelled id lines tests/c/capi_test.c prints for `count` reference prompts.
pub fn capi_test_labels(count: usize) -> [(&'static str, usize); 4] {
    [
        ("generate", count),
        ("poll", count),
        ("batched", count),
        ("thread", 8),
    ]
}

/// A workspace cdylib (a shipped plugin) at `file` under `target/<profile>`, built by cargo first
/// (nothing to do when it is fresh, so a changed plugin is never tested stale).
pub fn plugin_library(package: &str, file: &str) -> PathBuf {
    let dir = profile_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command.args(["build", "-p", package]).current_dir(repo());
    if dir.file_name().is_some_and(|name| name == "release") {
        command.arg("--release");
    }
    assert!(
        command.status().expect("cargo build").success(),
        "building {package}"
    );
    let path = dir.join(file);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}
