#!/usr/bin/env python3
"""Perplexity of GPT-2 models (ONNX graphs through onnxruntime, or transformers checkpoints) on the
demo corpus' validation blocks or on a text file.

    /root/venv-models/bin/python models/demo_eval.py --onnx models/demo            # validation set
    /root/venv-models/bin/python models/demo_eval.py --checkpoint models/work/demo-train-gpu/e20-drop0.1/checkpoint
    /root/venv-models/bin/python models/demo_eval.py --random-init                  # same arch, seed 0
    /root/venv-models/bin/python models/demo_eval.py --onnx models/demo --text models/demo/heldout.txt

Perplexity = exp(mean next-token cross-entropy): each sequence is run once with full-sequence
logits (no past: zero-length past tensors for the single graph, use_cache_branch = false for the
merged graph), and every position except the last predicts the next token. The validation set is
models/work/demo-corpus/val.u16 cut into non-overlapping 256-token blocks (as in train_demo.py);
a text file is one sequence (it must fit in n_positions). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import TOKENIZER_DIR, WORK_DIR, hf_offline  # noqa: E402

hf_offline()

GRAPH_NAMES = ("model.onnx", "decoder_model_merged.onnx", "decoder_model.onnx")


def log_softmax_nll(logits: np.ndarray, targets: np.ndarray) -> float:
    """Sum of -log p(target) over positions; logits [N, V] float32, targets [N]."""
    x = logits.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(x - m).sum(axis=-1)) + m[:, 0]
    return float((lse - x[np.arange(len(targets)), targets]).sum())


class OnnxLM:
    """Full-sequence logits from an exported GPT-2 graph (single, merged, split prompt graph, nopast)."""

    def __init__(self, folder: Path, threads: int = 2):
        import onnxruntime as ort

        folder = Path(folder)
        path = next((folder / n for n in GRAPH_NAMES if (folder / n).exists()), None)
        if path is None:
            raise SystemExit(f"error: no {' / '.join(GRAPH_NAMES)} in {folder}")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.path = path
        cfg = json.loads((folder / "config.json").read_text())
        self.n_head, self.head_dim = cfg["n_head"], cfg["n_embd"] // cfg["n_head"]
        self.n_positions = cfg["n_positions"]
        self.inputs = {i.name: i for i in self.sess.get_inputs()}

    def logits(self, ids: np.ndarray) -> np.ndarray:
        b, s = ids.shape
        feed = {"input_ids": ids.astype(np.int64),
                "attention_mask": np.ones((b, s), dtype=np.int64),
                "position_ids": np.broadcast_to(np.arange(s, dtype=np.int64), (b, s)).copy()}
        for name in self.inputs:
            if name.startswith("past_key_values."):
                feed[name] = np.zeros((b, self.n_head, 0, self.head_dim), dtype=np.float32)
            elif name == "use_cache_branch":
                feed[name] = np.array([False])
        feed = {k: v for k, v in feed.items() if k in self.inputs}
        return self.sess.run(["logits"], feed)[0]


class TorchLM:
    def __init__(self, model, threads: int = 2):
        import torch

        torch.set_num_threads(threads)
        self.model = model.eval()

    def logits(self, ids: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model(input_ids=torch.from_numpy(ids.astype(np.int64))).logits.float().numpy()


def nll_blocks(lm, blocks: np.ndarray, batch: int = 8) -> tuple[float, int]:
    """(sum of next-token NLL, number of predicted tokens) over [N, T] blocks."""
    total, count = 0.0, 0
    for i in range(0, len(blocks), batch):
        x = blocks[i: i + batch]
        lg = lm.logits(x)
        for r in range(x.shape[0]):
            total += log_softmax_nll(lg[r, :-1], x[r, 1:])
            count += x.shape[1] - 1
    return total, count


def val_blocks(corpus: Path = WORK_DIR / "demo-corpus", block: int = 256, split: str = "val") -> np.ndarray:
    ids = np.fromfile(corpus / f"{split}.u16", dtype="<u2").astype(np.int64)
    n = ids.size // block
    return ids[: n * block].reshape(n, block)


def text_ids(text: str) -> list[int]:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json")).encode(text).ids


def text_nll(lm, text: str) -> tuple[float, int, int]:
    """(mean NLL over the N-1 predictions, N tokens, N-1) for one text run as one sequence."""
    ids = np.array([text_ids(text)], dtype=np.int64)
    lg = lm.logits(ids)
    total = log_softmax_nll(lg[0, :-1], ids[0, 1:])
    return total / (ids.shape[1] - 1), ids.shape[1], ids.shape[1] - 1


def random_init_model(seed: int = 0):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_demo import make_model

    return make_model(seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--onnx", help="a model folder with model.onnx or decoder_model_merged.onnx + config.json")
    g.add_argument("--checkpoint", help="a transformers checkpoint folder")
    g.add_argument("--random-init", action="store_true", help="train_demo.py's architecture, seed 0, untrained")
    ap.add_argument("--text", help="a text file to score as one sequence (default: the validation blocks)")
    ap.add_argument("--corpus", default=str(WORK_DIR / "demo-corpus"))
    ap.add_argument("--limit", type=int, help="only the first N validation blocks")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    if args.onnx:
        lm, what = OnnxLM(Path(args.onnx), args.threads), args.onnx
    elif args.checkpoint:
        from transformers import GPT2LMHeadModel

        lm, what = TorchLM(GPT2LMHeadModel.from_pretrained(args.checkpoint), args.threads), args.checkpoint
    else:
        lm, what = TorchLM(random_init_model(), args.threads), "random-init"

    if args.text:
        nll, n, preds = text_nll(lm, Path(args.text).read_text(encoding="utf-8"))
        res = {"model": what, "text": args.text, "tokens": n, "predictions": preds, "loss": nll,
               "perplexity": math.exp(nll)}
    else:
        blocks = val_blocks(Path(args.corpus))
        if args.limit:
            blocks = blocks[: args.limit]
        total, count = nll_blocks(lm, blocks)
        res = {"model": what, "blocks": len(blocks), "predictions": count, "loss": total / count,
               "perplexity": math.exp(total / count)}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
