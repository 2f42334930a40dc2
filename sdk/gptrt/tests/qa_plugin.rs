//! `plugins/qa` (org.gptrt.qa) through the host API gives the SDK's answers.

mod common;

use std::sync::Arc;

use gptrt::tasks::QaOptions;
use gptrt::PluginHost;
use serde_json::{json, Value};

fn host() -> PluginHost {
    let mut host = PluginHost::new();
    host.load(&common::plugin_library("gptrt-plugin-qa"))
        .unwrap();
    host
}

#[test]
fn the_qa_plugin_answers_as_the_sdk_does_both_ways() {
    let model = Arc::new(common::load("hidden"));
    let mut head = host()
        .task_head("org.gptrt.qa", None, model.clone())
        .unwrap();
    let (context, question) = ("Zoë moved to Zürich, in 1999.", "Where did Zoë move?");
    let options = QaOptions::default();

    let run = |head: &mut gptrt::TaskHead, input: Value| -> Value {
        serde_json::from_str(&head.run(&input.to_string()).unwrap()).unwrap()
    };
    let got = run(
        &mut head,
        json!({"context": context, "question": question, "extractive": true}),
    );
    let sdk = model.extract_answer(context, question, &options).unwrap();
    assert_eq!(got["answer"], sdk.answer.as_str());
    assert_eq!(got["start"], sdk.start);
    assert_eq!(got["end"], sdk.end);
    assert_eq!(got["candidates"], sdk.candidates);
    assert!((got["confidence"].as_f64().unwrap() - sdk.confidence).abs() < 1e-6);

    let got = run(&mut head, json!({"context": context, "question": question}));
    let sdk = model.answer(context, question, &options).unwrap();
    assert_eq!(got["answer"], sdk.answer.as_str());
    assert_eq!(got["in_context"], sdk.in_context);

    let err = head
        .run(&json!({"context": " ", "question": question}).to_string())
        .unwrap_err()
        .to_string();
    assert!(err.contains("the context is empty"), "{err}");
}
