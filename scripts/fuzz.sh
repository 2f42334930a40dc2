#!/usr/bin/env bash
# The fuzz targets in fuzz/ (libFuzzer via libfuzzer-sys), built with the stable toolchain: this
# script passes the coverage instrumentation cargo-fuzz would (no cargo-fuzz, no nightly needed;
# libfuzzer-sys compiles libFuzzer with the C++ compiler, so g++ must be there). No AddressSanitizer:
# that needs nightly (-Zsanitizer); the code fuzzed is Rust, and every unsafe read in it is bounded.
#
#   scripts/fuzz.sh --short [TARGET...]   a fixed number of runs per target, fixed seed (CI; scripts/test.sh)
#   scripts/fuzz.sh [TARGET...]           each target for FUZZ_SECONDS (default 300) seconds
#   scripts/fuzz.sh --list                the targets
#
# Seeds: fuzz/corpus/TARGET/ (committed, read-only here); what a run learns goes to
# target/fuzz/corpus/TARGET/. A crash leaves its input in target/fuzz/artifacts/TARGET/ and fails
# the script: add that input to fuzz/corpus/TARGET/ and a regression test to the normal suite.
# Dictionaries: fuzz/dict/TARGET.dict when present. FUZZ_RUNS (default 20000) sets the short runs.
set -euo pipefail
cd "$(dirname "$0")/.."

short=false
targets=()
for arg in "$@"; do
  case "$arg" in
    --short) short=true ;;
    --list) sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | tail -n +2; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $arg" >&2; exit 2 ;;
    *) targets+=("$arg") ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | tail -n +2)

scripts/setup.sh >/dev/null
command -v g++ >/dev/null || { echo "fuzz.sh: libfuzzer-sys needs g++ (apt-get install g++)" >&2; exit 1; }

# cargo-fuzz's instrumentation: edge counters, comparison tracing, the PC table libFuzzer reads.
# Only for the target triple, so build scripts and proc macros run uninstrumented.
triple=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=$PWD/target/fuzz
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth"
echo "== fuzz: building ${#targets[@]} target(s) (instrumented, release, debug assertions on)"
start=$(date +%s)
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
(cd fuzz && cargo build --quiet --release --locked --target "$triple" "${bins[@]}")
echo "   built in $(($(date +%s) - start)) s"

# Only saved_session opens a graph (the tiny fixture, once per process): it finds ONNX Runtime in
# .ort/, where scripts/setup.sh above put it.
failed=()
for t in "${targets[@]}"; do
  work=target/fuzz/corpus/$t
  artifacts=target/fuzz/artifacts/$t/
  mkdir -p "$work" "$artifacts" "fuzz/corpus/$t"
  flags=(-artifact_prefix="$artifacts" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
  [ -f "fuzz/dict/$t.dict" ] && flags+=(-dict="fuzz/dict/$t.dict")
  if $short; then
    flags+=(-runs="${FUZZ_RUNS:-20000}" -seed=1)
  else
    flags+=(-max_total_time="${FUZZ_SECONDS:-300}")
  fi
  start=$(date +%s)
  if "target/fuzz/$triple/release/$t" "${flags[@]}" "$work" "fuzz/corpus/$t" >"target/fuzz/$t.log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "target/fuzz/$t.log")
    echo "== fuzz $t: ${runs:-?} executions, no crash ($(($(date +%s) - start)) s)"
  else
    echo "== fuzz $t: FAILED (log: target/fuzz/$t.log; input: $artifacts)"
    tail -n 30 "target/fuzz/$t.log"
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in ${failed[*]}" >&2
  exit 1
fi
