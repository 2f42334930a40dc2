//! Bounds around plugin calls. Nothing can preempt a plugin's native code inside the host's own
//! process, so the host bounds what it controls instead: it does not call a sampler plugin once
//! the generation is cancelled or out of time (checked before every `apply`; the generator checks
//! again after every chain), and it lets another thread see that a thread is inside a plugin's
//! code ([`PluginCallWatch`]), so a session's owner can detach a worker stuck there rather than
//! wait for it for ever.
//!
//! The limits travel in a thread-local beside the [`crate::Sampler`] calls rather than through
//! them: the trait is the interface built-in and plugin samplers share, and only the plugin
//! adapter needs them.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::{CancelToken, StopReason};

/// When the generation running on a thread must stop.
#[derive(Debug, Clone, Default)]
pub(crate) struct Limits {
    pub(crate) cancel: CancelToken,
    /// When the generation began and its `max_time` in seconds.
    pub(crate) time_limit: Option<(Instant, f64)>,
}

impl Limits {
    /// Why the generation must stop now, if it must.
    pub(crate) fn reached(&self) -> Option<StopReason> {
        if self.cancel.is_cancelled() {
            Some(StopReason::Cancelled)
        } else if self
            .time_limit
            .is_some_and(|(began, limit)| began.elapsed().as_secs_f64() >= limit)
        {
            Some(StopReason::MaxTime)
        } else {
            None
        }
    }
}

thread_local! {
    static LIMITS: RefCell<Option<Limits>> = const { RefCell::new(None) };
    static SKIPPED: Cell<Option<StopReason>> = const { Cell::new(None) };
    static WATCH: RefCell<Option<PluginCallWatch>> = const { RefCell::new(None) };
}

/// This thread's limits until dropped; then the previous ones again (generations nest when a
/// plugin calls the host's `generate`).
pub(crate) struct LimitsScope {
    previous: Option<Limits>,
}

/// Apply `limits` to the plugin calls this thread makes until the scope is dropped.
pub(crate) fn enter_limits(limits: Limits) -> LimitsScope {
    SKIPPED.with(|skipped| skipped.set(None));
    LimitsScope {
        previous: LIMITS.with(|slot| slot.replace(Some(limits))),
    }
}

impl Drop for LimitsScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        LIMITS.with(|slot| *slot.borrow_mut() = previous);
    }
}

/// Before a plugin call: the reason not to make it, if the generation must stop. The generator
/// reads it back with [`take_skipped`] from the error the caller returns.
pub(crate) fn stop_before_call() -> Option<StopReason> {
    let reason = LIMITS.with(|slot| slot.borrow().as_ref().and_then(Limits::reached))?;
    SKIPPED.with(|skipped| skipped.set(Some(reason)));
    Some(reason)
}

/// A sampler ended the sequence with its own reason: the chain returns an error, which the
/// generator reads back with [`take_skipped`] as this stop, without the step's token.
pub(crate) fn stop_by_sampler(reason: StopReason) {
    SKIPPED.with(|skipped| skipped.set(Some(reason)));
}

/// After a chain failed: whether it failed because a plugin call was skipped, and why.
pub(crate) fn take_skipped() -> Option<StopReason> {
    SKIPPED.with(Cell::take)
}

/// Lets another thread see whether the watched thread is inside a plugin's code (a plugin call,
/// or a host function that plugin called back). A session's owner uses it to tell a worker busy
/// with the model, which will see a cancel soon, from one stuck in a plugin, which may never
/// return.
#[derive(Debug, Clone, Default)]
pub struct PluginCallWatch {
    depth: Arc<AtomicUsize>,
}

impl PluginCallWatch {
    /// A watch no thread reports to yet.
    pub fn new() -> PluginCallWatch {
        PluginCallWatch::default()
    }

    /// Report the plugin calls the calling thread makes from now on to this watch (replacing any
    /// watch the thread had).
    pub fn watch_this_thread(&self) {
        WATCH.with(|slot| *slot.borrow_mut() = Some(self.clone()));
    }

    /// Whether the watched thread is inside a plugin call now.
    pub fn in_call(&self) -> bool {
        self.depth.load(Ordering::Acquire) > 0
    }
}

/// Marks the calling thread as inside a plugin's code until dropped.
pub(crate) struct InCall(());

impl InCall {
    pub(crate) fn enter() -> InCall {
        WATCH.with(|slot| {
            if let Some(watch) = slot.borrow().as_ref() {
                watch.depth.fetch_add(1, Ordering::AcqRel);
            }
        });
        InCall(())
    }
}

impl Drop for InCall {
    fn drop(&mut self) {
        WATCH.with(|slot| {
            if let Some(watch) = slot.borrow().as_ref() {
                watch.depth.fetch_sub(1, Ordering::AcqRel);
            }
        });
    }
}
