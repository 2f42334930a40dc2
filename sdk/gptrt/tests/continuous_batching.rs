//! Continuous batching: sequences join a running batch and leave it between steps, and each one's
//! output equals running it alone.

mod common;

use common::{greedy, load, LAYOUTS};
use gptrt::Generator;

#[test]
fn sequences_join_and_leave_a_running_batch_with_unchanged_results() {
    let prompts = [
        "Hello world",
        "Once upon a time",
        " leading space",
        "日本語のテキスト",
        "line one\nline two\n",
    ];
    for (dir, _) in LAYOUTS {
        let model = load(dir);
        let ids: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| model.tokenizer().encode(p).unwrap())
            .collect();
        // Different budgets so rows finish at different steps.
        let budgets = [6usize, 14, 9, 12, 5];
        let alone: Vec<Vec<u32>> = ids
            .iter()
            .zip(budgets)
            .map(|(p, n)| {
                model
                    .generate_ids(vec![p.clone()], &greedy(n), &mut |_| true)
                    .unwrap()
                    .remove(0)
                    .token_ids
            })
            .collect();

        let mut generator =
            Generator::new(&model, vec![ids[0].clone()], &greedy(budgets[0])).unwrap();
        let mut streamed: std::collections::BTreeMap<usize, Vec<u32>> = Default::default();
        let mut on_token = |event: &gptrt::TokenEvent<'_>| {
            streamed.entry(event.row).or_default().push(event.token_id);
            true
        };
        let mut results = std::collections::BTreeMap::new();
        let mut ids_of = std::collections::BTreeMap::new();
        ids_of.insert(0usize, 0usize);
        for _ in 0..3 {
            generator.step(&mut on_token).unwrap();
        }
        // A shorter prompt joins a wider batch; a longer one widens it.
        let a = generator
            .join(ids[2].clone(), &greedy(budgets[2]), &mut on_token)
            .unwrap();
        ids_of.insert(a, 2);
        generator.step(&mut on_token).unwrap();
        let b = generator
            .join(ids[3].clone(), &greedy(budgets[3]), &mut on_token)
            .unwrap();
        ids_of.insert(b, 3);
        let mut joined_late = false;
        while !generator.is_empty() {
            generator.step(&mut on_token).unwrap();
            for (id, generation) in generator.retire().unwrap() {
                results.insert(id, generation);
            }
            if !joined_late && !results.is_empty() {
                let c = generator
                    .join(ids[1].clone(), &greedy(budgets[1]), &mut on_token)
                    .unwrap();
                ids_of.insert(c, 1);
                let d = generator
                    .join(ids[4].clone(), &greedy(budgets[4]), &mut on_token)
                    .unwrap();
                ids_of.insert(d, 4);
                joined_late = true;
            }
        }
        assert_eq!(results.len(), 5, "{dir}: every sequence finished");
        for (id, generation) in &results {
            let prompt = ids_of[id];
            assert_eq!(
                generation.token_ids, alone[prompt],
                "{dir}: prompt {prompt} (row {id})"
            );
            assert_eq!(generation.prompt_token_ids, ids[prompt]);
            assert_eq!(
                streamed[id], generation.token_ids,
                "{dir}: streamed ids of row {id}"
            );
        }
    }
}

#[test]
fn max_time_and_logprobs_are_per_row() {
    let model = load("single");
    let prompt = model.tokenizer().encode("Once upon a time").unwrap();
    let alone = model
        .generate_ids(vec![prompt.clone()], &greedy(10), &mut |_| true)
        .unwrap()
        .remove(0);
    // The batch's first row has a time limit no forward pass can meet.
    let hurried = gptrt::GenerationConfig {
        max_time: Some(1e-9),
        ..greedy(10)
    };
    let mut generator = Generator::new(&model, vec![prompt.clone()], &hurried).unwrap();
    generator.step(&mut |_| true).unwrap();
    // A row that joins it has no time limit and asks for the top 3 alternatives per token.
    let steady = gptrt::GenerationConfig {
        logprobs: Some(3),
        ..greedy(10)
    };
    let late = generator
        .join(prompt.clone(), &steady, &mut |_| true)
        .unwrap();
    let mut results = std::collections::BTreeMap::new();
    while !generator.is_empty() {
        generator.step(&mut |_| true).unwrap();
        results.extend(generator.retire().unwrap());
    }
    let first = &results[&0];
    assert_eq!(first.stop_reason, gptrt::StopReason::MaxTime);
    assert_eq!(
        first.token_ids,
        alone.token_ids[..1],
        "its first token, then out of time"
    );
    assert!(first.logprobs.is_none(), "logprobs only where asked for");
    let steady = &results[&late];
    assert_eq!(steady.token_ids, alone.token_ids, "the batch mate goes on");
    assert_eq!(steady.stop_reason, alone.stop_reason);
    let logprobs = steady.logprobs.as_ref().expect("logprobs asked for");
    assert_eq!(logprobs.len(), steady.token_ids.len(), "one per token");
    for (entry, &id) in logprobs.iter().zip(&steady.token_ids) {
        assert_eq!(entry.token_id, id);
        assert_eq!(entry.top.len(), 3);
    }
}
