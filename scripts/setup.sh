#!/usr/bin/env bash
# Installs what gptrt needs at run time that cargo does not bring: the ONNX Runtime shared library.
# It comes from PyPI's onnxruntime==1.31.1 wheel (only libonnxruntime.so.1.31.1 is kept) and lands
# in .ort/ at the repository root, where the SDK looks for it. Idempotent; needs python3 with pip.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
LIB=libonnxruntime.so.${ORT_VERSION}
DEST=.ort

if [ -f "$DEST/$LIB" ]; then
  echo "setup: ONNX Runtime $ORT_VERSION already in $DEST/$LIB"
  exit 0
fi
mkdir -p "$DEST/wheel"
echo "setup: downloading onnxruntime==$ORT_VERSION from PyPI (wheel only, no dependencies)..."
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --dest "$DEST/wheel" "onnxruntime==$ORT_VERSION"
wheel=$(ls "$DEST"/wheel/onnxruntime-"$ORT_VERSION"-*.whl | head -n 1)
python3 - "$wheel" "$DEST" "$LIB" <<'PY'
import sys, zipfile, shutil, os
wheel, dest, lib = sys.argv[1:]
with zipfile.ZipFile(wheel) as zf:
    member = f"onnxruntime/capi/{lib}"
    with zf.open(member) as src, open(os.path.join(dest, lib + ".part"), "wb") as out:
        shutil.copyfileobj(src, out)
os.replace(os.path.join(dest, lib + ".part"), os.path.join(dest, lib))
PY
rm -rf "$DEST/wheel"
echo "setup: installed $DEST/$LIB"
