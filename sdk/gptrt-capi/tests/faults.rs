//! Fault injection through the C API: every damaged folder of `tests/faults/damage.rs` loaded (and
//! generated from, when it loads) by `tests/c/fault_injection.c` in one process, which must
//! survive them all: each load a clean status naming the problem, or a documented acceptance.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
#[path = "../../../tests/faults/damage.rs"]
mod damage;

use common::*;
use damage::Expect;

/// Far above the few seconds the run takes; only a hang reaches it.
const HANG: Duration = Duration::from_secs(300);

#[test]
fn one_process_survives_every_damaged_model_folder() {
    let root = std::env::temp_dir().join(format!("gptrt-faults-capi-{}", std::process::id()));
    let cases = damage::make_all(&root);
    assert!(cases.len() >= 30, "{} damaged folders", cases.len());
    let exe = build("tests/c/fault_injection.c", Lang::C, Link::Dynamic);
    let mut child = Command::new(&exe)
        .current_dir(repo())
        .args(cases.iter().map(|c| &c.dir))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fault_injection runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for fault_injection") {
            break status;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            panic!("fault_injection hangs (killed after {HANG:?})");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    damage::remove(&root);
    assert!(
        status.success(),
        "fault_injection died ({status}):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("survived {}", cases.len())),
        "{stdout}\n{stderr}"
    );

    let mut problems = Vec::new();
    for case in &cases {
        let dir = case.dir.display().to_string();
        let line = |what: &str| {
            stdout
                .lines()
                .find(|l| l.starts_with(&format!("{dir}\t{what} ")))
                .map(|l| l.split('\t').skip(1).collect::<Vec<_>>().join("\t"))
        };
        let load = line("load").unwrap_or_default();
        let loaded = load.starts_with("load GPTRT_OK");
        if load.contains("PANIC") || load.contains("INTERNAL") {
            problems.push(format!("{}: {load}", case.name));
        }
        match case.expect {
            Expect::Refused(needles) if loaded || !needles.iter().all(|n| load.contains(n)) => {
                problems.push(format!(
                    "{}: expected an error naming {needles:?}, got {load:?}",
                    case.name
                ));
            }
            Expect::Accepted if !loaded => {
                problems.push(format!("{}: expected to load, got {load:?}", case.name));
            }
            _ => {}
        }
        if loaded {
            let generate = line("generate").unwrap_or_default();
            if generate.contains("PANIC") || generate.contains("INTERNAL") || generate.is_empty() {
                problems.push(format!("{}: {generate:?}", case.name));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} folders:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

/// Not a check of its own: makes the damaged folders under `$GPTRT_FAULTS_DIR` and lists them in
/// `$GPTRT_FAULTS_DIR/LIST` (`name<TAB>folder`, one a line), for `scripts/test-c.sh` to run
/// `tests/c/fault_injection.c` on them under valgrind. The folders stay; the script removes them.
#[test]
#[ignore = "a tool for scripts/test-c.sh (GPTRT_FAULTS_DIR)"]
fn make_damaged_folders_for_valgrind() {
    let root = std::path::PathBuf::from(
        std::env::var_os("GPTRT_FAULTS_DIR").expect("GPTRT_FAULTS_DIR names the folder to fill"),
    );
    let cases = damage::make_all(&root.join("cases"));
    let list: String = cases
        .iter()
        .map(|c| format!("{}\t{}\n", c.name, c.dir.display()))
        .collect();
    std::fs::write(root.join("LIST"), list).unwrap();
}
