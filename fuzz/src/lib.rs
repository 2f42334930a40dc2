//! What the fuzz targets share: the committed tiny fixture's tokenizer, and the C API's statuses
//! that a target treats as a finding.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The tiny fixture's folder (its `tokenizer.json` is GPT-2's).
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fixtures/tiny-random-gpt2/single")
}

/// GPT-2's tokenizer, loaded once per process.
pub fn tokenizer() -> &'static gptrt::Tokenizer {
    static TOKENIZER: OnceLock<gptrt::Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        gptrt::Tokenizer::from_dir(&fixture_dir()).expect("the committed fixture's tokenizer loads")
    })
}

/// A C API status that must never come back, whatever the arguments: a caught panic or an
/// internal error is a bug.
pub fn assert_no_bug(function: &str, status: gptrt_capi::gptrt_status_t) {
    use gptrt_capi::gptrt_status_t::{GPTRT_ERROR_INTERNAL, GPTRT_ERROR_PANIC};
    assert!(
        status != GPTRT_ERROR_PANIC && status != GPTRT_ERROR_INTERNAL,
        "{function} returned {status:?}"
    );
}
