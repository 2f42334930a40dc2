#!/usr/bin/env bash
# The long soak: GPTRT_SOAK_GENERATIONS (default 3000) short generations, sessions created and
# freed, poll API, half batched, every fourth a dialogue saved (no cache, fp16, fp32) and restored
# into a new session for one more turn; prints the resident set at start and end and fails when it
# grows by more than 8 MB. The suite runs a short one (300) in `cargo test -p gptrt --test soak`.
# Also valgrind on the C programs: scripts/test-c.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
cargo test --quiet -p gptrt --test soak -- --ignored --nocapture long_soak
