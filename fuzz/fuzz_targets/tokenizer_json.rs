//! `tokenizer.json` bytes: a tokenizer or a tokenizer error, never a panic (the `tokenizers`
//! crate panics on some malformed files; the SDK must refuse them first). A tokenizer that loads
//! encodes and decodes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tokenizer) = gptrt::Tokenizer::from_bytes(data) {
        if let Ok(ids) = tokenizer.encode("Hello, world! <|endoftext|> é") {
            let _ = tokenizer.decode(&ids, false);
            let _ = tokenizer.decode(&ids, true);
        }
        let _ = tokenizer.decode(&[0, 1, 2, u32::MAX], false);
    }
});
