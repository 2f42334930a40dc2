//! tests/c/dialogue_plugin_test.c: the dialogue task head (plugins/dialogue) from C, through
//! task-head instances: turns keep their dialogue, a saved state continues exactly in a new
//! instance (after the first is freed), a reply streams through
//! `gptrt_task_head_call_streaming` (and stops when the callback says so), and a bad action is
//! refused by name.

use serde_json::Value;

mod common;

use common::*;

#[test]
fn the_dialogue_task_head_keeps_and_restores_its_dialogue_from_c() {
    let library = plugin_library("gptrt-plugin-dialogue", "libgptrt_plugin_dialogue.so");
    let exe = build("tests/c/dialogue_plugin_test.c", Lang::C, Link::Dynamic);
    let model = tiny("single");
    let stdout = run_ok(&exe, &[model.to_str().unwrap(), library.to_str().unwrap()]);
    let line = |label: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{label}: ")))
            .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"))
            .to_string()
    };
    let json = |label: &str| -> Value { serde_json::from_str(&line(label)).unwrap() };
    assert_eq!(json("turn1")["turn"], 1);
    assert_eq!(json("turn2")["turn"], 2);
    assert!(
        json("turn2")["context_tokens"].as_u64() > json("turn1")["context_tokens"].as_u64(),
        "{stdout}"
    );
    assert_eq!(json("restored")["turns"], 2, "{stdout}");
    assert_eq!(json("restored3"), json("original3"), "{stdout}");
    // pieces4: COUNT TEXT (newlines escaped): the whole reply, in more than one piece.
    let pieces = |label: &str| -> (usize, String) {
        let text = line(label);
        let (count, text) = text.split_once(' ').unwrap();
        (count.parse().unwrap(), text.replace("\\n", "\n"))
    };
    let (count, text) = pieces("pieces4");
    assert!(count > 1, "{stdout}");
    assert_eq!(text.trim_end(), json("streamed4")["reply"], "{stdout}");
    // Its callback calling the same instance again is refused, and the reply goes on.
    assert_eq!(line("reentered"), "GPTRT_ERROR_BUSY", "{stdout}");
    let (count, text) = pieces("pieces5");
    assert_eq!(count, 1, "{stdout}");
    assert_eq!(text.trim_end(), json("streamed5")["reply"], "{stdout}");
    assert_eq!(json("streamed5")["stop_reason"], "callback", "{stdout}");
    let bad = line("bad-action");
    assert!(
        bad.starts_with("GPTRT_ERROR") && bad.contains("\"shout\""),
        "{stdout}"
    );
}
