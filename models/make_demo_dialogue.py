#!/usr/bin/env python3
"""Package finetune_dialogue.py's checkpoint like the demo model and decide where it goes.

    nice -n 19 /root/venv-models/bin/python models/make_demo_dialogue.py     # ~15 min on 2 shared cores

Steps (make_demo.py's pipeline, the single layout only):
  1. optimum export of the checkpoint, `single` layout (make_fixtures.export_main, opset 18, fp32)
     -> models/work/demo-dialogue-export/single/;
  2. quantize.py --method int8-rows (int8 weights, activations quantized per row) -> .../single-int8/;
  3. dialogue_eval.py on the int8 graph and on the committed models/demo/ (the "before"): share of
     replies ending at the next speaker tag, held-out dialogue and old held-out perplexities;
  4. the gate: the new graph replaces models/demo/ only when its perplexity on the old held-out text
     (models/demo/heldout.txt) is at most --max-worse (5 %) above the committed graph's; otherwise
     (or with --folder) it goes to models/demo-dialogue/. The folder gets model.onnx, config.json,
     generation_config.json (the demo's sampling defaults), tokenizer.json, and dialogue_eval.json
     (before/after figures, a few replies); models/demo/ also gets a new heldout.json.
Writes models/work/demo-dialogue-metrics.json with every number.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MODELS_DIR, TOKENIZER_DIR, WORK_DIR, hf_offline  # noqa: E402

hf_offline()


def log(msg: str) -> None:
    print(f"[make_demo_dialogue {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def evaluate(folder: Path, out_json: Path, threads: int) -> dict:
    r = subprocess.run([sys.executable, str(MODELS_DIR / "dialogue_eval.py"), "--onnx", str(folder),
                        "--out", str(out_json), "--threads", str(threads)], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"dialogue_eval.py failed on {folder}:\n{r.stderr[-3000:]}")
    return json.loads(out_json.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(WORK_DIR / "demo-dialogue-finetune" / "checkpoint"))
    ap.add_argument("--work", default=str(WORK_DIR / "demo-dialogue-export"))
    ap.add_argument("--max-worse", type=float, default=0.05,
                    help="largest relative rise of the old held-out perplexity that may replace models/demo/")
    ap.add_argument("--folder", choices=["auto", "demo", "demo-dialogue"], default="auto")
    ap.add_argument("--skip-export", action="store_true", help="reuse --work's graphs")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import make_fixtures

    ckpt, work = Path(args.checkpoint), Path(args.work)
    single, int8 = work / "single", work / "single-int8"
    metrics: dict = {"checkpoint": str(ckpt)}
    if not args.skip_export:
        if work.exists():
            shutil.rmtree(work)
        t = time.time()
        make_fixtures.export_main(ckpt, single, "text-generation-with-past")
        shutil.copyfile(TOKENIZER_DIR / "tokenizer.json", single / "tokenizer.json")
        log(f"exported {single} ({time.time() - t:.0f} s)")
        t = time.time()
        r = subprocess.run([sys.executable, str(MODELS_DIR / "quantize.py"), "--model", str(single), "--out",
                            str(int8), "--method", "int8-rows"], capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"quantize.py failed:\n{r.stderr[-3000:]}")
        (work / "quantize_report.json").write_text(r.stdout)
        log(f"quantized {int8} ({time.time() - t:.0f} s)")
    # The demo's sampling defaults, not the checkpoint's bare generation config.
    shutil.copyfile(MODELS_DIR / "demo" / "generation_config.json", int8 / "generation_config.json")

    before_json = WORK_DIR / "dialogue-eval" / "before.json"
    before_json.parent.mkdir(parents=True, exist_ok=True)
    before = json.loads(before_json.read_text()) if before_json.exists() else evaluate(
        MODELS_DIR / "demo", before_json, args.threads)
    after = evaluate(int8, WORK_DIR / "dialogue-eval" / "after.json", args.threads)
    keys = ("ends_at_tag_rate", "stop_string_rate", "kinds", "tag_reply_tokens_median", "dialogue_heldout_ppl",
            "old_heldout_ppl", "prompts")
    metrics["before"] = {k: before[k] for k in keys}
    metrics["after"] = {k: after[k] for k in keys}
    worse = after["old_heldout_ppl"] / before["old_heldout_ppl"] - 1
    metrics["old_heldout_relative_change"] = worse
    target = args.folder if args.folder != "auto" else ("demo" if worse <= args.max_worse else "demo-dialogue")
    metrics["installed_to"] = f"models/{target}"
    log(f"old held-out perplexity {before['old_heldout_ppl']:.2f} -> {after['old_heldout_ppl']:.2f} "
        f"({worse:+.1%}); replies ending at the tag {before['ends_at_tag_rate']:.0%} -> "
        f"{after['ends_at_tag_rate']:.0%}: installing into models/{target}/")

    dest = MODELS_DIR / target
    dest.mkdir(exist_ok=True)
    shutil.copyfile(int8 / "model.onnx", dest / "model.onnx")
    for name in ("config.json", "generation_config.json"):
        shutil.copyfile(int8 / name, dest / name)
    shutil.copyfile(TOKENIZER_DIR / "tokenizer.json", dest / "tokenizer.json")
    card = {"before": metrics["before"], "after": metrics["after"],
            "before_model": "the previous models/demo/ (pre-trained only)",
            "sample_replies": after["replies"][:6]}
    (dest / "dialogue_eval.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    if target == "demo":
        held = json.loads((dest / "heldout.json").read_text())
        held["perplexity"] = round(after["old_heldout_ppl"], 2)
        (dest / "heldout.json").write_text(json.dumps(held, indent=2) + "\n")
    (WORK_DIR / "demo-dialogue-metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log(f"done: {dest} ({(dest / 'model.onnx').stat().st_size / 1e6:.1f} MB graph)")


if __name__ == "__main__":
    main()
