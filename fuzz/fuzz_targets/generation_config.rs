//! `generation_config.json` bytes: refused, or accepted and round-tripped (parse -> JSON -> parse
//! gives the same config, and the second JSON is the first).
#![no_main]
use libfuzzer_sys::fuzz_target;

use gptrt::GenerationConfig;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("generation_config.json");
    let Ok(config) = GenerationConfig::from_json_bytes(data, path) else {
        return;
    };
    let _ = config.validate();
    let _ = config.unsupported_fields();
    let _ = config.new_token_budget(data.len());
    let json = serde_json::to_vec(&config).expect("a valid config serialises");
    let again = GenerationConfig::from_json_bytes(&json, path).unwrap_or_else(|e| {
        panic!(
            "written config does not parse back: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(config, again);
    assert_eq!(json, serde_json::to_vec(&again).unwrap());
});
