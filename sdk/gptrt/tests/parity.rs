//! Every export layout gives transformers' greedy ids and first-step logits.

mod common;

use common::{greedy, load, reference, reference_logits, LAYOUTS};
use gptrt::StopReason;

#[test]
fn every_layout_is_detected_from_its_graph() {
    for (dir, layout) in LAYOUTS {
        assert_eq!(load(dir).layout(), layout, "{dir}");
    }
}

#[test]
fn only_the_fused_exports_limit_the_lm_head_and_share_the_kv_buffer() {
    for (dir, _) in LAYOUTS {
        let model = load(dir);
        let limited = model
            .graphs()
            .iter()
            .any(|(_, signature)| signature.has_logits_to_keep);
        assert_eq!(limited, dir.starts_with("fused"), "{dir}");
        let shared = model
            .graphs()
            .iter()
            .any(|(_, signature)| signature.shares_kv_buffer);
        assert_eq!(shared, dir.starts_with("fused-shared"), "{dir}");
    }
}

#[test]
fn every_position_logprobs_agree_across_layouts() {
    // token_logprobs needs the logits of every position, so it must not feed logits_to_keep
    let reference = reference();
    let case = reference
        .cases
        .iter()
        .max_by_key(|c| c.prompt_ids.len())
        .unwrap();
    let (context, continuation) = case.prompt_ids.split_at(1);
    let expected = load("single")
        .token_logprobs(context, continuation)
        .unwrap();
    assert_eq!(expected.len(), continuation.len());
    for (dir, _) in LAYOUTS {
        let actual = load(dir).token_logprobs(context, continuation).unwrap();
        assert_eq!(actual.len(), expected.len(), "{dir}");
        for (a, e) in actual.iter().zip(&expected) {
            assert!((a - e).abs() < 1e-4, "{dir}: {actual:?} vs {expected:?}");
        }
    }
}

#[test]
fn greedy_ids_equal_transformers_for_every_layout_and_prompt() {
    let reference = reference();
    assert!(reference.cases.len() >= 7);
    for (dir, _) in LAYOUTS {
        let model = load(dir);
        for case in &reference.cases {
            let out = model
                .generate(&case.prompt, &greedy(reference.max_new_tokens))
                .unwrap_or_else(|e| panic!("{dir}/{}: {e}", case.name));
            assert_eq!(
                out.prompt_token_ids, case.prompt_ids,
                "{dir}/{}: prompt ids",
                case.name
            );
            assert_eq!(
                out.token_ids, case.greedy_ids,
                "{dir}/{}: greedy ids",
                case.name
            );
            let expected_stop = if case.greedy_ids.last() == Some(&50256) {
                StopReason::Eos
            } else {
                StopReason::MaxNewTokens
            };
            assert_eq!(out.stop_reason, expected_stop, "{dir}/{}", case.name);
        }
    }
}

#[test]
fn greedy_output_is_not_degenerate() {
    // A fixture whose greedy output repeats one token would make the parity test weak.
    let reference = reference();
    for case in &reference.cases {
        let distinct: std::collections::HashSet<_> = case.greedy_ids.iter().collect();
        assert!(distinct.len() >= 3, "{}: {:?}", case.name, case.greedy_ids);
    }
}

#[test]
fn first_step_logits_equal_transformers_within_1e_4() {
    let reference = reference();
    for (dir, _) in LAYOUTS {
        let model = load(dir);
        for case in &reference.cases {
            let expected = reference_logits(case);
            let actual = model.next_token_logits(&case.prompt_ids).unwrap();
            assert_eq!(actual.len(), expected.len());
            let worst = actual
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{dir}/{}: max |diff| {worst}", case.name);
        }
    }
}

#[test]
fn a_left_padded_batch_equals_each_prompt_alone() {
    let reference = reference();
    let prompts: Vec<&str> = reference.cases.iter().map(|c| c.prompt.as_str()).collect();
    let config = greedy(reference.max_new_tokens);
    for (dir, _) in LAYOUTS {
        let model = load(dir);
        let batch = model.generate_batch(&prompts, &config).unwrap();
        assert_eq!(batch.len(), prompts.len());
        for (case, out) in reference.cases.iter().zip(&batch) {
            let alone = model.generate(&case.prompt, &config).unwrap();
            assert_eq!(out.token_ids, alone.token_ids, "{dir}/{}", case.name);
            assert_eq!(out.text, alone.text, "{dir}/{}", case.name);
            assert_eq!(out.stop_reason, alone.stop_reason, "{dir}/{}", case.name);
        }
    }
}

#[test]
fn streamed_text_concatenates_to_the_final_text() {
    let model = load("single");
    for case in reference().cases {
        let mut streamed = String::new();
        let mut ids = Vec::new();
        let out = model
            .generate_with(&case.prompt, &greedy(24), |event| {
                streamed.push_str(event.text);
                ids.push(event.token_id);
                true
            })
            .unwrap();
        assert_eq!(streamed, out.text, "{}", case.name);
        assert_eq!(ids, out.token_ids, "{}", case.name);
        assert_eq!(
            out.text,
            model.tokenizer().decode(&out.token_ids, true).unwrap()
        );
    }
}

#[test]
fn the_callback_stops_generation() {
    let model = load("single");
    let mut seen = 0;
    let out = model
        .generate_with("Once upon a time", &greedy(20), |_| {
            seen += 1;
            seen < 3
        })
        .unwrap();
    assert_eq!(out.token_ids.len(), 3);
    assert_eq!(out.stop_reason, StopReason::Callback);
}

#[test]
fn empty_prompt_starts_from_endoftext() {
    let model = load("merged");
    let out = model.generate("", &greedy(5)).unwrap();
    assert_eq!(out.prompt_token_ids, vec![50256]);
    let same = model
        .generate_ids(vec![vec![50256]], &greedy(5), &mut |_| true)
        .unwrap();
    assert_eq!(out.token_ids, same[0].token_ids);
}

#[test]
fn max_new_tokens_bounds_the_output() {
    let model = load("split");
    let reference = reference();
    // A case that does not stop at EOS early.
    let case = reference
        .cases
        .iter()
        .find(|c| c.greedy_ids.len() == reference.max_new_tokens)
        .unwrap();
    let out = model.generate(&case.prompt, &greedy(4)).unwrap();
    assert_eq!(out.token_ids, case.greedy_ids[..4]);
    assert_eq!(out.stop_reason, StopReason::MaxNewTokens);
}

#[test]
fn generation_stops_when_the_context_window_is_full() {
    let model = load("single");
    let n_positions = model.config().n_positions;
    let prompt = vec![464u32; n_positions - 3];
    let out = model
        .generate_ids(vec![prompt], &greedy(10), &mut |_| true)
        .unwrap()
        .remove(0);
    assert_eq!(out.token_ids.len(), 3);
    assert_eq!(out.stop_reason, StopReason::ContextFull);
}

#[test]
fn the_shared_kv_buffer_grows_to_the_whole_window_and_agrees() {
    // fused-shared starts with room for 64 positions and must grow (copying) on the way to 128
    let plain = load("fused");
    let shared = load("fused-shared");
    let prompts = vec![vec![464u32, 3290, 257], vec![15496, 995]];
    let config = greedy(plain.config().n_positions);
    let expected = plain
        .generate_ids(prompts.clone(), &config, &mut |_| true)
        .unwrap();
    let actual = shared
        .generate_ids(prompts, &config, &mut |_| true)
        .unwrap();
    assert_eq!(actual.len(), 2);
    for (a, e) in actual.iter().zip(&expected) {
        assert!(a.token_ids.len() > 100, "{}", a.token_ids.len());
        assert_eq!(a.token_ids, e.token_ids);
        assert_eq!(a.stop_reason, e.stop_reason);
    }
}
