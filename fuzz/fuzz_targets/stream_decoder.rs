//! The incremental detokenizer on arbitrary token ids (GPT-2's tokenizer): never a panic, an id
//! outside the vocabulary is an error, and the text streamed equals the whole decode.
#![no_main]
use libfuzzer_sys::fuzz_target;

use gptrt::StreamDecoder;

fuzz_target!(|data: &[u8]| {
    let tokenizer = gptrt_fuzz::tokenizer();
    let vocab = tokenizer.vocab_size() as u32;
    // Three bytes an id, so ids past the vocabulary come up too.
    let ids: Vec<u32> = data
        .chunks_exact(3)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], 0]) % (vocab + 64))
        .collect();
    let mut decoder = StreamDecoder::new();
    let mut streamed = String::new();
    let mut accepted = Vec::new();
    for &id in &ids {
        match decoder.push(tokenizer, id) {
            Ok(text) => {
                streamed.push_str(&text);
                accepted.push(id);
            }
            Err(_) => assert!(id >= vocab, "id {id} inside the vocabulary was refused"),
        }
    }
    streamed.push_str(&decoder.finish());
    let whole = tokenizer
        .decode(&accepted, true)
        .expect("ids in the vocabulary decode");
    assert_eq!(streamed, whole, "ids {accepted:?}");
});
