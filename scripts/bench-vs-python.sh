#!/usr/bin/env bash
# Decode speed of `gptrt bench` next to a plain Python onnxruntime loop on the same graph, in one run.
# Default graph: the 124M random-init gpt2-small export made by
#   models/make_fixtures.py --preset small   (models/work/small-random-gpt2, not committed)
# Usage: scripts/bench-vs-python.sh [MODEL_DIR] [NEW_TOKENS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/work/small-random-gpt2/single}
new_tokens=${2:-128}
threads=${3:-$(nproc)}
python=${PYTHON:-models/.venv/bin/python}

if [ ! -f "$model/config.json" ]; then
  echo "no model at $model; make it with: models/.venv/bin/python models/make_fixtures.py --preset small" >&2
  exit 1
fi
scripts/setup.sh >/dev/null
if ! "$python" -c "import onnxruntime, numpy, tokenizers" 2>/dev/null; then
  echo "bench: creating models/.venv with onnxruntime==1.31.1, numpy, tokenizers" >&2
  python3 -m venv models/.venv
  models/.venv/bin/pip install --quiet onnxruntime==1.31.1 numpy tokenizers
  python=models/.venv/bin/python
fi
cargo build --release --quiet
echo "model: $model | new tokens: $new_tokens | threads: $threads | $(nproc) cores"
target/release/gptrt bench --model "$model" --new-tokens "$new_tokens" --runs 3 --threads "$threads" --json |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print("gptrt bench (%s layout): prompt %.1f tok/s, decode best %.1f tok/s, median %.1f" % (d["layout"], d["prompt_tokens_per_second_best"], d["decode_tokens_per_second_best"], d["decode_tokens_per_second_median"]))'
"$python" models/bench_python_loop.py --model "$model" --new-tokens "$new_tokens" --repeat 3 --threads "$threads" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print("python onnxruntime loop: prompt %.1f tok/s, decode best %.1f tok/s" % (d["prompt_tokens_per_s"], d["decode_tokens_per_s"]))'
