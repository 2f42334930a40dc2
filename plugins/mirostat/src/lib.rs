//! A gptrt sampler plugin written in Rust against the safe authoring API.
//!
//! - `org.gptrt.mirostat-v2`: Mirostat 2.0 (Basu, Ramachandran, Keskar, Varshney, "Mirostat: A
//!   Neural Text Decoding Algorithm that Directly Controls Perplexity", ICLR 2021, Algorithm 2):
//!   keep the tokens whose surprise `-log2 p` is below `mu`, sample among them, then move `mu`
//!   towards the target surprise `tau`: `mu -= eta * (surprise - tau)`. It is a selector: it
//!   chooses the token. Config: `{"tau": 5.0, "eta": 0.1, "seed": 0}`.
//!
//! The multiple-choice task head that lived here is `plugins/choice`.

use gptrt_plugin_api::{
    export_plugins, CandidatesMut, Context, GptrtSamplerStage, Host, SamplerPlugin,
    GPTRT_SAMPLER_STAGE_SELECTOR,
};
use serde_json::{json, Value};

/// Mirostat 2.0 state.
pub struct Mirostat {
    tau: f32,
    eta: f32,
    mu: f32,
    seed: u64,
    state: u64,
}

fn number(config: &Value, key: &str, default: f64) -> Result<f64, String> {
    match config.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("`{key}` must be a finite number")),
    }
}

fn parse_config(config_json: &str) -> Result<Value, String> {
    if config_json.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(config_json).map_err(|e| format!("config is not JSON: {e}"))
}

impl Mirostat {
    /// SplitMix64: enough for a plugin's own draws, and the same everywhere.
    fn next_unit(&mut self) -> f32 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
}

impl SamplerPlugin for Mirostat {
    const ID: &'static str = "org.gptrt.mirostat-v2";
    const NAME: &'static str = "Mirostat 2.0";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str = "Targets a constant surprise (perplexity) by truncating tokens with -log2 p > mu (Basu et al., ICLR 2021)";
    const STAGE: GptrtSamplerStage = GPTRT_SAMPLER_STAGE_SELECTOR;

    fn create(_host: Host, config_json: &str) -> Result<Self, String> {
        let config = parse_config(config_json)?;
        let tau = number(&config, "tau", 5.0)? as f32;
        let eta = number(&config, "eta", 0.1)? as f32;
        let seed = number(&config, "seed", 0.0)? as u64;
        if tau <= 0.0 || eta <= 0.0 {
            return Err("`tau` and `eta` must be > 0".to_string());
        }
        Ok(Mirostat {
            tau,
            eta,
            mu: 2.0 * tau,
            seed,
            state: seed,
        })
    }

    fn apply(
        &mut self,
        candidates: &mut CandidatesMut<'_>,
        _context: &Context<'_>,
    ) -> Result<(), String> {
        candidates.sort();
        candidates.softmax();
        let mu = self.mu;
        // Keep the tokens whose surprise is below mu (at least the best one).
        let keep = candidates
            .as_mut_slice()
            .iter()
            .take_while(|c| -c.p.log2() <= mu)
            .count()
            .max(1);
        candidates.truncate(keep);
        candidates.softmax();
        let u = self.next_unit();
        let items = candidates.as_mut_slice();
        let mut cumulative = 0.0f32;
        let mut chosen = items.len() - 1;
        for (i, c) in items.iter().enumerate() {
            cumulative += c.p;
            if u < cumulative {
                chosen = i;
                break;
            }
        }
        let surprise = -items[chosen].p.log2();
        self.mu -= self.eta * (surprise - self.tau);
        candidates.select(chosen);
        Ok(())
    }

    fn reset(&mut self) {
        self.mu = 2.0 * self.tau;
        self.state = self.seed;
    }
}

export_plugins!(samplers: [Mirostat], task_heads: []);
