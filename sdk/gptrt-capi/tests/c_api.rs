//! The C and C++ programs of the repository, compiled against the committed headers with
//! `-Wall -Wextra -Werror -pedantic` (C11 and C++17), linked both dynamically (`libgptrt.so`) and
//! statically (`libgptrt.a`), run, and checked: the token ids they print equal the reference
//! (`models/fixtures/tiny-random-gpt2/reference.json`, the same ids the Rust API gives), and their
//! own checks of every bad call pass.
//!
//! Needs gcc and g++. The libraries are built first with `cargo build -p gptrt-capi` (same profile
//! as this test): the crate has no rlib (its lib name would collide with the SDK's), so cargo does
//! not build it for integration tests on its own.

use serde_json::Value;

mod common;

use common::*;

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
