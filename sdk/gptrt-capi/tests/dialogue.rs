//! tests/c/dialogue_test.c, compiled with `-Wall -Wextra -Werror -pedantic` and linked
//! dynamically and statically: a multi-turn NPC dialogue from C (persona forked into NPCs, turns
//! polled that run only their new tokens and equal one pass over the transcript, save to a buffer
//! and restore with and without the KV cache, damaged states refused, batched sessions).

mod common;

use common::*;

#[test]
fn c_dialogue_program_passes_dynamic_and_static() {
    for link in [Link::Dynamic, Link::Static] {
        let exe = build("tests/c/dialogue_test.c", Lang::C, link);
        let model = tiny("single");
        let stdout = run_ok(&exe, &[model.to_str().unwrap()]);
        let last = stdout.lines().last().unwrap_or_default();
        assert!(last.ends_with(" passed, 0 failed"), "{stdout}");
        let passed: usize = last.split(' ').next().unwrap().parse().unwrap();
        assert!(passed > 60, "{stdout}");
    }
}

#[test]
fn cpp_wrapper_dialogue_methods_pass() {
    let exe = build(
        "tests/c/dialogue_wrapper_test.cpp",
        Lang::Cxx,
        Link::Dynamic,
    );
    let model = tiny("single");
    let stdout = run_ok(&exe, &[model.to_str().unwrap()]);
    assert!(stdout.trim_end().ends_with(" passed, 0 failed"), "{stdout}");
}
