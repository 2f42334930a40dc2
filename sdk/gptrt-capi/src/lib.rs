//! The gptrt C API.
