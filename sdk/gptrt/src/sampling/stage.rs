//! Where a link joins a chain built from a generation config: the three stages of Hugging Face's
//! order (logits processors, warpers, one selector), so a ban runs before top-k/top-p can leave
//! only the banned token, and a Mirostat-like link replaces the draw instead of following it.

use std::fmt;
use std::str::FromStr;

/// A stage of the sampler chain, for links added to a chain (plugin samplers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SamplerStage {
    /// A logits processor (bans, biases, grammars): after the built-in processors, before
    /// temperature and the truncating warpers. A selection made here (a forced token) skips the
    /// warpers and the draw.
    Processor,
    /// A warper (like XTC): after temperature and the built-in warpers, just before the draw.
    /// Where a plugin built for ABI 1.0/1.1 goes.
    Warper,
    /// A selector (like Mirostat): replaces the built-in draw (greedy or seeded), so it must
    /// select a token itself.
    Selector,
}

impl SamplerStage {
    /// Every stage, in chain order.
    pub const ALL: [SamplerStage; 3] = [
        SamplerStage::Processor,
        SamplerStage::Warper,
        SamplerStage::Selector,
    ];

    /// `processor`, `warper` or `selector`: what the CLI, the C API and `plugins inspect` use.
    pub fn name(self) -> &'static str {
        match self {
            SamplerStage::Processor => "processor",
            SamplerStage::Warper => "warper",
            SamplerStage::Selector => "selector",
        }
    }

    /// The stage of an ABI value (`GPTRT_SAMPLER_STAGE_*`); `None` for an unknown value.
    pub fn from_abi(value: u32) -> Option<SamplerStage> {
        use gptrt_plugin_api::*;
        match value {
            GPTRT_SAMPLER_STAGE_DEFAULT | GPTRT_SAMPLER_STAGE_WARPER => Some(SamplerStage::Warper),
            GPTRT_SAMPLER_STAGE_PROCESSOR => Some(SamplerStage::Processor),
            GPTRT_SAMPLER_STAGE_SELECTOR => Some(SamplerStage::Selector),
            _ => None,
        }
    }
}

impl fmt::Display for SamplerStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SamplerStage {
    type Err = String;

    fn from_str(text: &str) -> Result<SamplerStage, String> {
        SamplerStage::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or_else(|| {
                format!("unknown sampler stage `{text}` (expected processor, warper or selector)")
            })
    }
}

/// Where the stages begin in a chain built by [`super::SamplerChain::from_config`]: indexes of
/// the first warper and of the built-in selector (the chain's length when it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StageMarks {
    pub(super) warpers_at: usize,
    pub(super) selector_at: usize,
}
