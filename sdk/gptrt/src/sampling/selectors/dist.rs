//! The seeded draw, and its generator.

use crate::error::Result;
use crate::sampling::{Candidates, Sampler, SamplerContext};

/// Draw from the softmax of the candidates with a seeded, portable generator (xoshiro256**
/// seeded through SplitMix64). Candidates are visited best first (ties: lower id first), so the
/// same seed gives the same tokens on any machine and thread count.
#[derive(Debug, Clone)]
pub struct Dist {
    rng: Rng,
    seed: u64,
}

impl Dist {
    /// A sampler seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Dist {
            rng: Rng::new(seed),
            seed,
        }
    }
}

impl Sampler for Dist {
    fn name(&self) -> &str {
        "dist"
    }
    fn apply(&mut self, candidates: &mut Candidates, _context: &SamplerContext<'_>) -> Result<()> {
        candidates.sort();
        candidates.softmax();
        let u = self.rng.next_f32();
        let mut cumulative = 0.0f32;
        // When rounding leaves the total below `u`, the last token with a probability wins: the
        // last candidate may be a banned one (p = 0).
        let mut chosen = candidates
            .items()
            .iter()
            .rposition(|c| c.p > 0.0)
            .unwrap_or(0);
        for (i, c) in candidates.items().iter().enumerate() {
            cumulative += c.p;
            if u < cumulative {
                chosen = i;
                break;
            }
        }
        candidates.select(chosen);
        Ok(())
    }
    fn reset(&mut self) {
        self.rng = Rng::new(self.seed);
    }
}

/// xoshiro256** (Blackman and Vigna), seeded through SplitMix64: small, fast, and the same
/// numbers everywhere.
#[derive(Debug, Clone)]
pub struct Rng {
    state: [u64; 4],
}

impl Rng {
    /// A generator from a 64-bit seed.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            state: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }
}
