//! The C and C++ programs of the repository, compiled against the committed headers with
//! `-Wall -Wextra -Werror -pedantic` (C11 and C++17), linked both dynamically (`libgptrt.so`) and
//! statically (`libgptrt.a`), run, and checked: the token ids they print equal the reference
//! (`models/fixtures/tiny-random-gpt2/reference.json`, the same ids the Rust API gives), and their
//! own checks of every bad call pass.
//!
//! Needs gcc and g++. The libraries are built first with `cargo build -p gptrt-capi` (same profile
//! as this test): the crate has no rlib (its lib name would collide with the SDK's), so cargo does
//! not build it for integration tests on its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn tiny(layout: &str) -> PathBuf {
    repo().join("models/fixtures/tiny-random-gpt2").join(layout)
}

/// `target/<profile>`: where cargo puts `libgptrt.so` and `libgptrt.a` for this profile.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/c_api-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// Build `libgptrt.so` and `libgptrt.a` once per test run.
fn libraries() -> &'static PathBuf {
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
enum Lang {
    C,
    Cxx,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Link {
    Dynamic,
    Static,
}

/// Compile and link one program once per test run (tests run in parallel and share programs);
/// returns the executable.
fn build(source: &str, lang: Lang, link: Link) -> PathBuf {
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

fn compile(source: &str, lang: Lang, link: Link) -> PathBuf {
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
fn needed_libraries(exe: &Path) -> String {
    Command::new("readelf")
        .arg("-d")
        .arg(exe)
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

fn run(exe: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(exe);
    command.current_dir(repo()).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()))
}

fn run_ok(exe: &Path, args: &[&str]) -> String {
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

struct Case {
    prompt: String,
    greedy_ids: Vec<u32>,
}

fn reference() -> (usize, Vec<Case>) {
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
fn ids_lines(stdout: &str, label: &str) -> Vec<(usize, Vec<u32>)> {
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
fn check_program(exe: &Path, labels: &[(&str, usize)]) {
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
fn capi_test_labels(count: usize) -> [(&'static str, usize); 4] {
    [
        ("generate", count),
        ("poll", count),
        ("batched", count),
        ("thread", 8),
    ]
}

#[test]
fn c_program_gives_the_reference_ids_and_survives_every_bad_call_dynamic() {
    let exe = build("tests/c/capi_test.c", Lang::C, Link::Dynamic);
    let count = reference().1.len();
    check_program(&exe, &capi_test_labels(count));
}

#[test]
fn c_program_gives_the_reference_ids_and_survives_every_bad_call_static() {
    let exe = build("tests/c/capi_test.c", Lang::C, Link::Static);
    let count = reference().1.len();
    check_program(&exe, &capi_test_labels(count));
}

#[test]
fn cpp_wrapper_gives_the_reference_ids_dynamic_and_static() {
    let count = reference().1.len();
    for link in [Link::Dynamic, Link::Static] {
        let exe = build("tests/c/wrapper_test.cpp", Lang::Cxx, link);
        check_program(
            &exe,
            &[
                ("cpp_generate", count),
                ("cpp_poll", count),
                ("cpp_batched", count),
            ],
        );
    }
}

#[test]
fn header_included_twice_compiles_as_c_and_as_cpp() {
    for lang in [Lang::C, Lang::Cxx] {
        let exe = build("tests/c/header_twice.c", lang, Link::Dynamic);
        let stdout = run_ok(&exe, &[]);
        assert!(
            stdout.starts_with(&format!(
                "{} GPTRT_ERROR_NULL_POINTER",
                env!("CARGO_PKG_VERSION")
            )),
            "{stdout}"
        );
    }
}

/// The examples print `ids: ...` after streaming: equal to the reference on every layout.
#[test]
fn c_and_cpp_examples_give_the_reference_ids_on_every_layout() {
    let (max_new, cases) = reference();
    let max_new = max_new.to_string();
    let c_dynamic = build("examples/c/generate.c", Lang::C, Link::Dynamic);
    let c_static = build("examples/c/generate.c", Lang::C, Link::Static);
    let cpp = build("examples/cpp/generate.cpp", Lang::Cxx, Link::Dynamic);
    // The C example on every layout; the static build and the C++ example on one.
    let mut runs = Vec::new();
    for layout in ["single", "merged", "split", "nopast"] {
        for case in cases.iter().take(2) {
            runs.push((&c_dynamic, layout, case));
        }
    }
    runs.push((&c_static, "single", &cases[1]));
    runs.push((&cpp, "single", &cases[1]));
    for (exe, layout, case) in runs {
        let model = tiny(layout);
        let stdout = run_ok(
            exe,
            &[model.to_str().expect("UTF-8"), &case.prompt, &max_new],
        );
        let ids: Vec<u32> = stdout
            .lines()
            .find_map(|line| line.strip_prefix("ids:"))
            .expect("an ids: line")
            .split_whitespace()
            .map(|id| id.parse().expect("id"))
            .collect();
        assert_eq!(
            ids,
            case.greedy_ids,
            "{} on {layout}, {:?}",
            exe.display(),
            case.prompt
        );
        // The streamed text is printed after the prompt, before the ids.
        assert!(stdout.starts_with(&case.prompt), "{stdout}");
    }
}

#[test]
fn game_loop_runs_eight_npcs_from_one_thread() {
    let exe = build("examples/game-loop/game_loop.c", Lang::C, Link::Dynamic);
    let model = tiny("single");
    for batched in [false, true] {
        let mut args = vec![model.to_str().expect("UTF-8"), "2", "12"];
        if batched {
            args.push("batched");
        }
        let stdout = run_ok(&exe, &args);
        let npcs = stdout.lines().filter(|l| l.starts_with("--- NPC ")).count();
        assert_eq!(npcs, 8, "{stdout}");
        assert!(
            stdout.contains("[cancelled]"),
            "the stranger is cancelled:\n{stdout}"
        );
        let summary = stdout
            .lines()
            .find(|line| line.starts_with("time inside gptrt calls per frame: worst "))
            .unwrap_or_else(|| panic!("no timing line:\n{stdout}"));
        // Timing never decides a test: only that it was measured.
        assert!(summary.contains(" ms"), "{summary}");
        let stats = stdout
            .lines()
            .find_map(|line| line.strip_prefix("batcher: "));
        assert_eq!(stats.is_some(), batched, "{stdout}");
        if let Some(stats) = stats {
            let stats: Value = serde_json::from_str(stats).expect("batcher stats are JSON");
            // 8 NPCs x 2 lines (the stranger's cut short), and the NPCs that talk at the same
            // time share forward passes.
            assert!(stats["generations"].as_u64() >= Some(15), "{stats}");
            assert!(stats["max_rows"].as_u64() >= Some(2), "{stats}");
            assert!(
                stats["forward_passes"].as_u64() < stats["tokens"].as_u64(),
                "{stats}"
            );
        }
    }
}

#[test]
fn a_missing_onnx_runtime_is_a_status_with_the_places_searched() {
    let exe = build("examples/c/generate.c", Lang::C, Link::Dynamic);
    let output = run(
        &exe,
        &[tiny("single").to_str().expect("UTF-8"), "Hello", "4"],
        &[("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so.1.31.1")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("gptrt_runtime_new failed: GPTRT_ERROR_RUNTIME_LIBRARY")
            && stderr.contains("/nonexistent/libonnxruntime.so.1.31.1")
            && stderr.contains("scripts/setup.sh"),
        "{stderr}"
    );
}

/// A workspace cdylib (a shipped plugin), built for this profile on first use.
fn plugin_library(package: &str, file: &str) -> PathBuf {
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

#[test]
fn plugins_and_task_heads_are_reachable_from_c() {
    let rust = plugin_library("gptrt-plugin-mirostat", "libgptrt_plugin_mirostat.so");
    let choice = plugin_library("gptrt-plugin-choice", "libgptrt_plugin_choice.so");
    let c = plugin_library("gptrt-plugin-xtc-c", "plugins/libgptrt_xtc.so");
    let exe = build("tests/c/plugin_test.c", Lang::C, Link::Dynamic);
    let model = tiny("single");
    let stdout = run_ok(
        &exe,
        &[
            model.to_str().unwrap(),
            rust.to_str().unwrap(),
            choice.to_str().unwrap(),
            c.to_str().unwrap(),
        ],
    );
    let line = |label: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{label}: ")))
            .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"))
            .to_string()
    };
    for id in ["org.gptrt.mirostat-v2", "org.gptrt.choice", "org.gptrt.xtc"] {
        assert!(line("plugins").contains(id), "{stdout}");
    }
    let (_, cases) = reference();
    let expected: Vec<String> = cases[0].greedy_ids[..8]
        .iter()
        .map(u32::to_string)
        .collect();
    assert_eq!(line("plain"), expected.join(" "), "greedy ids through C");
    assert_eq!(
        line("cleared"),
        expected.join(" "),
        "clearing the samplers restores greedy"
    );
    assert_ne!(
        line("xtc").split(' ').next(),
        expected.first().map(String::as_str),
        "XTC removed the top choice"
    );
    let task: serde_json::Value = serde_json::from_str(&line("task")).unwrap();
    assert!(
        task["choice"].is_u64() && task["scores"].as_array().unwrap().len() == 2,
        "{task}"
    );
    assert!(
        line("bad-id").starts_with("GPTRT_ERROR_PLUGIN")
            && line("bad-id").contains("org.example.missing"),
        "{stdout}"
    );
    assert!(
        line("bad-load").starts_with("GPTRT_ERROR_IO")
            || line("bad-load").starts_with("GPTRT_ERROR_PLUGIN"),
        "{stdout}"
    );
    assert!(
        line("bad-input").starts_with("GPTRT_ERROR_PLUGIN") && line("bad-input").contains("prompt"),
        "{stdout}"
    );
    assert_eq!(line("null-host"), "GPTRT_ERROR_NULL_POINTER");
}

/// tests/plugins/misbehaving.c with `-DFAULT_BLOCKS`: a sampler whose `apply` notes the call in
/// `calls` and then waits for a file that never appears.
fn stuck_plugin(calls: &Path) -> PathBuf {
    let out = std::env::temp_dir().join(format!("gptrt-capi-stuck-{}.so", std::process::id()));
    let never = std::env::temp_dir().join(format!("gptrt-capi-never-{}", std::process::id()));
    let status = Command::new("gcc")
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-fPIC",
            "-shared",
            "-DFAULT_BLOCKS",
        ])
        .arg(format!("-DCALLS_FILE=\"{}\"", calls.display()))
        .arg(format!("-DRELEASE_FILE=\"{}\"", never.display()))
        .arg("-I")
        .arg(repo().join("include"))
        .arg(repo().join("tests/plugins/misbehaving.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("gcc");
    assert!(status.success(), "compiling the stuck plugin");
    out
}

#[test]
fn freeing_a_session_whose_plugin_is_stuck_returns() {
    let calls = std::env::temp_dir().join(format!("gptrt-capi-calls-{}", std::process::id()));
    let _ = std::fs::remove_file(&calls);
    let plugin = stuck_plugin(&calls);
    let exe = build("tests/c/stuck_plugin_test.c", Lang::C, Link::Dynamic);
    let mut child = Command::new(&exe)
        .current_dir(repo())
        .arg(tiny("single"))
        .arg(&plugin)
        .arg(&calls)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running stuck_plugin_test");
    // A watchdog, not a speed check: the old gptrt_session_free never returned.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().expect("waiting").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "stuck_plugin_test still running after 30 s (gptrt_session_free hangs?); stdout:\n{}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["stuck in apply", "session freed", "done"]
    );
    let _ = std::fs::remove_file(&calls);
}

/// The model info of tests/c/batch_invariance.c's `info:` line.
fn batch_info(stdout: &str) -> Value {
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    let info = stdout
        .lines()
        .find_map(|line| line.strip_prefix("info: "))
        .expect("an info line");
    serde_json::from_str(info).expect("model info is JSON")
}

/// The committed demo model (int8 weights, activations quantized per row) is batch-invariant: its
/// batched sessions compute what they compute alone (sdk/gptrt/tests/batch_invariance.rs checks the
/// tokens).
#[test]
fn model_info_says_the_demo_model_is_batch_invariant() {
    let exe = build("tests/c/batch_invariance.c", Lang::C, Link::Dynamic);
    let demo = repo().join("models/demo");
    let info = batch_info(&run_ok(&exe, &[demo.to_str().expect("UTF-8 path")]));
    assert_eq!(info["batch_invariant"], true, "{info}");
    assert_eq!(info["batch_dependent_ops"], serde_json::json!([]));
    assert!(
        info["batching"]
            .as_str()
            .is_some_and(|s| s.starts_with("batch-invariant")),
        "{info}"
    );
}

/// A dynamic int8 graph (the tiny fixture with a DynamicQuantizeLinear added, as onnxruntime's
/// quantize_dynamic writes one before each MatMul) is reported as not batch-invariant.
#[test]
fn model_info_says_when_a_graph_is_not_batch_invariant() {
    let exe = build("tests/c/batch_invariance.c", Lang::C, Link::Dynamic);
    let dir = std::env::temp_dir().join(format!("gptrt-capi-dynamic-int8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let single = tiny("single");
    let graph = std::fs::read(single.join("model.onnx")).unwrap();
    // A second `graph` field: protobuf merges it into the first, adding its nodes.
    let field = |number: u8, bytes: &[u8]| [&[number << 3 | 2, bytes.len() as u8], bytes].concat();
    let one = [
        field(1, b"value_float"),
        vec![2 << 3 | 5],
        1f32.to_le_bytes().to_vec(),
        vec![0xa0, 1, 1],
    ]
    .concat();
    let constant = [field(2, b"dq_x"), field(4, b"Constant"), field(5, &one)].concat();
    let quantize = [
        field(1, b"dq_x"),
        field(2, b"dq_y"),
        field(2, b"dq_s"),
        field(2, b"dq_z"),
        field(4, b"DynamicQuantizeLinear"),
    ]
    .concat();
    let nodes = [field(1, &constant), field(1, &quantize)].concat();
    std::fs::write(dir.join("model.onnx"), [graph, field(7, &nodes)].concat()).unwrap();
    std::fs::copy(single.join("config.json"), dir.join("config.json")).unwrap();
    std::fs::copy(tiny("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let stdout = run_ok(&exe, &[dir.to_str().expect("UTF-8 path")]);
    std::fs::remove_dir_all(&dir).unwrap();
    let info = batch_info(&stdout);
    assert_eq!(info["batch_invariant"], false, "{info}");
    assert_eq!(
        info["batch_dependent_ops"],
        serde_json::json!(["DynamicQuantizeLinear"])
    );
    assert!(
        info["batching"]
            .as_str()
            .is_some_and(|s| s.starts_with("NOT batch-invariant")),
        "{info}"
    );
}
