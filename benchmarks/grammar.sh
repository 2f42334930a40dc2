#!/usr/bin/env bash
# The grammar plugin at scale: 5 schemas x SEEDS seeded generations (default 40: 200) with the
# model's default sampling, every one checked against its schema, and the mask's cost per token
# next to the decode step (the chain with the grammar minus the same generations' chain without
# it). Release build.
#   benchmarks/grammar.sh [SEEDS] [MODEL_DIR]     (MODEL_DIR default models/demo)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-40}
export GPTRT_GRAMMAR_SEEDS=$seeds
[ -n "${2:-}" ] && export GPTRT_GRAMMAR_MODEL=$2
lscpu | grep -m1 'Model name' || true
cargo build --quiet --release -p gptrt-plugin-grammar
cargo test --quiet --release -p gptrt --test grammar every_output_matches_its_schema -- --nocapture 2>&1 |
  grep -E '^grammar:|test result|panicked'
