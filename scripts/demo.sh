#!/usr/bin/env bash
# The demo from a fresh clone: installs ONNX Runtime into .ort/, builds gptrt, and generates text with
# the model bundled in this repository. With arguments, they replace the demo's `gptrt generate` flags.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "demo: building gptrt (release)..."
cargo build --release --quiet
if [ $# -eq 0 ]; then
  set -- --prompt "Once upon a time" --max-new-tokens 40
fi
exec target/release/gptrt generate "$@"
