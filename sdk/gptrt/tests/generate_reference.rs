//! `generate` with processors and beam search equals transformers' `generate`, token for token,
//! on every layout (fixture: models/fixtures/tiny-random-gpt2/generate_reference.json).

mod common;

use gptrt::GenerationConfig;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    prompt_ids: Vec<u32>,
    config: serde_json::Value,
    sequences: Vec<Vec<u32>>,
    sequence_scores: Option<Vec<f32>>,
}

fn fixture() -> Fixture {
    let text = std::fs::read_to_string(common::tiny().join("generate_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn processors_and_beam_search_equal_transformers_generate() {
    let fixture = fixture();
    assert!(
        fixture.cases.iter().any(|c| c.sequence_scores.is_some()),
        "beam cases present"
    );
    for (dir, _) in common::LAYOUTS {
        let model = common::load(dir);
        for case in &fixture.cases {
            let config: GenerationConfig = serde_json::from_value(case.config.clone()).unwrap();
            assert!(
                config.unsupported_fields().is_empty(),
                "{}: {:?}",
                case.name,
                config.unsupported_fields()
            );
            let pad = config.pad_token_id.unwrap_or(50256);
            let results = model
                .generate_ids(vec![case.prompt_ids.clone()], &config, &mut |_| true)
                .unwrap_or_else(|e| panic!("{dir}/{}: {e}", case.name));
            assert_eq!(
                results.len(),
                case.sequences.len(),
                "{dir}/{}: sequence count",
                case.name
            );
            for (i, (ours, theirs)) in results.iter().zip(&case.sequences).enumerate() {
                // transformers pads shorter beams with pad_token_id after their end token.
                let n = ours.token_ids.len();
                assert!(
                    n <= theirs.len(),
                    "{dir}/{} #{i}: {:?} vs {theirs:?}",
                    case.name,
                    ours.token_ids
                );
                assert_eq!(ours.token_ids, theirs[..n], "{dir}/{} #{i}", case.name);
                assert!(
                    theirs[n..].iter().all(|&t| t == pad),
                    "{dir}/{} #{i}: {:?} vs {theirs:?}",
                    case.name,
                    ours.token_ids
                );
                if let Some(scores) = &case.sequence_scores {
                    let score = ours.score.expect("beam results carry a score");
                    assert!(
                        (score - scores[i]).abs() < 1e-4 * scores[i].abs().max(1.0),
                        "{dir}/{} #{i}: score {score} vs {}",
                        case.name,
                        scores[i]
                    );
                }
            }
        }
    }
}
