//! Sessions and the batcher from Rust: start, poll (never waiting), cancel, wait and results, on
//! sessions of their own and on sessions sharing one batcher.

mod common;

use std::sync::Arc;

use common::{greedy, load};
use gptrt::{Batcher, Error, GenerationConfig, Session, SessionState, StopReason};

fn poll_to_end(session: &Session) -> (String, Vec<u32>) {
    let (mut text, mut ids) = (String::new(), Vec::new());
    loop {
        let text_state = session.poll(&mut text);
        let ids_state = session.poll_tokens(&mut ids);
        if text_state != SessionState::Running && ids_state != SessionState::Running {
            assert_eq!(text_state, SessionState::Finished);
            return (text, ids);
        }
        std::thread::yield_now();
    }
}

#[test]
fn polled_sessions_give_what_generate_gives_alone_and_batched() {
    let model = Arc::new(load("single"));
    let prompts = ["Hello world", "Once upon a time", " leading space"];
    let batcher = Batcher::new(model.clone()).unwrap();
    for batched in [false, true] {
        let sessions: Vec<Session> = prompts
            .iter()
            .map(|_| match batched {
                true => Session::new_batched(&batcher),
                false => Session::new(model.clone()).unwrap(),
            })
            .collect();
        assert!(matches!(
            sessions[0].result(),
            Err(Error::InvalidState { .. })
        ));
        for (session, prompt) in sessions.iter().zip(prompts) {
            session.start(prompt, &greedy(8)).unwrap();
        }
        for (session, prompt) in sessions.iter().zip(prompts) {
            let alone = model.generate(prompt, &greedy(8)).unwrap();
            let (text, ids) = poll_to_end(session);
            let result = session.result().unwrap();
            assert_eq!(
                result.token_ids, alone.token_ids,
                "{prompt} (batched: {batched})"
            );
            assert_eq!(ids, alone.token_ids);
            assert_eq!(text, alone.text);
            assert_eq!(session.state(), SessionState::Finished);
        }
    }
    let stats = batcher.stats();
    assert_eq!(stats.generations, prompts.len() as u64);
    assert!(stats.forward_passes < stats.tokens, "{stats:?}");
}

#[test]
fn a_session_is_busy_while_it_runs_and_cancels() {
    let model = Arc::new(load("single"));
    let batcher = Batcher::new(model.clone()).unwrap();
    for session in [
        Session::new(model.clone()).unwrap(),
        Session::new_batched(&batcher),
    ] {
        let long = GenerationConfig {
            min_new_tokens: Some(60),
            ..greedy(60)
        };
        session.start("Hello", &long).unwrap();
        assert!(matches!(session.start("Hello", &long), Err(Error::Busy)));
        session.cancel();
        session.wait().unwrap();
        let result = session.result().unwrap();
        assert!(
            matches!(
                result.stop_reason,
                StopReason::Cancelled | StopReason::MaxNewTokens
            ),
            "{}",
            result.stop_reason
        );
    }
}

#[test]
fn batched_sessions_take_max_time_and_logprobs_per_generation() {
    let model = Arc::new(load("single"));
    let batcher = Batcher::new(model.clone()).unwrap();
    let (steady, hurried) = (
        Session::new_batched(&batcher),
        Session::new_batched(&batcher),
    );
    let alone = model.generate("Once upon a time", &greedy(10)).unwrap();
    steady.start("Once upon a time", &greedy(10)).unwrap();
    let config = GenerationConfig {
        max_time: Some(1e-9),
        logprobs: Some(2),
        ..greedy(10)
    };
    hurried.start("Once upon a time", &config).unwrap();
    hurried.wait().unwrap();
    steady.wait().unwrap();
    let hurried = hurried.result().unwrap();
    assert_eq!(hurried.stop_reason, StopReason::MaxTime);
    assert_eq!(hurried.token_ids, alone.token_ids[..1]);
    assert_eq!(hurried.logprobs.map(|l| l[0].top.len()), Some(2));
    let steady = steady.result().unwrap();
    assert_eq!(steady.token_ids, alone.token_ids, "the batch mate goes on");
    assert!(steady.logprobs.is_none());
    // What a batched generation still cannot do is refused when it starts, naming the option.
    let beams = GenerationConfig {
        num_beams: 2,
        ..greedy(4)
    };
    let refused = Session::new_batched(&batcher)
        .start("Hi", &beams)
        .unwrap_err();
    assert!(refused.to_string().contains("beam search"), "{refused}");
}
