//! Fault injection through the command: `gptrt inspect` and `gptrt generate` on every damaged
//! folder of `tests/faults/damage.rs`, each run under a time limit: a clean error (exit 1, no
//! panic, the problem named) or a documented acceptance, never a crash or a hang.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
#[path = "../../../tests/faults/damage.rs"]
mod damage;

use damage::Expect;

/// Far above the second a run takes; only a hang reaches it.
const HANG: Duration = Duration::from_secs(120);

fn gptrt_with_limit(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gptrt"))
        .args(args)
        .env_remove("GPTRT_MODEL")
        .env_remove("ORT_DYLIB_PATH")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gptrt runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for gptrt") {
            break status;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            panic!("gptrt {args:?} hangs (killed after {HANG:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

#[test]
fn every_damaged_model_folder_is_a_clean_error_or_a_documented_acceptance() {
    let root = std::env::temp_dir().join(format!("gptrt-faults-cli-{}", std::process::id()));
    let cases = damage::make_all(&root);
    assert!(cases.len() >= 30, "{} damaged folders", cases.len());
    let mut problems = Vec::new();
    for case in &cases {
        let dir = case.dir.display().to_string();
        // `generate` loads the folder, then generates from what loads (`inspect` loads the same way).
        for args in [vec![
            "generate",
            "--model",
            &dir,
            "--prompt",
            "Once upon a time",
            "--max-new-tokens",
            "2",
        ]] {
            let output = gptrt_with_limit(&args);
            let stderr = common::stderr(&output);
            let code = output.status.code();
            let what = format!("{} ({})", case.name, args[0]);
            if code != Some(0) && code != Some(1) {
                problems.push(format!(
                    "{what}: exit {:?} (crash or panic): {stderr}",
                    output.status
                ));
                continue;
            }
            if stderr.contains("panicked") {
                problems.push(format!("{what}: {stderr}"));
            }
            match case.expect {
                Expect::Refused(needles)
                    if code == Some(0) || !needles.iter().all(|n| stderr.contains(n)) =>
                {
                    problems.push(format!(
                        "{what}: expected an error naming {needles:?}, got exit {code:?}: {stderr}"
                    ));
                }
                Expect::Accepted if stderr.contains(&dir) && stderr.contains("error") => {
                    problems.push(format!("{what}: expected to load: {stderr}"));
                }
                _ => {}
            }
        }
    }
    damage::remove(&root);
    assert!(
        problems.is_empty(),
        "{} problems over {} folders:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}
