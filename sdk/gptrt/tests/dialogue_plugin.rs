//! `plugins/dialogue` (org.gptrt.dialogue) through the SDK's task-head instances, over the host
//! capability `org.gptrt.sessions`: a turn runs only its new tokens, a saved dialogue continues
//! exactly in a new instance, and bad input is refused by name.

mod common;

use std::sync::Arc;

use gptrt::{Model, PluginHost};
use serde_json::{json, Value};

fn host() -> PluginHost {
    let mut host = PluginHost::new();
    host.load(&common::plugin_library("gptrt-plugin-dialogue"))
        .unwrap();
    host
}

fn tiny() -> Arc<Model> {
    Arc::new(Model::load(common::tiny().join("single")).unwrap())
}

fn demo() -> Arc<Model> {
    Arc::new(Model::load(common::repo().join("models/demo-dialogue")).unwrap())
}

fn run(head: &mut gptrt::TaskHead, input: Value) -> Value {
    serde_json::from_str(&head.run(&input.to_string()).unwrap()).unwrap()
}

const PERSONA: &str = "A friendly assistant who answers briefly.";

#[test]
fn each_turn_runs_only_its_new_tokens_and_replies_end_at_the_user_tag() {
    let model = demo();
    let host = host();
    let config = json!({"persona": PERSONA, "max_new_tokens": 40, "seed": 7});
    let mut head = host
        .task_head(
            "org.gptrt.dialogue",
            Some(&config.to_string()),
            model.clone(),
        )
        .unwrap();
    let tokenizer = model.tokenizer();
    let mut context = tokenizer.encode(PERSONA).unwrap().len();
    let mut stopped_at_tag = 0;
    let lines = [
        "Hello! How are you today?",
        "What is your favourite colour?",
        "Tell me about the weather.",
        "Thanks, goodbye!",
    ];
    for (turn, line) in lines.iter().enumerate() {
        let appended = tokenizer
            .encode(&format!("\nUser: {line}\nBot:"))
            .unwrap()
            .len();
        let out = run(&mut head, json!({ "say": line }));
        let reply = out["reply"].as_str().unwrap();
        assert!(!reply.contains("User:"), "turn {turn}: {out}");
        assert_eq!(out["turn"], turn + 1);
        assert_eq!(out["dropped_turns"], 0);
        let processed = out["prompt_tokens_processed"].as_u64().unwrap() as usize;
        if turn == 0 {
            // The persona ran when the instance was made: the first turn runs only itself.
            assert_eq!(processed, appended, "{out}");
        } else {
            // Only the new turn's tokens (and at most the last reply token) run again.
            assert!(
                (appended..=appended + 1).contains(&processed),
                "turn {turn}: {processed} tokens ran for {appended} new ones: {out}"
            );
        }
        let now = out["context_tokens"].as_u64().unwrap() as usize;
        let reply_tokens = now - context - appended;
        assert!(reply_tokens <= 40, "turn {turn}: {out}");
        context = now;
        // The sequence keeps the reply and not the user tag that ended it.
        let state = run(&mut head, json!({"save": true}))["state"]
            .as_str()
            .unwrap()
            .to_string();
        let saved = gptrt::Session::from_saved(model.clone(), &decode(&state)).unwrap();
        let transcript = tokenizer.decode(&saved.tokens().unwrap(), false).unwrap();
        assert_eq!(saved.context_len().unwrap(), now);
        assert!(
            transcript.trim_end().ends_with(reply),
            "turn {turn}: {transcript:?} does not end with the reply {reply:?}"
        );
        if out["stop_reason"] == "stop_string" {
            stopped_at_tag += 1;
        }
    }
    assert!(stopped_at_tag > 0, "no reply ended at the user tag");
}

#[test]
fn a_saved_dialogue_continues_exactly_in_a_new_instance() {
    let model = tiny();
    let host = host();
    let config = json!({"persona": "Hi.", "max_new_tokens": 6, "do_sample": false}).to_string();
    let mut first = host
        .task_head("org.gptrt.dialogue", Some(&config), model.clone())
        .unwrap();
    run(&mut first, json!({"say": "one"}));
    run(&mut first, json!({"say": "two"}));
    let save = |head: &mut gptrt::TaskHead, fp16: bool| {
        run(head, json!({"save": true, "fp16_kv": fp16}))["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let states = [save(&mut first, false), save(&mut first, true)];
    let original = run(&mut first, json!({"say": "three"}));
    let appended = model
        .tokenizer()
        .encode("\nUser: three\nBot:")
        .unwrap()
        .len();
    for (state, fp16) in states.iter().zip([false, true]) {
        let mut second = host
            .task_head("org.gptrt.dialogue", Some(&config), model.clone())
            .unwrap();
        let restored = run(&mut second, json!({ "restore": state }));
        assert_eq!(restored["turns"], 2, "{restored}");
        let got = run(&mut second, json!({"say": "three"}));
        // The restored turn ran only its own tokens, not the whole dialogue again.
        let processed = got["prompt_tokens_processed"].as_u64().unwrap() as usize;
        assert!(processed <= appended + 1, "fp16_kv {fp16}: {got}");
        if !fp16 {
            // Exact: the fp32 cache gives what the original instance gave.
            assert_eq!(got, original);
        } else {
            assert_eq!(got["turn"], 3);
            assert_eq!(got["dropped_turns"], 0);
        }
    }
    let reset = run(&mut first, json!({"reset": true}));
    assert_eq!(
        reset["context_tokens"],
        model.tokenizer().encode("Hi.").unwrap().len()
    );
}

/// 30 greedy turns on the tiny model (128 positions), with the config's `overflow_keep` when
/// given; the instance stays usable.
fn thirty_turns(
    host: &PluginHost,
    model: &Arc<Model>,
    keep: Option<f64>,
) -> (gptrt::TaskHead, Vec<Value>) {
    let mut config = json!({"persona": "The persona.", "max_new_tokens": 8, "do_sample": false});
    if let Some(keep) = keep {
        config["overflow_keep"] = json!(keep);
    }
    let mut head = host
        .task_head(
            "org.gptrt.dialogue",
            Some(&config.to_string()),
            model.clone(),
        )
        .unwrap();
    let outs = (0..30)
        .map(|turn| {
            run(
                &mut head,
                json!({"say": format!("turn number {turn} with some words")}),
            )
        })
        .collect();
    (head, outs)
}

fn count(outs: &[Value], field: &str) -> u64 {
    outs.iter().map(|out| out[field].as_u64().unwrap()).sum()
}

#[test]
fn the_oldest_turns_drop_and_the_persona_stays_when_the_window_fills() {
    let model = tiny();
    let host = host();
    let (mut head, outs) = thirty_turns(&host, &model, None);
    for out in &outs {
        assert!(out["context_tokens"].as_u64().unwrap() <= 128, "{out}");
    }
    let overflows = outs.iter().filter(|out| out["dropped_turns"] != 0).count();
    assert!(overflows > 0, "128 tokens cannot hold 30 turns");
    // An overflow drops down to half the room, so the turns after it run only themselves until
    // the window is full again.
    let first = outs
        .iter()
        .position(|out| out["dropped_turns"] != 0)
        .unwrap();
    let after = &outs[first + 1];
    assert_eq!(after["dropped_turns"], 0, "{after}");
    let appended = model
        .tokenizer()
        .encode(&format!(
            "\nUser: turn number {} with some words\nBot:",
            first + 1
        ))
        .unwrap()
        .len();
    let processed = after["prompt_tokens_processed"].as_u64().unwrap() as usize;
    assert!((appended..=appended + 1).contains(&processed), "{after}");
    // Dropping only what each turn needs (keep 1) overflows on every later turn and re-runs
    // nearly the whole window each time.
    let (_, tight) = thirty_turns(&host, &model, Some(1.0));
    let tight_overflows = tight.iter().filter(|out| out["dropped_turns"] != 0).count();
    assert!(
        overflows * 2 <= tight_overflows,
        "{overflows} vs {tight_overflows} overflows"
    );
    let (ran, tight_ran) = (
        count(&outs, "prompt_tokens_processed"),
        count(&tight, "prompt_tokens_processed"),
    );
    assert!(ran * 3 < tight_ran * 2, "{ran} vs {tight_ran} tokens run");
    let state = run(&mut head, json!({"save": true}))["state"]
        .as_str()
        .unwrap()
        .to_string();
    // The persona is still the sequence's start.
    let session = gptrt::Session::from_saved(model.clone(), &decode(&state)).unwrap();
    let persona = model.tokenizer().encode("The persona.").unwrap();
    assert_eq!(session.tokens().unwrap()[..persona.len()], persona[..]);
}

fn decode(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = alphabet.iter().position(|&a| a == c).unwrap() as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

#[test]
fn bad_configs_and_inputs_are_refused_by_name() {
    let model = tiny();
    let host = host();
    let long = "word ".repeat(200);
    let error = host
        .task_head(
            "org.gptrt.dialogue",
            Some(&json!({ "persona": long }).to_string()),
            model.clone(),
        )
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("\"persona\"") && error.contains("context window is 128"),
        "{error}"
    );
    let error = host
        .task_head(
            "org.gptrt.dialogue",
            Some(r#"{"turn_template": "{user_tag} no text"}"#),
            model.clone(),
        )
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("\"turn_template\""), "{error}");
    for keep in [json!(0), json!(1.5), json!("half")] {
        let error = host
            .task_head(
                "org.gptrt.dialogue",
                Some(&json!({ "overflow_keep": keep }).to_string()),
                model.clone(),
            )
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("\"overflow_keep\""), "{keep}: {error}");
    }

    let mut head = host
        .task_head(
            "org.gptrt.dialogue",
            Some(r#"{"persona": "Hi."}"#),
            model.clone(),
        )
        .unwrap();
    for (input, named) in [
        (json!({"shout": "hey"}), "\"shout\""),
        (json!({"say": 3}), "\"say\" must be a string"),
        (json!({"say": "a", "reset": true}), "exactly one action"),
        (json!({"restore": "!!!!"}), "base64"),
        (json!({"restore": "AAAA"}), "restore"),
        (json!({"say": long}), "context window"),
    ] {
        let error = head.run(&input.to_string()).unwrap_err().to_string();
        assert!(error.contains(named), "{input}: {error}");
    }
    // Still usable after the refusals.
    let out = run(&mut head, json!({"say": "hello"}));
    assert_eq!(out["turn"], 1, "{out}");

    // Another model's state is refused, and the dialogue it would replace goes on.
    let state = run(&mut head, json!({"save": true}))["state"].clone();
    let mut other = host
        .task_head("org.gptrt.dialogue", Some(r#"{"persona": "Hi."}"#), demo())
        .unwrap();
    let error = other
        .run(&json!({ "restore": state }).to_string())
        .unwrap_err()
        .to_string();
    assert!(error.contains("saved for another model"), "{error}");
    assert_eq!(run(&mut other, json!({"say": "hello"}))["turn"], 1);
}

#[test]
fn a_reply_streams_to_the_caller_as_it_is_made_and_the_caller_can_stop_it() {
    let model = tiny();
    let host = host();
    let config = json!({"persona": "Hi.", "max_new_tokens": 12, "do_sample": false});
    let mut head = host
        .task_head("org.gptrt.dialogue", Some(&config.to_string()), model)
        .unwrap();
    let mut pieces = Vec::new();
    let out = head
        .run_streaming(&json!({"say": "hello there"}).to_string(), &mut |text| {
            pieces.push(text.to_string());
            true
        })
        .unwrap();
    let out: Value = serde_json::from_str(&out).unwrap();
    assert!(pieces.len() > 1, "{pieces:?}");
    assert_eq!(pieces.concat().trim_end(), out["reply"], "{pieces:?}");

    // Stopped after the first piece: the reply is that piece, and the dialogue goes on.
    let mut calls = 0;
    let out = head
        .run_streaming(&json!({"say": "and again"}).to_string(), &mut |text| {
            calls += 1;
            assert!(!text.is_empty());
            false
        })
        .unwrap();
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(calls, 1, "{out}");
    assert_eq!(out["turn"], 2, "{out}");
    assert_eq!(out["stop_reason"], "callback", "{out}");
    assert_eq!(run(&mut head, json!({"say": "still there?"}))["turn"], 3);

    // A panic in the callback stops the reply, reaches the caller once the plugin has returned,
    // and leaves the instance usable, still streaming.
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        head.run_streaming(&json!({"say": "boom"}).to_string(), &mut |_| {
            panic!("from the callback")
        })
    }));
    let message = panicked.unwrap_err();
    assert_eq!(message.downcast_ref::<&str>(), Some(&"from the callback"));
    let mut after = 0;
    let out = head
        .run_streaming(&json!({"say": "and now?"}).to_string(), &mut |_| {
            after += 1;
            true
        })
        .unwrap();
    assert!(after > 0, "{out}");
}
