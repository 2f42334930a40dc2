//! `no_repeat_ngram_size`.

use crate::error::Result;
use crate::sampling::{Candidates, Sampler, SamplerContext};

/// `no_repeat_ngram_size`: ban any token that would repeat an n-gram already in the sequence.
#[derive(Debug, Clone)]
pub struct NoRepeatNgram {
    /// n (>= 1).
    pub size: usize,
}

impl Sampler for NoRepeatNgram {
    fn name(&self) -> &str {
        "no_repeat_ngram_size"
    }
    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()> {
        let tokens = context.tokens;
        let n = self.size;
        if n == 0 || tokens.len() + 1 < n {
            return Ok(());
        }
        let prefix = &tokens[tokens.len() + 1 - n..];
        for window in tokens.windows(n) {
            if &window[..n - 1] == prefix {
                candidates.ban(window[n - 1]);
            }
        }
        Ok(())
    }
}
