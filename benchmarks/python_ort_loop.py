#!/usr/bin/env python3
"""Plain Python onnxruntime greedy loop with KV cache -- the comparison anchor for gptrt.

Runs the single-graph layout (MODEL_DIR/model.onnx with past_key_values.N.key/value inputs
and present.N.key/value outputs): one prefill of the whole prompt with zero-length past,
then one token per step, feeding each step's presents back as the next step's past.
EOS is ignored so every run decodes exactly --new-tokens tokens. Prints one JSON object.

    /root/venv-models/bin/python benchmarks/python_ort_loop.py \
        --model models/work/small-random-gpt2/single --prompt "Once upon a time" \
        --new-tokens 128 --threads 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

EOS_ID = 50256


def find_tokenizer(model_dir: Path) -> Path:
    for cand in (model_dir / "tokenizer.json", model_dir.parent / "tokenizer.json"):
        if cand.exists():
            return cand
    raise SystemExit(f"error: no tokenizer.json in {model_dir} or its parent")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model folder holding model.onnx (or a path to the .onnx)")
    ap.add_argument("--prompt", default="Once upon a time")
    ap.add_argument("--prompt-tokens", type=int, help="prompt length: the prompt's tokens repeated to N")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = onnxruntime default)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs before the timed one")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs; the best is reported")
    ap.add_argument("--opt-level", default="all", choices=["disable", "basic", "extended", "all"])
    args = ap.parse_args()

    path = Path(args.model)
    onnx_path = path if path.suffix == ".onnx" else path / "model.onnx"
    model_dir = onnx_path.parent

    so = ort.SessionOptions()
    if args.threads:
        so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[args.opt_level]
    t0 = time.perf_counter()
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0

    inputs = {i.name: i for i in sess.get_inputs()}
    past_names = [n for n in inputs if n.startswith("past_key_values.")]
    if not past_names:
        raise SystemExit(f"error: {onnx_path} has no past_key_values.* inputs (not the single-graph layout)")
    n_layer = len(past_names) // 2
    _, n_head, _, head_dim = inputs["past_key_values.0.key"].shape
    cfg_path = model_dir / "config.json"
    if isinstance(n_head, str) or isinstance(head_dim, str):
        cfg = json.loads(cfg_path.read_text())
        n_head, head_dim = cfg["n_head"], cfg["n_embd"] // cfg["n_head"]
    out_names = [o.name for o in sess.get_outputs()]
    present_of = {f"past_key_values.{i}.{kv}": f"present.{i}.{kv}" for i in range(n_layer) for kv in ("key", "value")}
    has_pos = "position_ids" in inputs
    # models/export_fused.py's optional input: the LM head on the last position only (gptrt feeds it too)
    keep = ({"logits_to_keep": np.array(1, dtype=np.int64)}
            if any(i.name == "logits_to_keep" for i in sess.get_overridable_initializers()) else {})

    tok = Tokenizer.from_file(str(find_tokenizer(model_dir)))
    prompt_ids = tok.encode(args.prompt).ids or [EOS_ID]
    if args.prompt_tokens:
        prompt_ids = (prompt_ids * args.prompt_tokens)[: args.prompt_tokens]

    requested = args.new_tokens
    n_positions = json.loads(cfg_path.read_text()).get("n_positions") if cfg_path.exists() else None
    if n_positions and len(prompt_ids) + args.new_tokens > n_positions:
        args.new_tokens = n_positions - len(prompt_ids)
        print(f"note: context is {n_positions} positions; decoding {args.new_tokens} tokens, not {requested}",
              file=sys.stderr)
    if args.new_tokens < 1:
        raise SystemExit("error: the prompt fills the whole context")

    def run_once() -> tuple[float, float, list[int]]:
        ids = np.array([prompt_ids], dtype=np.int64)
        s = ids.shape[1]
        feed = {"input_ids": ids, "attention_mask": np.ones((1, s), dtype=np.int64), **keep}
        if has_pos:
            feed["position_ids"] = np.arange(s, dtype=np.int64)[None, :]
        for n in past_names:
            feed[n] = np.zeros((1, n_head, 0, head_dim), dtype=np.float32)
        t_start = time.perf_counter()
        outs = dict(zip(out_names, sess.run(out_names, feed)))
        nxt = int(np.argmax(outs["logits"][0, -1]))
        t_prefill = time.perf_counter() - t_start
        generated = [nxt]
        total = s
        t_dec = time.perf_counter()
        for _ in range(args.new_tokens - 1):
            feed = {"input_ids": np.array([[nxt]], dtype=np.int64),
                    "attention_mask": np.ones((1, total + 1), dtype=np.int64), **keep}
            if has_pos:
                feed["position_ids"] = np.array([[total]], dtype=np.int64)
            for n in past_names:
                feed[n] = outs[present_of[n]]
            outs = dict(zip(out_names, sess.run(out_names, feed)))
            nxt = int(np.argmax(outs["logits"][0, -1]))
            generated.append(nxt)
            total += 1
        t_decode = time.perf_counter() - t_dec
        return t_prefill, t_decode, generated

    for _ in range(args.warmup):
        run_once()
    best = None
    for _ in range(max(1, args.repeat)):
        r = run_once()
        if best is None or r[0] + r[1] < best[0] + best[1]:
            best = r
    t_prefill, t_decode, generated = best
    n_decode = len(generated) - 1
    print(json.dumps({
        "runner": "python-onnxruntime-loop",
        "model": str(onnx_path),
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "opt_level": args.opt_level,
        "load_s": round(load_s, 4),
        "prompt_tokens": len(prompt_ids),
        "new_tokens": len(generated),
        "new_tokens_requested": requested,
        "prefill_s": round(t_prefill, 6),
        "prompt_tokens_per_s": round(len(prompt_ids) / t_prefill, 2),
        "decode_s": round(t_decode, 6),
        "decode_tokens_per_s": round(n_decode / t_decode, 2) if n_decode else None,
        "total_tokens_per_s": round(len(generated) / (t_prefill + t_decode), 2),
        "generated_ids": generated,
    }))


if __name__ == "__main__":
    main()
