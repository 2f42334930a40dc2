//! `config.json` bytes: parsed and bounds-checked, or refused with an error; never a panic, and a
//! config that passes is one the loader can size buffers from.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("config.json");
    if let Ok(config) = gptrt::ModelConfig::from_json_bytes(data, path) {
        assert!(config.n_layer <= gptrt::config::MAX_LAYERS);
        assert!(config.vocab_size <= gptrt::config::MAX_VOCAB);
        assert!(config.n_head > 0 && config.n_embd.is_multiple_of(config.n_head));
        assert!((config.eos_token_id as usize) < config.vocab_size);
        let _ = config.head_dim();
    }
});
