//! The gptrt plugin ABI.
