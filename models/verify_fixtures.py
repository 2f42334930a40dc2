#!/usr/bin/env python3
"""Run every ONNX layout in a fixture folder with onnxruntime and compare with reference.json.

For each layout (single, split, merged, nopast) and each reference case:
  - the first forward's logits at the last prompt position must match logits_<case>.f32
    within --atol (default 1e-4);
  - greedy decoding (KV cache where the layout has one, full recompute for nopast) must give
    exactly greedy_ids (stopping after EOS like transformers' generate);
and the left-padded batch case must give the same per-row ids.

    /root/venv-models/bin/python models/verify_fixtures.py [models/fixtures/tiny-random-gpt2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

EOS_ID = 50256
LAYOUT_FILES = {
    "single": ["model.onnx"],
    "split": ["decoder_model.onnx", "decoder_with_past_model.onnx"],
    "merged": ["decoder_model_merged.onnx"],
    "nopast": ["model.onnx"],
}


class Runner:
    """One layout; step(ids_new, full_mask, pos_new, full_ids, full_pos) -> last-position logits."""

    def __init__(self, layout: str, folder: Path, threads: int = 1):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self.layout = layout
        self.sessions = [ort.InferenceSession(str(folder / f), so, providers=["CPUExecutionProvider"])
                         for f in LAYOUT_FILES[layout]]
        cfg = json.loads((folder / "config.json").read_text())
        self.n_layer, self.n_head = cfg["n_layer"], cfg["n_head"]
        self.head_dim = cfg["n_embd"] // cfg["n_head"]
        self.past = None

    def reset(self):
        self.past = None

    def _run(self, sess, feed):
        names = {i.name for i in sess.get_inputs()}
        missing = names - feed.keys()
        assert not missing, f"{self.layout}: graph wants inputs we did not build: {missing}"
        out_names = [o.name for o in sess.get_outputs()]
        return dict(zip(out_names, sess.run(out_names, {k: v for k, v in feed.items() if k in names})))

    def _past_feed(self, batch: int) -> dict:
        if self.past is None:
            z = np.zeros((batch, self.n_head, 0, self.head_dim), dtype=np.float32)
            return {f"past_key_values.{i}.{kv}": z for i in range(self.n_layer) for kv in ("key", "value")}
        return self.past

    def _keep_present(self, outs: dict):
        self.past = {f"past_key_values.{i}.{kv}": outs[f"present.{i}.{kv}"]
                     for i in range(self.n_layer) for kv in ("key", "value")}

    def step(self, new_ids, full_mask, new_pos, full_ids, full_pos) -> np.ndarray:
        b = new_ids.shape[0]
        if self.layout == "nopast":
            outs = self._run(self.sessions[0], {"input_ids": full_ids, "attention_mask": full_mask,
                                                "position_ids": full_pos})
            return outs["logits"][:, -1]
        feed = {"input_ids": new_ids, "attention_mask": full_mask, "position_ids": new_pos}
        if self.layout == "single":
            outs = self._run(self.sessions[0], {**feed, **self._past_feed(b)})
        elif self.layout == "merged":
            use_cache = np.array([self.past is not None], dtype=bool)
            outs = self._run(self.sessions[0], {**feed, **self._past_feed(b), "use_cache_branch": use_cache})
        elif self.layout == "split":
            if self.past is None:
                outs = self._run(self.sessions[0], feed)
            else:
                outs = self._run(self.sessions[1], {**feed, **self.past})
        else:
            raise ValueError(self.layout)
        self._keep_present(outs)
        return outs["logits"][:, -1]


def positions(mask: np.ndarray) -> np.ndarray:
    pos = np.cumsum(mask, axis=-1) - 1
    return np.where(mask == 0, 1, pos).astype(np.int64)


def greedy(runner: Runner, rows: list[list[int]], max_new: int):
    """Left-padded batch greedy decode; returns (first-step logits [B,V], generated ids per row)."""
    runner.reset()
    width = max(len(r) for r in rows)
    ids = np.array([[EOS_ID] * (width - len(r)) + r for r in rows], dtype=np.int64)
    mask = np.array([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=np.int64)
    pos = positions(mask)
    logits = runner.step(ids, mask, pos, ids, pos)
    first = logits.copy()
    done = np.zeros(len(rows), dtype=bool)
    gen = [[] for _ in rows]
    for step in range(max_new):
        nxt = np.where(done, EOS_ID, logits.argmax(-1)).astype(np.int64)
        for g, t, d in zip(gen, nxt, done):
            if not d:
                g.append(int(t))
        done |= nxt == EOS_ID
        if done.all() or step == max_new - 1:
            break
        new_pos = pos[:, -1:] + 1
        ids = np.concatenate([ids, nxt[:, None]], axis=1)
        mask = np.concatenate([mask, np.ones((len(rows), 1), dtype=np.int64)], axis=1)
        pos = np.concatenate([pos, new_pos], axis=1)
        logits = runner.step(nxt[:, None], mask, new_pos, ids, pos)
    return first, gen


def verify(folder: Path, atol: float = 1e-4) -> bool:
    folder = Path(folder)
    ref = json.loads((folder / "reference.json").read_text(encoding="utf-8"))
    max_new = ref["max_new_tokens"]
    ok = True
    for layout in LAYOUT_FILES:
        if not (folder / layout).is_dir():
            print(f"[verify] {layout}: missing, skipped")
            continue
        runner = Runner(layout, folder / layout)
        ok_before, ok = ok, True
        worst = 0.0
        for case in ref["cases"]:
            want_logits = np.fromfile(folder / case["logits_file"], dtype="<f4")
            first, gen = greedy(runner, [case["prompt_ids"]], max_new)
            diff = float(np.abs(first[0] - want_logits).max())
            worst = max(worst, diff)
            if diff > atol:
                ok = False
                print(f"[verify] FAIL {layout}/{case['name']}: logits max abs diff {diff:.3e} > {atol}")
            if gen[0] != case["greedy_ids"]:
                ok = False
                print(f"[verify] FAIL {layout}/{case['name']}: greedy {gen[0]} != {case['greedy_ids']}")
        b = ref["batch"]
        rows = [next(c for c in ref["cases"] if c["name"] == n)["prompt_ids"] for n in b["names"]]
        first, gen = greedy(runner, rows, max_new)
        batch_ok = gen == b["greedy_ids"]
        for i, n in enumerate(b["names"]):
            want_logits = np.fromfile(folder / f"logits_{n}.f32", dtype="<f4")
            worst = max(worst, float(np.abs(first[i] - want_logits).max()))
        if not batch_ok or worst > atol:
            ok = False
            print(f"[verify] FAIL {layout}/batch: {gen} != {b['greedy_ids']} (or logits diff {worst:.3e})")
        print(f"[verify] {layout}: {len(ref['cases'])} cases + batch of {len(rows)}: "
              f"{'OK' if ok else 'MISMATCH'}, worst first-step logits diff {worst:.2e}")
        ok = ok and ok_before
    print(f"[verify] {'all layouts match the reference' if ok else 'FAILED'}")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parent / "fixtures" / "tiny-random-gpt2"))
    ap.add_argument("--atol", type=float, default=1e-4)
    args = ap.parse_args()
    sys.exit(0 if verify(Path(args.folder), args.atol) else 1)


if __name__ == "__main__":
    main()
