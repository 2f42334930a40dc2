//! Test fixture: misbehaving Rust plugins. The macro's panic boundary must turn the panic into a
//! status, and the host must turn that into an error naming the plugin.

use gptrt_plugin_api::{export_plugins, CandidatesMut, Context, Host, SamplerPlugin};

/// Panics on its third token.
pub struct Panicking {
    calls: usize,
}

impl SamplerPlugin for Panicking {
    const ID: &'static str = "org.gptrt.test.panicking";
    const NAME: &'static str = "Panics on the third token";
    const VERSION: &'static str = "0.0.1";

    fn create(_host: Host, _config_json: &str) -> Result<Self, String> {
        Ok(Panicking { calls: 0 })
    }

    fn apply(
        &mut self,
        _candidates: &mut CandidatesMut<'_>,
        _context: &Context<'_>,
    ) -> Result<(), String> {
        self.calls += 1;
        if self.calls == 3 {
            panic!("deliberate panic on call {}", self.calls);
        }
        Ok(())
    }
}

/// Refuses every config.
pub struct Refusing;

impl SamplerPlugin for Refusing {
    const ID: &'static str = "org.gptrt.test.refusing";
    const NAME: &'static str = "Refuses its config";
    const VERSION: &'static str = "0.0.1";

    fn create(_host: Host, config_json: &str) -> Result<Self, String> {
        Err(format!("config {config_json:?} is not acceptable"))
    }

    fn apply(
        &mut self,
        _candidates: &mut CandidatesMut<'_>,
        _context: &Context<'_>,
    ) -> Result<(), String> {
        Ok(())
    }
}

export_plugins!(samplers: [Panicking, Refusing], task_heads: []);
