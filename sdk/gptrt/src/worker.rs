//! The background threads of sessions and batchers: how they start and how they yield to the
//! host's own threads.

use std::thread::JoinHandle;

use crate::error::{Error, Result};

/// Make the calling (worker) thread yield to the host's threads: on Linux, `SCHED_BATCH`, the
/// normal time-sharing policy minus wake-up preemption, so a worker that wakes up (a new job, the
/// model free again) never interrupts the host's frame thread in the middle of its frame; it still
/// gets its fair share of the CPU.
pub(crate) fn yield_to_host_threads() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain system call on the calling thread (pid 0) with a valid parameter struct;
        // failure leaves the policy unchanged, which is harmless.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    }
}

/// Start a worker thread named `gptrt-{owner}` (a session's or a batcher's).
pub(crate) fn spawn_worker(
    owner: &str,
    body: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("gptrt-{owner}"))
        .spawn(body)
        .map_err(|e| Error::Internal {
            context: "a worker thread",
            message: format!("could not start the {owner}'s worker thread: {e}"),
        })
}

/// Text of a caught panic's payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// The error of a generation that panicked on a worker (`what`: "the generation", ...).
pub(crate) fn panicked(what: &str, payload: &(dyn std::any::Any + Send)) -> Error {
    Error::Panic {
        message: format!(
            "{what} panicked (a gptrt bug; please report it): {}",
            panic_message(payload)
        ),
    }
}
