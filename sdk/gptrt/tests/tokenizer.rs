//! GPT-2 tokenizer: ids equal GPT-2's, both file formats load, streaming is UTF-8 safe.

mod common;

use gptrt::{StreamDecoder, Tokenizer};
use serde::Deserialize;

fn tokenizer() -> Tokenizer {
    Tokenizer::from_dir(&common::repo().join("models/gpt2-tokenizer")).expect("tokenizer loads")
}

#[test]
fn known_ids() {
    let tok = tokenizer();
    assert_eq!(tok.encode("Hello world").unwrap(), vec![15496, 995]);
    assert_eq!(
        tok.encode("Once upon a time").unwrap(),
        vec![7454, 2402, 257, 640]
    );
    assert_eq!(tok.encode("<|endoftext|>").unwrap(), vec![50256]);
    assert_eq!(tok.vocab_size(), 50257);
}

#[derive(Deserialize)]
struct TokenCase {
    text: String,
    ids: Vec<u32>,
}

fn hard_cases() -> Vec<TokenCase> {
    let text = std::fs::read_to_string(common::fixtures().join("tokenizer_cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn hard_strings_match_gpt2_and_round_trip() {
    let tok = tokenizer();
    let cases = hard_cases();
    assert!(cases.len() >= 20, "expected the full hard-string fixture");
    for case in cases {
        assert_eq!(
            tok.encode(&case.text).unwrap(),
            case.ids,
            "ids of {:?}",
            case.text
        );
        assert_eq!(
            tok.decode(&case.ids, false).unwrap(),
            case.text,
            "decode of {:?}",
            case.text
        );
    }
}

#[test]
fn vocab_and_merges_give_the_same_ids_as_tokenizer_json() {
    let dir = common::repo().join("models/gpt2-tokenizer");
    let from_bpe =
        Tokenizer::from_vocab_and_merges(&dir.join("vocab.json"), &dir.join("merges.txt")).unwrap();
    let from_json = tokenizer();
    for case in hard_cases() {
        assert_eq!(
            from_bpe.encode(&case.text).unwrap(),
            from_json.encode(&case.text).unwrap(),
            "{:?}",
            case.text
        );
    }
}

#[test]
fn decode_matches_the_tokenizers_crate() {
    let tok = tokenizer();
    for case in hard_cases() {
        let ours = tok.decode(&case.ids, true).unwrap();
        let theirs = tok.inner().decode(&case.ids, true).unwrap();
        assert_eq!(ours, theirs, "{:?}", case.text);
    }
}

#[test]
fn streaming_never_splits_a_character() {
    let tok = tokenizer();
    // The crab is three byte-level tokens: its bytes arrive across token boundaries.
    let ids = tok.encode("I love 🦀 and 日本語!").unwrap();
    assert!(ids.len() > 6);
    let mut decoder = StreamDecoder::new();
    let mut pieces = Vec::new();
    for &id in &ids {
        pieces.push(decoder.push(&tok, id).unwrap());
    }
    pieces.push(decoder.finish());
    assert!(
        pieces
            .iter()
            .all(|p| !p.contains(char::REPLACEMENT_CHARACTER)),
        "{pieces:?}"
    );
    assert!(
        pieces.iter().any(|p| p.is_empty()),
        "some token completes no character: {pieces:?}"
    );
    assert_eq!(pieces.concat(), "I love 🦀 and 日本語!");
}

#[test]
fn streaming_equals_lossy_decode_on_arbitrary_ids() {
    let tok = tokenizer();
    // Byte tokens that do not form valid UTF-8 in every order: the stream must still agree with a
    // whole-text lossy decode.
    let mut state = 0x2545_f491_u32;
    for _ in 0..200 {
        let ids: Vec<u32> = (0..12)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                if state.is_multiple_of(3) {
                    94 + state % 160
                } else {
                    state % 50257
                }
            })
            .collect();
        let mut decoder = StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &ids {
            streamed.push_str(&decoder.push(&tok, id).unwrap());
        }
        streamed.push_str(&decoder.finish());
        assert_eq!(streamed, tok.decode(&ids, true).unwrap(), "ids {ids:?}");
    }
}

#[test]
fn out_of_vocabulary_ids_are_errors() {
    let tok = tokenizer();
    let err = tok.decode(&[15496, 99999], false).unwrap_err();
    assert!(err.to_string().contains("99999"), "{err}");
}

#[test]
fn missing_tokenizer_files_are_named() {
    let dir = std::env::temp_dir().join(format!("gptrt-no-tokenizer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = Tokenizer::from_dir(&dir).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains("merges.txt"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
