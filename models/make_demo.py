#!/usr/bin/env python3
"""Package the trained demo model: export every layout, quantize, measure, and fill models/demo/.

    nice -n 19 /root/venv-models/bin/python models/make_demo.py     # ~15 min on 2 cores

Needs train_demo.py's output (--train-dir, default models/work/demo-train-gpu/e20-drop0.1, the GPU run:
checkpoint/, log.csv, summary.json) and
demo_corpus.py's validation blocks. Steps:
  1. make_fixtures.export_checkpoint: single/, split/, merged/, nopast/ fp32 in
     models/work/demo-export/ (+ LAYOUTS.md, reference.json, verified against transformers);
  2. quantize.py on every layout (its default, int8-rows: int8 weights, activations quantized per
     row, so batching does not change a sequence's tokens) -> models/work/demo-export-int8/<layout>/;
  3. validation perplexity (demo_eval.py: full-sequence logits over the 256-token validation blocks)
     of the fp32 and int8 single graphs; the random-init number comes from train_demo.py
     (same blocks, same architecture, seed 0, untrained);
  4. the committed variant (--variant, default int8 single) -> models/demo/: model.onnx,
     config.json, generation_config.json (demo sampling defaults), tokenizer.json (a real file);
     then add_hidden_states.py on it (the graph also returns last_hidden_state);
  5. models/demo/heldout.json: perplexity of models/demo/heldout.txt with the committed graph,
     the fp32 graph and the random-init model;
  6. models/demo/loss.png from log.csv, and models/work/demo-metrics.json with every number.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EOS_ID, MODELS_DIR, WORK_DIR, hf_offline  # noqa: E402

hf_offline()

LAYOUTS = ("single", "split", "merged", "nopast")
DEMO_DIR = MODELS_DIR / "demo"
GENERATION_CONFIG = {
    "bos_token_id": EOS_ID, "eos_token_id": EOS_ID, "pad_token_id": EOS_ID,
    "do_sample": True, "top_k": 50, "top_p": 0.95, "temperature": 0.8, "repetition_penalty": 1.2,
    "max_new_tokens": 60,
}


def log(msg: str) -> None:
    print(f"[make_demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def graph_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.onnx"))


def plot_loss(log_csv: Path, png: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(log_csv.open()))
    tr = [(int(r["step"]), float(r["train_loss"])) for r in rows if r["train_loss"]]
    va = [(int(r["step"]), float(r["val_subset"])) for r in rows if r["val_subset"]]
    full = [(int(r["step"]), float(r["val_loss"])) for r in rows if r["val_loss"]]
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=100)
    ax.plot([s for s, _ in tr], [v for _, v in tr], lw=0.6, alpha=0.45, color="tab:blue", label="train (per step)")
    k = 20
    if len(tr) > k:
        sm = [sum(v for _, v in tr[i - k + 1:i + 1]) / k for i in range(k - 1, len(tr))]
        ax.plot([s for s, _ in tr[k - 1:]], sm, lw=1.5, color="tab:blue", label=f"train ({k}-step mean)")
    ax.plot([s for s, _ in va], [v for _, v in va], "o-", ms=3, color="tab:orange",
            label="validation (every 8th block)")
    ax.plot([s for s, _ in full], [v for _, v in full], "s", ms=6, color="tab:red",
            label="validation (all blocks)")
    ax.set_ylim(max(0.0, min(v for _, v in tr + va) - 0.5), min(11.5, max(v for _, v in tr + va) + 0.3))
    run = summary
    while run:  # each run's LR decay (a continued run keeps the earlier runs' curves)
        if run.get("decay_start"):
            x = run["decay_start"] + run.get("step_offset", 0)
            ax.axvline(x, ls="--", lw=0.8, color="gray")
            ax.text(x, ax.get_ylim()[1], " LR decay", va="top", ha="left", fontsize=8, color="gray")
        if run.get("step_offset"):
            ax.axvline(run["step_offset"], ls=":", lw=0.8, color="green")
            ax.text(run["step_offset"], ax.get_ylim()[0], " continued", va="bottom", ha="left", fontsize=8,
                    color="green")
        run = run.get("previous_run")
    ax.set_xlabel(f"optimizer step ({summary['batch_blocks'] * summary['block']:,} tokens each)")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title(f"demo GPT-2 ({summary['parameters'] / 1e6:.1f} M params): final val ppl "
                 f"{summary['val_ppl']:.1f} (random init {summary['val_ppl_random_init']:.0f})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-dir", default=str(WORK_DIR / "demo-train-gpu" / "e20-drop0.1"))
    ap.add_argument("--export", default=str(WORK_DIR / "demo-export"))
    ap.add_argument("--export-int8", default=str(WORK_DIR / "demo-export-int8"))
    ap.add_argument("--variant", default="int8/single", help="PRECISION/LAYOUT to put in models/demo/")
    ap.add_argument("--demo-dir", default=str(DEMO_DIR), help="where the committed variant goes")
    ap.add_argument("--val-limit", type=int, help="only the first N validation blocks (quick checks)")
    ap.add_argument("--skip-export", action="store_true")
    ap.add_argument("--skip-quantize", action="store_true")
    ap.add_argument("--per-channel", action="store_true", help="pass --per-channel to quantize.py")
    args = ap.parse_args()

    import make_fixtures
    import torch
    from demo_eval import OnnxLM, TorchLM, nll_blocks, random_init_model, text_nll, val_blocks

    torch.set_num_threads(2)
    train_dir, exp, exp8 = Path(args.train_dir), Path(args.export), Path(args.export_int8)
    demo = Path(args.demo_dir)
    summary = json.loads((train_dir / "summary.json").read_text())
    metrics: dict = {"train": summary}

    # 1. fp32 exports of every layout, verified against transformers
    if not args.skip_export:
        t = time.time()
        make_fixtures.export_checkpoint(train_dir / "checkpoint", exp)
        metrics["export_seconds"] = round(time.time() - t, 1)
    # 2. int8 of every layout
    if not args.skip_quantize:
        t = time.time()
        for layout in LAYOUTS:
            cmd = [sys.executable, str(MODELS_DIR / "quantize.py"), "--model", str(exp / layout),
                   "--out", str(exp8 / layout)] + (["--per-channel"] if args.per_channel else [])
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"quantize.py failed on {layout}:\n{r.stderr[-3000:]}")
            (exp8 / layout / "quantize_report.json").write_text(r.stdout)
            log(f"int8 {layout}: {graph_bytes(exp8 / layout) / 1e6:.1f} MB")
        metrics["quantize_seconds"] = round(time.time() - t, 1)
    metrics["sizes_bytes"] = {f"fp32/{l}": graph_bytes(exp / l) for l in LAYOUTS}
    metrics["sizes_bytes"].update({f"int8/{l}": graph_bytes(exp8 / l) for l in LAYOUTS})
    log(f"sizes: { {k: round(v / 1e6, 1) for k, v in metrics['sizes_bytes'].items()} }")

    # 3. validation perplexity of the ONNX graphs (same blocks as train_demo.py)
    n_positions = json.loads((exp / "single" / "config.json").read_text())["n_positions"]
    blocks = val_blocks(block=min(256, n_positions))
    if args.val_limit:
        blocks = blocks[: args.val_limit]
    val = {"random_init_torch": {"loss": summary["val_loss_random_init"]},
           "trained_torch": {"loss": summary["val_loss"]}}
    for name, folder in (("fp32_onnx_single", exp / "single"), ("int8_onnx_single", exp8 / "single")):
        t = time.time()
        total, count = nll_blocks(OnnxLM(folder), blocks)
        val[name] = {"loss": total / count, "seconds": round(time.time() - t, 1)}
        log(f"val {name}: loss {total / count:.4f} ppl {math.exp(total / count):.2f} ({time.time() - t:.0f}s)")
    for v in val.values():
        v["perplexity"] = math.exp(v["loss"])
    # the int8 merged and split graphs must agree with the int8 single graph (same weights)
    lm_s = OnnxLM(exp8 / "single")
    import numpy as np

    ref = lm_s.logits(blocks[:2])
    agree = {}
    for layout in ("merged", "split", "nopast"):
        d = float(np.abs(OnnxLM(exp8 / layout).logits(blocks[:2]) - ref).max())
        agree[layout] = d
    val["int8_layouts_max_abs_logit_diff_vs_single"] = agree
    log(f"int8 layouts vs single: {agree}")
    metrics["validation"] = val
    metrics["validation_tokens_predicted"] = int(blocks.shape[0] * (blocks.shape[1] - 1))

    # 4. the committed variant
    precision, layout = args.variant.split("/")
    src = (exp8 if precision == "int8" else exp) / layout
    demo.mkdir(exist_ok=True)
    for old in demo.glob("*.onnx"):
        old.unlink()
    for f in src.glob("*.onnx"):
        shutil.copyfile(f, demo / f.name)
    shutil.copyfile(src / "config.json", demo / "config.json")
    tok = demo / "tokenizer.json"
    if tok.is_symlink() or tok.exists():
        tok.unlink()
    shutil.copyfile((exp / "tokenizer.json").resolve(), tok)
    (demo / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2) + "\n")
    # the final hidden state as an extra output, for features and classification heads
    from add_hidden_states import convert_dir
    convert_dir(demo, demo)
    metrics["committed_variant"] = args.variant

    # 5. held-out snippet
    text = (demo / "heldout.txt").read_text(encoding="utf-8")
    committed = text_nll(OnnxLM(demo), text)
    fp32 = text_nll(OnnxLM(exp / "single"), text)
    rand = text_nll(TorchLM(random_init_model()), text)
    held = {"text_file": "heldout.txt", "tokens": committed[1], "perplexity": round(math.exp(committed[0]), 3),
            "random_init_perplexity": round(math.exp(rand[0]), 1)}
    (demo / "heldout.json").write_text(json.dumps(held, indent=2) + "\n")
    metrics["heldout"] = {**held, "predictions": committed[2], "fp32_perplexity": math.exp(fp32[0]),
                          "graph": f"{args.variant} ({', '.join(f.name for f in demo.glob('*.onnx'))})"}
    log(f"held-out: {metrics['heldout']}")

    # 6. loss curve and metrics
    plot_loss(train_dir / "log.csv", demo / "loss.png", summary)
    files = sorted(p.name for p in demo.iterdir() if p.is_file())
    metrics["demo_files"] = {n: (demo / n).stat().st_size for n in files}
    metrics["demo_total_bytes"] = sum(metrics["demo_files"].values())
    (exp.parent / f"{exp.name}-metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log(f"models/demo/: {metrics['demo_total_bytes'] / 1e6:.1f} MB: {metrics['demo_files']}")


if __name__ == "__main__":
    main()
