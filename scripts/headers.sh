#!/usr/bin/env bash
# Regenerates the committed C headers with a pinned cbindgen, or with --check fails when they
# differ from what the code says (CI runs the check).
#   include/gptrt_plugin.h  from sdk/gptrt-plugin-api
#   include/gptrt.h         from sdk/gptrt-capi (when its cbindgen.toml exists)
set -euo pipefail
cd "$(dirname "$0")/.."

CBINDGEN_VERSION=0.29.0
if ! cbindgen --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; then
  echo "headers: installing cbindgen $CBINDGEN_VERSION (cargo install --locked)..." >&2
  cargo install --quiet --locked cbindgen --version "$CBINDGEN_VERSION"
fi

check=false
[ "${1:-}" = "--check" ] && check=true
status=0
# A crate whose cbindgen.toml has [parse.expand] is expanded by `cargo rustc -- -Zunpretty=expanded`,
# a nightly flag: RUSTC_BOOTSTRAP=1 allows it on the stable toolchain, for that cargo call only. It
# builds in its own target dir because a change of RUSTC_BOOTSTRAP makes cargo recompile the
# workspace crates: sharing target/ would cost every later build and test that recompilation.
expand_target_dir="${CARGO_TARGET_DIR:-target}/cbindgen-expand"
[[ $expand_target_dir = /* ]] || expand_target_dir="$PWD/$expand_target_dir" # cbindgen runs in the crate
generate() { # crate-dir header
  local crate_dir=$1 header=$2 out
  out=$(mktemp)
  (cd "$crate_dir" && RUSTC_BOOTSTRAP=1 CARGO_EXPAND_TARGET_DIR="$expand_target_dir" \
    CARGO_INCREMENTAL=0 cbindgen --quiet --config cbindgen.toml --output "$out")
  if $check; then
    if ! diff -u "$header" "$out" >/dev/null; then
      echo "headers: $header is out of date with $crate_dir; run scripts/headers.sh and commit it:" >&2
      diff -u "$header" "$out" | head -40 >&2 || true
      status=1
    fi
    rm -f "$out"
  else
    mv "$out" "$header"
    echo "headers: wrote $header"
  fi
}
generate sdk/gptrt-plugin-api include/gptrt_plugin.h
if [ -f sdk/gptrt-capi/cbindgen.toml ]; then
  generate sdk/gptrt-capi include/gptrt.h
fi
exit $status
