//! Concurrency stress: 16 threads share one model (and, batched, one batcher), each running
//! sessions with mixed configs (greedy, seeded sampling, beams, stop strings) and dialogues (turns
//! on a session's kept sequence, some continued on a fork), one in five cancelled. Every generation that is not cancelled equals the same generation run alone on one
//! thread, batched and unbatched; a watchdog fails the test instead of letting a deadlock hang CI.
//! The tiny fp32 fixture keeps it fast (its graph is batch-invariant, so batched == alone holds
//! exactly).

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use gptrt::{Batcher, GenerationConfig, Model, Session, SessionState, StopStrings};

const THREADS: usize = 16;
const PER_THREAD: usize = 10;
/// Far above what the test takes even on a loaded 2-core machine; only a deadlock reaches it.
const WATCHDOG: Duration = Duration::from_secs(600);

fn configs() -> Vec<GenerationConfig> {
    let base = GenerationConfig {
        max_new_tokens: Some(8),
        ..Default::default()
    };
    vec![
        base.clone(),
        GenerationConfig {
            do_sample: true,
            seed: Some(7),
            top_k: 40,
            temperature: 0.9,
            ..base.clone()
        },
        GenerationConfig {
            do_sample: true,
            seed: Some(1234),
            top_p: 0.8,
            repetition_penalty: 1.3,
            ..base.clone()
        },
        GenerationConfig {
            num_beams: 3,
            ..base.clone()
        },
        GenerationConfig {
            stop_strings: Some(StopStrings::Many(vec!["e".into(), ",".into()])),
            max_new_tokens: Some(12),
            ..base.clone()
        },
    ]
}

const PROMPTS: [&str; 4] = [
    "Once upon a time",
    "Hello",
    " 日本語",
    "The quick brown fox",
];

/// One unit of work for a thread.
#[derive(Debug)]
enum Job {
    /// A generation from a prompt ([`Session::start`]).
    Generate(&'static str, GenerationConfig),
    /// A dialogue ([`dialogue`]).
    Dialogue(Dialogue),
}

/// Turns on a session's sequence: each text appended, then a turn; with `fork`, the last turn
/// runs on a fork of the session (which joins the same batcher).
#[derive(Debug)]
struct Dialogue {
    turns: &'static [&'static str],
    config: GenerationConfig,
    fork: bool,
}

/// Every (prompt, config) pair (beam search only where the session allows it: not batched), and
/// dialogues greedy and sampled (from the session's own random state), with and without a fork,
/// and with a stop string. (Batched, 21 jobs: one in five cancelled reaches every kind.)
fn jobs(batched: bool) -> Vec<Job> {
    let mut jobs: Vec<Job> = PROMPTS
        .iter()
        .flat_map(|p| configs().into_iter().map(move |c| (*p, c)))
        .filter(|(_, c)| !(batched && c.num_beams > 1))
        .map(|(p, c)| Job::Generate(p, c))
        .collect();
    let turns: [&[&str]; 2] = [
        &[
            "User: Hello\nBot:",
            "\nUser: and then?\nBot:",
            "\nUser: bye\nBot:",
        ],
        &["Once upon a time", " there was", " 日本語"],
    ];
    for (i, turns) in turns.into_iter().enumerate() {
        for fork in [false, true] {
            let config = GenerationConfig {
                max_new_tokens: Some(5),
                do_sample: i == 1,
                top_k: 40,
                ..Default::default()
            };
            jobs.push(Job::Dialogue(Dialogue {
                turns,
                config,
                fork,
            }));
        }
    }
    // A stop string ends some turns early (a batched row that stops while its batch goes on).
    jobs.push(Job::Dialogue(Dialogue {
        turns: turns[0],
        config: GenerationConfig {
            max_new_tokens: Some(8),
            stop_strings: Some(StopStrings::Many(vec!["e".into()])),
            ..Default::default()
        },
        fork: false,
    }));
    jobs
}

/// Poll a started generation or turn to its end; the streamed text equals the result's.
fn finish(session: &Session, cancel: bool) -> Vec<u32> {
    if cancel {
        session.cancel();
    }
    let mut text = String::new();
    while session.poll(&mut text) == SessionState::Running {
        std::thread::yield_now();
    }
    session.wait().expect("wait");
    let generation = session.result().expect("result");
    if !cancel {
        assert_eq!(text, generation.text, "streamed text equals the final text");
    }
    generation.token_ids
}

/// Run a dialogue from an empty sequence and a fixed random state; the sequence it ends with
/// (the fork's, with a fork). A cancelled one stops after its first turn.
fn dialogue(session: &Session, job: &Dialogue, cancel: bool) -> Vec<u32> {
    session.reset().expect("reset");
    session.reseed(42).expect("reseed");
    let mut fork = None;
    for (i, text) in job.turns.iter().enumerate() {
        session.append_text(text).expect("append");
        if job.fork && i + 1 == job.turns.len() {
            fork = Some(session.fork().expect("fork"));
        }
        let on = fork.as_ref().unwrap_or(session);
        on.start_turn(&job.config).expect("start turn");
        finish(on, cancel);
        if cancel {
            return Vec::new();
        }
    }
    fork.as_ref().unwrap_or(session).tokens().expect("tokens")
}

fn run_job(session: &Session, job: &Job, cancel: bool) -> Vec<u32> {
    match job {
        Job::Generate(prompt, config) => run(session, prompt, config, cancel),
        Job::Dialogue(d) => dialogue(session, d, cancel),
    }
}

/// Start, then poll until finished (the poll API a game loop uses); the result's ids.
fn run(session: &Session, prompt: &str, config: &GenerationConfig, cancel: bool) -> Vec<u32> {
    session.start(prompt, config).expect("start");
    finish(session, cancel)
}

fn stress(model: Arc<Model>, batched: bool) -> (usize, usize) {
    let jobs = Arc::new(jobs(batched));
    let solo = Session::new(model.clone()).unwrap();
    let expected: Arc<Vec<Vec<u32>>> =
        Arc::new(jobs.iter().map(|job| run_job(&solo, job, false)).collect());
    let batcher = batched.then(|| Batcher::new(model.clone()).unwrap());
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (model, jobs, expected) = (model.clone(), jobs.clone(), expected.clone());
            let session = match &batcher {
                Some(b) => Session::new_batched(b),
                None => Session::new(model).unwrap(),
            };
            std::thread::spawn(move || {
                let mut compared = 0;
                for i in 0..PER_THREAD {
                    let n = t * PER_THREAD + i;
                    let job = &jobs[n % jobs.len()];
                    let cancel = n.is_multiple_of(5);
                    let ids = run_job(&session, job, cancel);
                    if !cancel {
                        assert_eq!(
                            ids,
                            expected[n % jobs.len()],
                            "thread {t}, {job:?} (batched: {batched})"
                        );
                        compared += 1;
                    }
                }
                compared
            })
        })
        .collect();
    let compared = threads
        .into_iter()
        .map(|h| h.join().expect("a stress thread failed"))
        .sum();
    (THREADS * PER_THREAD, compared)
}

#[test]
fn sixteen_threads_on_one_model_get_what_one_thread_gets() {
    let model = Arc::new(common::load("single"));
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let unbatched = stress(model.clone(), false);
        let batched = stress(model, true);
        let _ = done.send((unbatched, batched));
    });
    match result.recv_timeout(WATCHDOG) {
        Ok(((runs, compared), (batched_runs, batched_compared))) => {
            assert_eq!(compared, runs * 4 / 5);
            assert_eq!(batched_compared, batched_runs * 4 / 5);
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("deadlock: no result after {WATCHDOG:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the stress run failed (see above)"),
    }
}
