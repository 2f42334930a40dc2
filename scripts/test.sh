#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what is missing (ONNX Runtime into .ort/), checks
# formatting and lints, then runs every test. Needs only Rust, gcc, Python 3 and pip.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== committed headers match the code"
scripts/headers.sh --check
echo "== cargo test"
cargo test --workspace
scripts/test-c.sh --after-cargo-test
echo "== fuzz targets, short: a fixed number of runs each (scripts/fuzz.sh runs them long)"
scripts/fuzz.sh --short
echo "== GPU execution providers compiled in (fallback and strict paths; no GPU here)"
cargo test -p gptrt --features cuda,tensorrt,directml --test providers
