#!/usr/bin/env bash
# Prepares llama.cpp as a CPU baseline for gptrt's benchmarks: builds llama-bench,
# llama-batched-bench and llama-quantize, and converts a GPT-2 checkpoint to GGUF
# (f32, q8_0, q4_0) so both runtimes run the same weights on the same machine.
#
# Usage: benchmarks/llama_cpp.sh [HF_CHECKPOINT_DIR]
#   HF_CHECKPOINT_DIR  a transformers GPT2LMHeadModel save_pretrained folder
#                      (default: models/work/small-random-gpt2-checkpoint)
#
# Environment:
#   PYTHON                    python with torch + transformers for the converter
#                             (default: /root/venv-models/bin/python, else models/.venv/bin/python)
#   LLAMA_CPP_PYTHON_VERSION  PyPI llama-cpp-python version whose sdist supplies llama.cpp
#                             (default: the version this script was tested with)
#   JOBS                      build and quantize threads (default: 2)
#   NICE                      niceness of the build/convert steps (default: 19)
#
# Only package registries are reachable here, so llama.cpp's sources come from the
# llama-cpp-python sdist on PyPI, which vendors them under vendor/llama.cpp. Everything
# lands in the git-ignored benchmarks/.llama.cpp/; llama.cpp code is never committed.
#
# Idempotent: each step is skipped when its output exists (the GGUF files are redone
# when the checkpoint changes). Logs go to stderr; on success stdout holds only
# KEY=PATH lines (LLAMA_BENCH, LLAMA_BATCHED_BENCH, LLAMA_QUANTIZE, GGUF_F32,
# GGUF_Q8_0, GGUF_Q4_0), so a caller can `eval "$(benchmarks/llama_cpp.sh)"`.
#
# Exit status: 0 ready; 3 when something needed is unavailable (compiler, pip, the
# registry, cmake, the checkpoint, torch...): a "skipped: <why>" line on stderr says
# what, and a caller should leave llama.cpp out; anything else is a real failure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/benchmarks/.llama.cpp
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
JOBS=${JOBS:-2}
NICE=${NICE:-19}
CKPT=${1:-$ROOT/models/work/small-random-gpt2-checkpoint}
TOKENIZER_DIR=$ROOT/models/gpt2-tokenizer

SDIST_DIR=$WORK/llama_cpp_python-$VERSION
SRC=$SDIST_DIR/vendor/llama.cpp
BUILD=$WORK/build
BIN=$BUILD/bin
GGUF=$WORK/gguf
F32=$GGUF/gpt2-124m-f32.gguf
Q8=$GGUF/gpt2-124m-q8_0.gguf
Q4=$GGUF/gpt2-124m-q4_0.gguf
TARGETS=(llama-bench llama-batched-bench llama-quantize)

log() { echo "llama_cpp: $*" >&2; }
skip() { echo "skipped: $*" >&2; exit 3; }
# The build and the conversion take minutes of both cores; keep them behind
# whatever else the machine is doing (benchmarks run the binaries separately).
heavy() { nice -n "$NICE" "$@"; }

command -v cc >/dev/null && command -v c++ >/dev/null || skip "no C/C++ compiler (cc, c++)"
command -v make >/dev/null || skip "no make"
command -v python3 >/dev/null || skip "no python3"
python3 -m pip --version >/dev/null 2>&1 || skip "python3 has no pip"
[ -f "$CKPT/config.json" ] || skip "no Hugging Face checkpoint at $CKPT (make it with models/make_fixtures.py --preset small)"
mkdir -p "$WORK"

# --- 1. llama.cpp sources --------------------------------------------------------
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  sdist=$WORK/llama_cpp_python-$VERSION.tar.gz
  if [ ! -f "$sdist" ]; then
    log "downloading the llama-cpp-python==$VERSION sdist from PyPI"
    # --no-binary names only this package: with ':all:' pip would also build the
    # sdist's build backend's dependencies (cmake itself) from source for the
    # metadata step, which takes over ten minutes.
    heavy python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python \
      --dest "$WORK" "llama-cpp-python==$VERSION" >&2 \
      || skip "could not download llama-cpp-python==$VERSION from PyPI"
  fi
  log "unpacking $(basename "$sdist")"
  rm -rf "$WORK/unpack.tmp" && mkdir "$WORK/unpack.tmp"
  heavy tar -xzf "$sdist" -C "$WORK/unpack.tmp"
  rm -rf "$SDIST_DIR"
  mv "$WORK/unpack.tmp/llama_cpp_python-$VERSION" "$SDIST_DIR"
  rmdir "$WORK/unpack.tmp"
  [ -f "$SRC/CMakeLists.txt" ] || { log "the sdist has no vendor/llama.cpp"; exit 1; }
fi

# --- 2. the tools ----------------------------------------------------------------
# llama.cpp needs cmake >= 3.14; without a usable one, cmake's PyPI wheel is enough.
cmake_ok() { "$1" -P /dev/stdin <<<'if(CMAKE_VERSION VERSION_LESS 3.14)
message(FATAL_ERROR old)
endif()' >/dev/null 2>&1; }
CMAKE=$(command -v cmake || true)
if [ -z "$CMAKE" ] || ! cmake_ok "$CMAKE"; then
  CMAKE=$WORK/venv/bin/cmake
  if [ ! -x "$CMAKE" ]; then
    log "installing cmake from PyPI into $WORK/venv"
    { python3 -m venv "$WORK/venv" >&2 \
      && heavy "$WORK/venv/bin/pip" install --quiet cmake >&2; } \
      || skip "no cmake >= 3.14 and 'pip install cmake' failed"
  fi
fi

# The CPU may advertise AMX that the hypervisor faults on, and -march=native would
# then let gcc emit AMX code (ggml's AMX kernels compile in on __AMX_INT8__). Explicit
# -mno-* flags win over -march=native whatever their order, so they go in the
# global flags; GGML_AMX_* only matter for non-native builds but say the same thing.
ARCH_CFLAGS=""
if [ "$(uname -m)" = x86_64 ] \
   && echo 'int main(void){return 0;}' | cc -mno-amx-tile -mno-amx-int8 -mno-amx-bf16 -x c - -o /dev/null 2>/dev/null; then
  ARCH_CFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
CMAKE_ARGS=(
  -DCMAKE_BUILD_TYPE=Release
  "-DCMAKE_C_FLAGS=$ARCH_CFLAGS"
  "-DCMAKE_CXX_FLAGS=$ARCH_CFLAGS"
  -DGGML_NATIVE=ON
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
  -DGGML_CCACHE=OFF
  -DBUILD_SHARED_LIBS=OFF      # self-contained binaries: no LD_LIBRARY_PATH for callers
  -DLLAMA_OPENSSL=OFF          # no downloads from the tools (LLAMA_CURL is gone upstream)
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
  -DLLAMA_BUILD_TOOLS=ON       # llama-bench and friends live under tools/
)
stamp=$BUILD/gptrt-build-args.txt
want_stamp=$(printf '%s\n' "$SRC" "${CMAKE_ARGS[@]}")
have_bins=1
for t in "${TARGETS[@]}"; do [ -x "$BIN/$t" ] || have_bins=0; done
if [ "$have_bins" = 1 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want_stamp" ]; then
  log "tools already built in $BIN"
else
  log "building ${TARGETS[*]} (-j$JOBS; several minutes on 2 cores)"
  start=$SECONDS
  heavy "$CMAKE" -S "$SRC" -B "$BUILD" "${CMAKE_ARGS[@]}" >&2
  heavy "$CMAKE" --build "$BUILD" --config Release --target "${TARGETS[@]}" -j"$JOBS" >&2
  printf '%s\n' "$want_stamp" >"$stamp"
  log "built in $((SECONDS - start)) s"
fi

# --- 3. GGUF files ---------------------------------------------------------------
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
elif [ -x /root/venv-models/bin/python ]; then
  PY=/root/venv-models/bin/python
else
  PY=$ROOT/models/.venv/bin/python
fi

# The f32 file is redone only when the checkpoint (path, sizes, times) changes.
ckpt_id=$( (cd "$CKPT" && realpath . && stat -L -c '%n %s %Y' -- *) )
if [ -f "$F32" ] && [ "$(cat "$GGUF/source.txt" 2>/dev/null)" = "$ckpt_id" ]; then
  log "f32 GGUF already made from $CKPT"
else
  [ -x "$PY" ] || command -v "$PY" >/dev/null || skip "no python for the converter (set PYTHON)"
  "$PY" -c 'import torch, transformers, numpy' 2>/dev/null \
    || skip "$PY lacks torch/transformers/numpy for convert_hf_to_gguf.py (set PYTHON)"
  # The vendored gguf-py goes on PYTHONPATH (its version must match the converter);
  # its own small dependencies are added to a side folder only if $PY lacks them.
  PYPATH=$SRC/gguf-py
  if ! "$PY" -c 'import tqdm, yaml, requests' 2>/dev/null; then
    if [ ! -d "$WORK/pydeps" ]; then
      log "installing gguf-py's dependencies (tqdm pyyaml requests) into $WORK/pydeps"
      heavy "$PY" -m pip install --quiet --target "$WORK/pydeps" tqdm pyyaml requests >&2 \
        || skip "could not install tqdm/pyyaml/requests for gguf-py"
    fi
    PYPATH=$PYPATH:$WORK/pydeps
  fi

  mkdir -p "$GGUF"
  tmp=$(mktemp -d "$WORK/ckpt.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # Links, not copies, of the weights (~500 MB); config.json is rewritten below.
  for f in "$CKPT"/*; do [ "$(basename "$f")" = config.json ] || ln -s "$(realpath "$f")" "$tmp/"; done
  # The converter's tokenizer check needs the tokenizer next to the weights, and the
  # checkpoints made by models/ leave it out.
  for f in "$TOKENIZER_DIR"/*; do [ -e "$tmp/$(basename "$f")" ] || ln -s "$(realpath "$f")" "$tmp/"; done
  # GPT-2's converter reads the context length from "n_ctx", which transformers
  # no longer writes (it keeps "n_positions").
  "$PY" - "$CKPT/config.json" "$tmp/config.json" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg.setdefault("n_ctx", cfg["n_positions"])
json.dump(cfg, open(sys.argv[2], "w"), indent=2)
PY
  log "converting $CKPT to f32 GGUF"
  rm -f "$Q8" "$Q4" "$GGUF/source.txt"
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH=$PYPATH \
    heavy "$PY" "$SRC/convert_hf_to_gguf.py" "$tmp" --outtype f32 --outfile "$F32.part" >&2
  mv "$F32.part" "$F32"
  printf '%s\n' "$ckpt_id" >"$GGUF/source.txt"
  rm -rf "$tmp"
  trap - EXIT
fi

for pair in "q8_0:$Q8" "q4_0:$Q4"; do
  type=${pair%%:*} out=${pair#*:}
  if [ -f "$out" ]; then
    log "$type GGUF already made"
  else
    log "quantizing to $type"
    heavy "$BIN/llama-quantize" "$F32" "$out.part" "$type" "$JOBS" >&2
    mv "$out.part" "$out"
  fi
done

# --- 4. where things are ---------------------------------------------------------
log "llama.cpp from llama-cpp-python $VERSION ($SRC); tools in $BIN; GGUF files in $GGUF"
echo "LLAMA_BENCH=$BIN/llama-bench"
echo "LLAMA_BATCHED_BENCH=$BIN/llama-batched-bench"
echo "LLAMA_QUANTIZE=$BIN/llama-quantize"
echo "GGUF_F32=$F32"
echo "GGUF_Q8_0=$Q8"
echo "GGUF_Q4_0=$Q4"
