//! A sampler plugin's own stop reason (`GptrtCandidates::stop_reason`, ABI 1.2): checked, and kept
//! for the life of the process so [`StopReason`] stays `Copy` with a `&'static str` name.

use std::ffi::{c_char, CStr};
use std::sync::Mutex;

use crate::generate::StopReason;

/// The longest name a plugin may give.
const MAX_LEN: usize = 48;
/// Distinct names kept; a plugin inventing more gets `sampler_stop` for the rest, so a faulty
/// plugin cannot grow the host's memory without bound.
const MAX_NAMES: usize = 256;

static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// The stop reason a plugin wrote, or a message saying what is wrong with it.
///
/// # Safety
/// `name` is non-NULL and, per the ABI, a NUL-terminated string valid for this call.
pub(super) unsafe fn read(name: *const c_char) -> Result<StopReason, String> {
    // SAFETY: the caller's contract; the length is bounded below before it is used.
    let bytes = unsafe { CStr::from_ptr(name) }.to_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
    if !valid {
        return Err(format!(
            "set stop_reason to {:?}, not a name of 1 to {MAX_LEN} characters [a-z0-9_]",
            String::from_utf8_lossy(&bytes[..bytes.len().min(64)])
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "stop_reason is not UTF-8".to_string())?;
    let mut names = NAMES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = names.iter().find(|n| **n == text) {
        return Ok(StopReason::Sampler(known));
    }
    if names.len() >= MAX_NAMES {
        return Ok(StopReason::Sampler("sampler_stop"));
    }
    let kept: &'static str = Box::leak(text.to_string().into_boxed_str());
    names.push(kept);
    Ok(StopReason::Sampler(kept))
}
