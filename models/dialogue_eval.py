#!/usr/bin/env python3
"""Does a GPT-2 ONNX model end its dialogue replies at the next speaker tag? And its perplexities.

    /root/venv-models/bin/python models/dialogue_eval.py --onnx models/demo
    /root/venv-models/bin/python models/dialogue_eval.py --onnx models/demo-dialogue --out result.json

Prompts: every Bot turn of dialogue_corpus.py's held-out chunks, as `gptrt chat` would send it:
the persona line, the turns before it ("User: ..." / "Bot: ..." lines) and "Bot:". Each is
sampled once (numpy seed = the prompt's number) with the model folder's generation_config.json
(the demo's: top_k 50, top_p 0.95, temperature 0.8, repetition_penalty 1.2, max_new_tokens 60),
through onnxruntime with the KV cache (the single layout), until <|endoftext|>, the user tag
after a newline, or max_new_tokens. Each reply is classified by what follows its first newline:
  tag         "User:": the reply ended at the next speaker tag (what `gptrt chat` stops on)
  bot_tag     "Bot:": the model went on to speak again
  newline_eos <|endoftext|>: the line ended, then the text (a clean end, but not the tag)
  other_line  anything else (narration, a new paragraph)
  eos         <|endoftext|> before any newline
  length      no newline within max_new_tokens
`stop_string_rate` is the share whose text holds "\\nUser:" anywhere (a stop string match).

Perplexity (exp of the mean next-token cross-entropy, full-sequence logits as demo_eval.py): the
held-out dialogue chunks, each one sequence, and models/demo/heldout.txt (the old held-out text).
Prints one JSON object (and writes it to --out).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EOS_ID, MODELS_DIR, TOKENIZER_DIR, WORK_DIR, hf_offline  # noqa: E402

hf_offline()

USER_TAG = "User:"
BOT_TAG = "Bot:"


def prompts(heldout: Path) -> list[dict]:
    out = []
    for line in heldout.open(encoding="utf-8"):
        c = json.loads(line)
        lines = [c["persona"]]
        for t in c["turns"]:
            if t["role"] == "bot":
                out.append({"prompt": "\n".join(lines) + f"\n{BOT_TAG}", "reference": t["text"]})
            lines.append(f"{USER_TAG if t['role'] == 'user' else BOT_TAG} {t['text']}")
    return out


class Generator:
    """Sampling with the KV cache through an exported single-layout graph (HF's processor order:
    repetition penalty, temperature, top-k, top-p)."""

    def __init__(self, folder: Path, threads: int):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(str(folder / "model.onnx"), so, providers=["CPUExecutionProvider"])
        cfg = json.loads((folder / "config.json").read_text())
        self.gen = json.loads((folder / "generation_config.json").read_text())
        self.n_layer, self.n_head = cfg["n_layer"], cfg["n_head"]
        self.head_dim = cfg["n_embd"] // cfg["n_head"]
        self.n_positions = cfg["n_positions"]
        self.input_names = {i.name for i in self.sess.get_inputs()}
        self.output_names = [o.name for o in self.sess.get_outputs()]

    def step(self, ids: list[int], past: dict | None, start: int):
        feed = {"input_ids": np.array([ids], dtype=np.int64),
                "attention_mask": np.ones((1, start + len(ids)), dtype=np.int64),
                "position_ids": np.arange(start, start + len(ids), dtype=np.int64)[None]}
        for i in range(self.n_layer):
            for kv in ("key", "value"):
                name = f"past_key_values.{i}.{kv}"
                feed[name] = past[f"present.{i}.{kv}"] if past else np.zeros(
                    (1, self.n_head, 0, self.head_dim), dtype=np.float32)
        feed = {k: v for k, v in feed.items() if k in self.input_names}
        outs = dict(zip(self.output_names, self.sess.run(self.output_names, feed)))
        return outs["logits"][0, -1].astype(np.float64), outs

    def warp(self, logits: np.ndarray, seen: list[int], rng) -> int:
        g = self.gen
        pen = g.get("repetition_penalty", 1.0)
        if pen != 1.0 and seen:
            idx = np.unique(seen)
            v = logits[idx]
            logits[idx] = np.where(v > 0, v / pen, v * pen)
        if not g.get("do_sample", False):
            return int(logits.argmax())
        logits = logits / g.get("temperature", 1.0)
        k = g.get("top_k", 0)
        if k and k < logits.size:
            kth = np.partition(logits, -k)[-k]
            logits = np.where(logits < kth, -np.inf, logits)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top_p = g.get("top_p", 1.0)
        if top_p < 1.0:
            order = np.argsort(-p, kind="stable")
            cum = np.cumsum(p[order])
            # keep the smallest prefix whose mass reaches top_p (HF keeps the token that crosses it)
            cut = int(np.searchsorted(cum, top_p)) + 1
            keep = np.zeros_like(p, dtype=bool)
            keep[order[:cut]] = True
            p = np.where(keep, p, 0.0)
            p /= p.sum()
        return int(rng.choice(p.size, p=p))

    def reply(self, prompt_ids: list[int], seed: int, decode) -> tuple[str, list[int]]:
        rng = np.random.default_rng(seed)
        max_new = self.gen.get("max_new_tokens", 60)
        ids = list(prompt_ids)
        logits, past = self.step(ids, None, 0)
        new: list[int] = []
        while len(new) < max_new and len(ids) < self.n_positions:
            t = self.warp(logits, ids, rng)
            new.append(t)
            ids.append(t)
            if t == EOS_ID or f"\n{USER_TAG}" in decode(new):
                break
            logits, past = self.step([t], past, len(ids) - 1)
        return decode(new), new


def classify(text: str, ended_eos: bool) -> str:
    if "\n" in text:
        after = text.split("\n", 1)[1].lstrip("\n")
        if after.startswith(USER_TAG):
            return "tag"
        if after.startswith(BOT_TAG):
            return "bot_tag"
        if after.startswith("<|endoftext|>"):
            return "newline_eos"
        return "other_line"
    return "eos" if ended_eos else "length"


def perplexities(folder: Path, heldout_u16: Path, threads: int) -> dict:
    from demo_eval import OnnxLM, log_softmax_nll, text_ids

    lm = OnnxLM(folder, threads)
    ids = np.fromfile(heldout_u16, dtype="<u2").astype(np.int64)
    total, count, cur = 0.0, 0, []
    for t in list(ids) + [EOS_ID]:
        if t == EOS_ID:
            if len(cur) > 1:
                x = np.array([cur], dtype=np.int64)
                total += log_softmax_nll(lm.logits(x)[0, :-1], x[0, 1:])
                count += len(cur) - 1
            cur = []
        else:
            cur.append(int(t))
    old = np.array([text_ids((MODELS_DIR / "demo" / "heldout.txt").read_text(encoding="utf-8"))])
    old_nll = log_softmax_nll(lm.logits(old)[0, :-1], old[0, 1:]) / (old.shape[1] - 1)
    return {"dialogue_heldout_ppl": math.exp(total / count), "dialogue_heldout_predictions": count,
            "old_heldout_ppl": math.exp(old_nll)}


def reclassify(path: Path) -> dict:
    """Recount a saved result's replies with the current classify() (no generation)."""
    res = json.loads(path.read_text())
    kinds: Counter = Counter()
    for r in res["replies"]:
        r["kind"] = classify(r["reply"], r["reply"].endswith("<|endoftext|>") and "\n" not in r["reply"])
        kinds[r["kind"]] += 1
    res["kinds"] = dict(kinds)
    res["ends_at_tag_rate"] = kinds["tag"] / len(res["replies"])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True, help="a single-layout model folder (model.onnx + configs)")
    ap.add_argument("--dialogue", default=str(WORK_DIR / "dialogue-corpus"), help="dialogue_corpus.py's output")
    ap.add_argument("--limit", type=int, help="only the first N prompts")
    ap.add_argument("--out", help="also write the JSON result (with every reply) here")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repetition-penalty", type=float,
                    help="override the generation config's (it also penalizes the newline and tag tokens "
                         "of the prompt, which a reply needs to end at the tag)")
    ap.add_argument("--perplexity-only", action="store_true",
                    help="update --out's perplexities and reply kinds, without generating again")
    args = ap.parse_args()

    from tokenizers import Tokenizer

    if args.perplexity_only:
        if not args.out:
            sys.exit("error: --perplexity-only needs --out (an earlier result to update)")
        res = reclassify(Path(args.out))
        res.update(perplexities(Path(args.onnx), Path(args.dialogue) / "heldout.u16", args.threads))
        Path(args.out).write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
        print(json.dumps({k: v for k, v in res.items() if k != "replies"}))
        return

    folder = Path(args.onnx)
    tok = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))
    decode = lambda ids: tok.decode(ids, skip_special_tokens=False)  # noqa: E731
    gen = Generator(folder, args.threads)
    if args.repetition_penalty is not None:
        gen.gen["repetition_penalty"] = args.repetition_penalty
    items = prompts(Path(args.dialogue) / "heldout.jsonl")[: args.limit]
    kinds: Counter = Counter()
    replies = []
    stop_hits, lengths = 0, []
    for i, it in enumerate(items):
        ids = tok.encode(it["prompt"]).ids
        text, new = gen.reply(ids, i, decode)
        kind = classify(text, bool(new) and new[-1] == EOS_ID)
        kinds[kind] += 1
        stop_hits += f"\n{USER_TAG}" in text
        if kind == "tag":
            lengths.append(len(tok.encode(text.split("\n", 1)[0]).ids))
        replies.append({"seed": i, "kind": kind, "reply": text})
    n = len(items)
    res = {
        "model": str(folder), "prompts": n, "generation_config": gen.gen,
        "ends_at_tag_rate": kinds["tag"] / n, "stop_string_rate": stop_hits / n, "kinds": dict(kinds),
        "tag_reply_tokens_median": float(np.median(lengths)) if lengths else None,
    }
    res.update(perplexities(folder, Path(args.dialogue) / "heldout.u16", args.threads))
    print(json.dumps(res))
    if args.out:
        res["replies"] = replies
        Path(args.out).write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
