#!/usr/bin/env python3
"""Classification throughput, gptrt against transformers' text-classification pipeline on the same
checkpoint (batch 32, texts of 64 tokens, 2 threads each), taking turns so that a busy machine
slows both alike; medians over the rounds.

    cargo build --release -p gptrt --example classify_throughput
    /root/venv-models/bin/python benchmarks/classify_speed.py \\
        --checkpoint /work/artifacts/demo-checkpoint --graph models/demo --graph /tmp/demo-fp32

Each --graph is a gptrt model folder exported from --checkpoint (models/export_fused.py
--hidden-states, optionally models/quantize.py: --method int8-static --calibration
benchmarks/data/topics/train.jsonl is the fastest batch-invariant one). gptrt's side is
benchmarks/classify_throughput.rs (features in batches of 32 and a linear head); the pipeline's
is GPT2ForSequenceClassification (task_heads_eval.transformers_throughput). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from task_heads_eval import transformers_throughput  # noqa: E402


def gptrt_throughput(example: str, graph: str, texts: int) -> float:
    out = subprocess.run([example, graph, str(texts)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["head_texts_per_second"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="/work/artifacts/demo-checkpoint")
    ap.add_argument("--graph", action="append", required=True, help="gptrt model folder (repeatable)")
    ap.add_argument("--texts", type=int, default=320)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--example", default=str(ROOT / "target/release/examples/classify_throughput"))
    args = ap.parse_args()
    pipeline, graphs = [], {graph: [] for graph in args.graph}
    for _ in range(args.rounds):
        pipeline.append(transformers_throughput(args.texts, args.checkpoint)["texts_per_second"])
        for graph in args.graph:
            graphs[graph].append(gptrt_throughput(args.example, graph, args.texts))
    base = statistics.median(pipeline)
    report = {
        "checkpoint": args.checkpoint,
        "texts": args.texts,
        "rounds": args.rounds,
        "transformers_texts_per_second": base,
        "gptrt": {
            graph: {"texts_per_second": statistics.median(runs), "speedup": statistics.median(runs) / base}
            for graph, runs in graphs.items()
        },
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
