//! Stopping a generation from outside ([`CancelToken`]) and stop strings (held back from the
//! streamed text until they cannot start one).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Stops a generation from another thread; it takes effect at the next token.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }
    /// Ask the generation to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Holds back generated text that could be the start of a stop string, so streamed text never
/// contains one.
#[derive(Debug, Clone, Default)]
pub(super) struct StopFilter {
    pub(super) stops: Vec<String>,
    pub(super) held: String,
}

impl StopFilter {
    /// Add text; append what is safe to emit to `out`; return the index of a matched stop string.
    pub(super) fn push(&mut self, text: &str, out: &mut String) -> Option<usize> {
        self.held.push_str(text);
        let found = self
            .stops
            .iter()
            .enumerate()
            .filter_map(|(index, stop)| self.held.find(stop.as_str()).map(|at| (at, index)))
            .min();
        if let Some((at, index)) = found {
            out.push_str(&self.held[..at]);
            self.held.clear();
            return Some(index);
        }
        // Keep the longest tail that some stop string starts with.
        let keep = self
            .held
            .char_indices()
            .map(|(at, _)| at)
            .find(|&at| {
                self.stops
                    .iter()
                    .any(|stop| stop.starts_with(&self.held[at..]))
            })
            .unwrap_or(self.held.len());
        out.push_str(&self.held[..keep]);
        self.held.drain(..keep);
        None
    }

    pub(super) fn finish(&mut self, out: &mut String) {
        out.push_str(&self.held);
        self.held.clear();
    }
}
