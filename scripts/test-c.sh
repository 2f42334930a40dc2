#!/usr/bin/env bash
# The C API's checks beyond cargo's own: the committed include/gptrt.h equals what cbindgen (pinned)
# makes of sdk/gptrt-capi; the examples build with the README's compile lines (C dynamic and static,
# C++, the game loop) and run; the C and C++ test programs pass (cargo test -p gptrt-capi: tests c_api and plugins_and_models);
# and valgrind finds no leak and no invalid access in the C example, the game loop, the C test
# programs and the fault-injection program (damaged model folders, one process). Installs gcc, g++
# and valgrind with apt-get when they are missing.
#
#   scripts/test-c.sh                      everything
#   scripts/test-c.sh --after-cargo-test   skip the cargo test step (scripts/test.sh ran it already)
#
# GPTRT_FAULTS_VALGRIND=all runs every damaged folder under valgrind (about 15 minutes on 2 cores:
# a folder that reaches ONNX Runtime takes ~30 s there); the default runs 10, one or two of each
# kind of refusal (loading and generating from a folder that loads is what the other programs do).
#
# GPTRT_C_PROFILE=release checks the release build instead of the debug one.
set -euo pipefail
cd "$(dirname "$0")/.."

after_cargo_test=false
[ "${1:-}" = "--after-cargo-test" ] && after_cargo_test=true
profile=${GPTRT_C_PROFILE:-debug}

scripts/setup.sh >/dev/null

missing=()
command -v gcc >/dev/null || missing+=(gcc)
command -v g++ >/dev/null || missing+=(g++)
command -v valgrind >/dev/null || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-c: installing ${missing[*]} (apt-get)"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== C API: include/gptrt.h matches the code (pinned cbindgen)"
scripts/headers.sh --check

echo "== C API: libgptrt.so and libgptrt.a ($profile)"
if [ "$profile" = release ]; then
  cargo build --quiet --release -p gptrt-capi
else
  cargo build --quiet -p gptrt-capi
fi
LIB=$PWD/target/$profile
OUT=target/$profile/c-examples
mkdir -p "$OUT"

echo "== C API: the README's compile lines, with -Wall -Wextra -Werror -pedantic"
C="gcc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude"
CXX="g++ -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude"
DYNAMIC="-L$LIB -lgptrt -Wl,-rpath,$LIB"
STATIC="$LIB/libgptrt.a -lpthread -ldl -lm"
set -x
$C examples/c/generate.c -o "$OUT/generate" $DYNAMIC
$C examples/c/generate.c -o "$OUT/generate-static" $STATIC
$CXX examples/cpp/generate.cpp -o "$OUT/generate-cpp" $DYNAMIC
$C examples/game-loop/game_loop.c -o "$OUT/game_loop" $DYNAMIC
$C examples/game-loop/npc_actions.c -o "$OUT/npc_actions" $DYNAMIC
$C -pthread tests/c/capi_test.c -o "$OUT/capi_test" $DYNAMIC
$C tests/c/dialogue_test.c -o "$OUT/dialogue_test" $DYNAMIC
$C tests/c/fault_injection.c -o "$OUT/fault_injection" $DYNAMIC
{ set +x; } 2>/dev/null

MODEL=models/fixtures/tiny-random-gpt2/single
expected="ids: 47455 31943 49224 22182" # reference.json, "Once upon a time", greedy
for exe in generate generate-static generate-cpp; do
  out=$("$OUT/$exe" "$MODEL" "Once upon a time" 4)
  if ! grep -qx "$expected" <<<"$out"; then
    echo "test-c: $exe printed, expected '$expected':" >&2
    echo "$out" >&2
    exit 1
  fi
done
"$OUT/game_loop" "$MODEL" 2 16 | tail -n 2
# NPC actions as schema-valid JSON (the grammar plugin), one turn each, in one batcher.
if [ "$profile" = release ]; then
  cargo build --quiet --release -p gptrt-plugin-grammar
else
  cargo build --quiet -p gptrt-plugin-grammar
fi
"$OUT/npc_actions" models/demo "$LIB/libgptrt_plugin_grammar.so" 1 batched | tail -n 2

if ! $after_cargo_test; then
  echo "== C API: C and C++ test programs (cargo test -p gptrt-capi)"
  if [ "$profile" = release ]; then
    cargo test --quiet --release -p gptrt-capi
  else
    cargo test --quiet -p gptrt-capi
  fi
fi

echo "== C API: valgrind (leaks, invalid accesses) on the C example, the game loop, the C test program"
VALGRIND=(valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect,possible
  --error-exitcode=1 --suppressions=tests/c/valgrind.supp)
run_valgrind() { # name, command...
  local name=$1 log
  shift
  log=$(mktemp)
  if ! "${VALGRIND[@]}" --log-file="$log" "$@" >/dev/null; then
    echo "test-c: valgrind found errors in $name:" >&2
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  echo "valgrind: $name: no leaks, no invalid accesses"
}
run_valgrind "examples/c/generate.c" "$OUT/generate" "$MODEL" "Hello world" 8
run_valgrind "examples/game-loop/game_loop.c" "$OUT/game_loop" "$MODEL" 1 8
run_valgrind "tests/c/capi_test.c" "$OUT/capi_test" "$MODEL" 4 "Hello world"
run_valgrind "tests/c/dialogue_test.c" "$OUT/dialogue_test" "$MODEL" quick

# The damaged folders of tests/faults/damage.rs (made by a tool test of the C API's fault suite),
# loaded in one process under valgrind: each refusal and each acceptance frees what it made.
faults=$(mktemp -d)
GPTRT_FAULTS_DIR=$faults cargo test --quiet -p gptrt-capi --test faults -- --ignored \
  make_damaged_folders_for_valgrind >/dev/null
quick='^(missing-config|config-layers-string|config-vocab-2pow40|genconfig-garbage|tokenizer-truncated|tokenizer-deep-decoder|graph-text|graph-past-head-dim-9|config-fifo|tokenizer-dev-zero)$'
if [ "${GPTRT_FAULTS_VALGRIND:-}" = all ]; then
  mapfile -t dirs < <(cut -f2 "$faults/LIST")
else
  mapfile -t dirs < <(awk -F'\t' -v quick="$quick" '$1 ~ quick { print $2 }' "$faults/LIST")
fi
total=$(wc -l <"$faults/LIST")
start=$(date +%s)
run_valgrind "tests/c/fault_injection.c (${#dirs[@]} of $total damaged folders)" \
  "$OUT/fault_injection" "${dirs[@]}"
echo "   ($(($(date +%s) - start)) s)"
chmod -R u+rwX "$faults" && rm -rf "$faults"
echo "test-c: all C API checks passed"
