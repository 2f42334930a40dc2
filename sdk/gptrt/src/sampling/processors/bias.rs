//! `sequence_bias` and `bad_words_ids`.

use crate::error::Result;
use crate::sampling::{Candidates, Sampler, SamplerContext};

/// `sequence_bias` (and `bad_words_ids` as `-inf` biases): add a bias to a token when the
/// sequence ends with the rest of a biased sequence.
#[derive(Debug, Clone)]
pub struct SequenceBias {
    /// `(token sequence, bias)` pairs.
    pub biases: Vec<(Vec<u32>, f32)>,
    name: &'static str,
}

impl SequenceBias {
    /// Biases for token sequences (`sequence_bias`).
    pub fn new(biases: Vec<(Vec<u32>, f32)>) -> Self {
        SequenceBias {
            biases,
            name: "sequence_bias",
        }
    }

    /// Bans for token sequences (`bad_words_ids`); a ban that is exactly an end token is ignored,
    /// as in Hugging Face.
    pub fn bad_words(bad_words: &[Vec<u32>], eos: &[u32]) -> Self {
        let biases = bad_words
            .iter()
            .filter(|seq| !(seq.len() == 1 && eos.contains(&seq[0])))
            .map(|seq| (seq.clone(), f32::NEG_INFINITY))
            .collect();
        SequenceBias {
            biases,
            name: "bad_words_ids",
        }
    }
}

impl Sampler for SequenceBias {
    fn name(&self) -> &str {
        self.name
    }
    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()> {
        let tokens = context.tokens;
        for (sequence, bias) in &self.biases {
            let Some((&last, prefix)) = sequence.split_last() else {
                continue;
            };
            if sequence.len() > 1 && (sequence.len() > tokens.len() || !tokens.ends_with(prefix)) {
                continue;
            }
            candidates.add_logit(last, *bias);
        }
        Ok(())
    }
}
