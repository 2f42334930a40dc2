#!/usr/bin/env bash
# Train the demo model on one GPU: three runs side by side (the model is far too small to fill a
# GPU alone), each sized in epochs over the corpus, with dropout, keeping its best validation
# weights; then pick the run with the lowest full-validation loss.
#
#   models/train_demo_gpu.sh [CORPUS_DIR] [OUT_DIR] [MINUTES]
#
# CORPUS_DIR holds train.u16/val.u16 from demo_corpus.py (default models/work/demo-corpus), OUT_DIR
# gets one folder per run, their logs, and sweep.json naming the best (default
# models/work/demo-train-gpu); MINUTES caps every run (default 6: the three run at once).
# PYTHON picks the interpreter (default python3: torch + transformers with CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-models/work/demo-corpus}
out=${2:-models/work/demo-train-gpu}
minutes=${3:-6}
py=${PYTHON:-python3}
mkdir -p "$out"

run() {
    local name=$1
    shift
    "$py" models/train_demo.py --device cuda --corpus "$corpus" --out "$out/$name" --batch 64 \
        --warmup 200 --keep-best --eval-every 200 --save-every 1000000000 --minutes "$minutes" "$@" \
        >"$out/$name.log" 2>&1 || echo "run $name failed: see $out/$name.log" >&2
}
run e10-drop0.1 --epochs 10 --dropout 0.1 &
run e20-drop0.1 --epochs 20 --dropout 0.1 &
run e40-drop0.2 --epochs 40 --dropout 0.2 &
wait

"$py" - "$out" <<'PY'
import json, math, sys
from pathlib import Path

out = Path(sys.argv[1])
runs = {}
for summary in sorted(out.glob("*/summary.json")):
    s = json.loads(summary.read_text())
    runs[summary.parent.name] = {k: s[k] for k in ("val_loss", "val_ppl", "epochs", "dropout", "steps",
                                                     "final_weights_step", "tokens_seen", "train_seconds")}
if not runs:
    sys.exit(f"error: no run in {out} finished (see {out}/*.log)")
best = min(runs, key=lambda k: runs[k]["val_loss"])
(out / "sweep.json").write_text(json.dumps({"best": best, "runs": runs}, indent=2) + "\n")
for name, r in runs.items():
    print(f"{'*' if name == best else ' '} {name}: val ppl {r['val_ppl']:.2f} (weights of step "
          f"{r['final_weights_step']}/{r['steps']}, {r['train_seconds'] / 60:.1f} min)")
PY
