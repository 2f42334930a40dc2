#!/usr/bin/env bash
# The SDK's overhead against a bare `ort` loop, counted in instructions rather than seconds.
#
# Usage: benchmarks/sdk_overhead.sh [MODEL_DIR] [NEW_TOKENS]
#   MODEL_DIR   a single-layout graph folder (default: models/work/fused-small-int4/single, the
#               graph with the shortest steps, where overhead weighs most)
#   NEW_TOKENS  forward passes per generation (default: 32)
#
# Timings on a shared 2-core VM move 10-30 % between runs, which hides a 3 % overhead. valgrind's
# callgrind counts the instructions each side executes, the same from one run to the next: gptrt's
# `Generator::step` (forward pass, logits copy, sampler chain, detokenizing, stop checks) against
# the bare loop's `greedy` (forward pass, argmax), each over one warm-up and one measured
# generation of NEW_TOKENS tokens, one intra-op thread (a spinning pool thread would count its
# spins). ONNX Runtime's own share (`Session::run`) is printed for both: it should be equal.
# Takes ~5 minutes (callgrind runs ~50x slower than native).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/work/fused-small-int4/single}
tokens=${2:-32}
command -v valgrind >/dev/null || { echo "skipped: valgrind is not installed" >&2; exit 3; }
[ -f "$model/model.onnx" ] || { echo "no $model/model.onnx: see benchmarks/README.md for the models" >&2; exit 2; }
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
    ORT_DYLIB_PATH=$(ls .ort/libonnxruntime.so* 2>/dev/null | head -1)
    [ -n "$ORT_DYLIB_PATH" ] || { echo "no ONNX Runtime: run scripts/setup.sh" >&2; exit 2; }
    export ORT_DYLIB_PATH="$PWD/$ORT_DYLIB_PATH"
fi
cargo build --release -q -p gptrt-cli -p gptrt --example bare_ort_loop
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# count NAME FUNCTION COMMAND...: instructions inside FUNCTION, and inside ort's Session::run
count() {
    local name=$1 function=$2
    shift 2
    echo "$name: running under callgrind..." >&2
    valgrind --tool=callgrind --callgrind-out-file="$out/$name.cg" --toggle-collect="$function" \
        "$@" >"$out/$name.log" 2>&1 || { cat "$out/$name.log" >&2; exit 1; }
    callgrind_annotate --inclusive=yes "$out/$name.cg" 2>/dev/null | awk -v f="$function" '
        { gsub(",", "", $1) }
        index($0, f) && !total { total = $1 }
        /Session>::run_inner \[/ && !ort { ort = $1 }
        END { print total, ort }'
}
read -r bare bare_ort < <(count bare 'bare_ort_loop::greedy' \
    target/release/examples/bare_ort_loop "$model" 4 "$tokens" 1 1)
read -r sdk sdk_ort < <(count gptrt 'gptrt::generate::Generator::step' \
    target/release/gptrt bench --model "$model" --prompt-tokens 4 --new-tokens "$tokens" --threads 1 --runs 1)
python3 - "$bare" "$bare_ort" "$sdk" "$sdk_ort" "$((2 * tokens))" "$model" <<'EOF'
import sys
bare, bare_ort, sdk, sdk_ort, passes = map(int, sys.argv[1:6])
print(f"{sys.argv[6]}: {passes} forward passes (prompt 4 tokens, 1 thread), instructions")
print(f"  {'':8} {'total':>15} {'in ONNX Runtime':>17} {'own, per pass':>15}")
for name, total, ort in (("bare", bare, bare_ort), ("gptrt", sdk, sdk_ort)):
    print(f"  {name:8} {total:>15,} {ort:>17,} {(total - ort) // passes:>15,}")
print(f"  gptrt / bare: {sdk / bare:.4f} (SDK overhead {100 * (sdk / bare - 1):+.2f} %)")
EOF
