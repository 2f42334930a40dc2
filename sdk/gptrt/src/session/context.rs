//! A session's sequence: its tokens, the KV cache of their first positions, and the random
//! state turns without a seed of their own draw from.

use crate::generate::fresh_seed;
use crate::kv::KvCache;

/// The sequence a session keeps across generations.
pub(crate) struct Context {
    /// Every token of the sequence: what was appended and what turns generated.
    pub tokens: Vec<u32>,
    /// The keys and values of `tokens[..cached]`.
    pub cache: KvCache,
    pub cached: usize,
    /// The seed of the next turn whose configuration sets none; advanced by each such turn, so a
    /// dialogue sampled without seeds still continues the same way after save and restore.
    pub next_seed: u64,
    /// Positions the model ran for this session, all passes (prefills, turns, decode steps).
    pub tokens_run: u64,
    /// The settings of the last turn (saved with the session).
    pub last_config: Option<crate::config::GenerationConfig>,
}

impl Context {
    pub fn new() -> Context {
        Context {
            tokens: Vec::new(),
            cache: KvCache::default(),
            cached: 0,
            next_seed: fresh_seed(),
            tokens_run: 0,
            last_config: None,
        }
    }

    /// Drop a cache that does not match what the session believes it holds (a turn that panicked
    /// midway): the next turn then runs the whole sequence again, which is slower, never wrong.
    pub fn check(&mut self) {
        if self.cached > self.tokens.len() || self.cache.positions() != self.cached {
            self.cache = KvCache::default();
            self.cached = 0;
        }
    }

    /// The seed of a turn without one of its own, advancing the session's state (SplitMix64).
    pub fn take_seed(&mut self) -> u64 {
        let seed = self.next_seed;
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        self.next_seed = z ^ (z >> 31);
        seed
    }

    /// Cut the sequence back to its first `len` tokens (and the cache with it).
    pub fn rewind(&mut self, len: usize) -> crate::error::Result<()> {
        if len < self.tokens.len() {
            self.tokens.truncate(len);
        }
        if len < self.cached {
            if let Err(error) = self.cache.truncate(len) {
                self.cache = KvCache::default();
                self.cached = 0;
                return Err(error);
            }
            self.cached = len;
        }
        Ok(())
    }

    /// A copy for a forked session: same tokens, a copy of the cache, the same random state.
    pub fn duplicate(&self) -> crate::error::Result<Context> {
        Ok(Context {
            tokens: self.tokens.clone(),
            cache: self.cache.duplicate()?,
            cached: self.cached,
            next_seed: self.next_seed,
            tokens_run: 0,
            last_config: self.last_config.clone(),
        })
    }
}
