//! Scoring several continuations from one shared context gives what scoring each one alone gives,
//! on every layout.

mod common;

#[test]
fn shared_context_scores_equal_scoring_each_continuation_alone() {
    for (dir, _) in common::LAYOUTS {
        let model = common::load(dir);
        let tokenizer = model.tokenizer();
        let mut context = vec![50256];
        context.extend(tokenizer.encode("The weather today is").unwrap());
        let continuations: Vec<Vec<u32>> = [" sunny", " cold and wet, with rain later", " ?", ""]
            .iter()
            .map(|text| tokenizer.encode(text).unwrap())
            .collect();
        assert!(continuations[1].len() > 3 && continuations[2].len() == 1);
        let shared = model.score_continuations(&context, &continuations).unwrap();
        for (continuation, score) in continuations.iter().zip(&shared) {
            let alone = if continuation.is_empty() {
                0.0
            } else {
                model.score(&context, continuation).unwrap()
            };
            assert!(
                (score - alone).abs() < 1e-3 * alone.abs().max(1.0),
                "{dir}: {continuation:?}: shared {score} vs alone {alone}"
            );
        }
    }
}

#[test]
fn many_continuations_run_in_passes_that_fit_the_logits_budget_and_too_many_are_refused() {
    let model = common::load("single");
    let context = vec![50256, 464, 3290];
    // 10 tokens x 50257 logits a row: about 133 rows fit one pass, so 150 need two.
    let continuations: Vec<Vec<u32>> = (0..150u32).map(|i| (i..i + 10).collect()).collect();
    let shared = model.score_continuations(&context, &continuations).unwrap();
    for (continuation, score) in continuations.iter().zip(&shared) {
        let alone = model.score(&context, continuation).unwrap();
        assert!(
            (score - alone).abs() < 1e-3 * alone.abs().max(1.0),
            "{continuation:?}: {score} vs {alone}"
        );
    }
    let too_many = vec![vec![1u32]; gptrt::generate::MAX_ROWS + 1];
    let error = model
        .score_continuations(&context, &too_many)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("continuations") && error.contains("1024"),
        "{error}"
    );
}
