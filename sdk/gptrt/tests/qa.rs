//! Question answering: the extractive span is the candidate with the highest likelihood (scored
//! from one shared prompt cache, equal to scoring each alone), its offsets are characters, and
//! generative answers are greedy lines.

mod common;

use gptrt::tasks::{QaOptions, QA_TEMPLATE};

#[test]
fn the_extracted_span_is_the_most_likely_candidate_with_character_offsets() {
    let model = common::load("hidden");
    let context = "Zoë moved to Zürich, in 1999.";
    let question = "Where did Zoë move?";
    let options = QaOptions {
        max_span_words: 2,
        ..QaOptions::default()
    };
    let got = model.extract_answer(context, question, &options).unwrap();
    let chars: Vec<char> = context.chars().collect();
    let sliced: String = chars[got.start..got.end].iter().collect();
    assert_eq!(sliced, got.answer);

    // Every candidate scored alone, as the documented continuation of the documented prompt.
    let prompt = QA_TEMPLATE
        .replace("{context}", context)
        .replace("{question}", question);
    let mut prefix = vec![50256];
    prefix.extend(model.tokenizer().encode(&prompt).unwrap());
    let candidates = [
        "Zoë",
        "Zoë moved",
        "moved",
        "moved to",
        "to",
        "to Zürich,",
        "to Zürich",
        "Zürich,",
        "Zürich",
        "Zürich, in",
        "in",
        "in 1999.",
        "in 1999",
        "1999.",
        "1999",
    ];
    assert_eq!(got.candidates, candidates.len());
    let scores: Vec<f64> = candidates
        .iter()
        .map(|span| {
            let ids = model.tokenizer().encode(&format!(" {span}\n")).unwrap();
            model.score(&prefix, &ids).unwrap()
        })
        .collect();
    let best = (0..scores.len()).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
    assert_eq!(got.answer, candidates[best]);
    let total: f64 = scores.iter().map(|s| (s - scores[best]).exp()).sum();
    assert!((got.confidence - 1.0 / total).abs() < 1e-4, "{got:?}");
}

#[test]
fn a_generated_answer_is_the_greedy_line_with_its_probability() {
    let model = common::load("hidden");
    let (context, question) = ("The sky is blue.", "What colour is the sky?");
    let got = model
        .answer(context, question, &QaOptions::default())
        .unwrap();
    let prompt = QA_TEMPLATE
        .replace("{context}", context)
        .replace("{question}", question);
    let config = gptrt::GenerationConfig {
        max_new_tokens: Some(24),
        ..gptrt::GenerationConfig::default()
    };
    let free = model.generate(&prompt, &config).unwrap();
    // The answer is the greedy continuation's first line; its confidence the probability of the
    // tokens before the line break.
    let line = free.text.split('\n').next().unwrap();
    assert_eq!(got.answer, line.trim());
    let tokenizer = model.tokenizer();
    let answer_tokens: Vec<u32> = free
        .token_ids
        .iter()
        .copied()
        .take_while(|&id| !tokenizer.decode(&[id], true).unwrap().contains('\n'))
        .collect();
    let prompt_ids = tokenizer.encode(&prompt).unwrap();
    let expected = model.score(&prompt_ids, &answer_tokens).unwrap().exp();
    assert!(
        (got.confidence - expected).abs() < 1e-4 * expected.max(1e-12) + 1e-9,
        "{got:?} vs {expected}"
    );
    assert_eq!(
        got.in_context,
        !got.answer.is_empty() && context.contains(&got.answer)
    );
}

#[test]
fn an_empty_context_or_question_is_refused_by_name() {
    let model = common::load("hidden");
    let options = QaOptions::default();
    let err = model
        .extract_answer(" ", "Why?", &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("the context is empty"), "{err}");
    let err = model
        .answer("Some text.", "", &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("the question is empty"), "{err}");
}
