//! Load a GPT-2 export, stream a continuation to stdout, print the speed.
//!
//! cargo run --release -p gptrt --example generate -- [MODEL_DIR] [PROMPT]

use std::io::Write;

use gptrt::{GenerationConfig, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "models/fixtures/tiny-random-gpt2/single".to_string());
    let prompt = args
        .next()
        .unwrap_or_else(|| "Once upon a time".to_string());

    let model = Model::load(&dir)?;
    let config = GenerationConfig {
        max_new_tokens: Some(32),
        ..model.generation_config().clone()
    };
    print!("{prompt}");
    let out = model.generate_with(&prompt, &config, |event| {
        print!("{}", event.text);
        std::io::stdout().flush().is_ok()
    })?;
    println!();
    eprintln!(
        "{} tokens, {:.1} tok/s, stopped by {}, {} on {}",
        out.token_ids.len(),
        out.stats.decode_tokens_per_second(),
        out.stop_reason,
        model.layout(),
        model.provider()
    );
    Ok(())
}
