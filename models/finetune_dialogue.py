#!/usr/bin/env python3
"""Teach the demo model to hold a dialogue: continue training it on turn-formatted Austen dialogue.

    nohup nice -n 19 /root/venv-models/bin/python models/finetune_dialogue.py &    # ~40 min on 2 cores

Starts from the demo checkpoint (default /work/artifacts/demo-checkpoint, made from the committed
graph by checkpoint_from_onnx.py) and trains on dialogue_corpus.py's chunks ("persona line", then
"User: ..." / "Bot: ..." lines), so that a reply ends with a newline and the next speaker tag, the
stop string of `gptrt chat`. To limit forgetting, a share (--mix, default 0.5) of every batch is
256-token blocks of the demo's own training stream (demo_corpus.py's train.u16).

Data: the dialogue chunks, joined with <|endoftext|>, packed into 256-token blocks (blocks start at
a chunk boundary where one is within reach, so most blocks open with a persona line); the mixed-in
blocks are drawn at random positions of train.u16 (seeded). Batch --batch blocks, fp32, 2 threads,
dropout 0.1, AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), LR --lr after --warmup steps,
cosine to lr/10 at --steps. Deterministic for a given seed and thread count, unless --minutes
(a wall-clock cap for a shared machine) stops it before --steps.

Every --eval-every steps (and at the start and the end) it logs the perplexity of the held-out
dialogue (every held-out chunk as its own sequence) and of models/demo/heldout.txt (the old
held-out text) to log.csv. Writes --out (default models/work/demo-dialogue-finetune/): checkpoint/
(with the demo's config, generation config and tokenizer), log.csv and result.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EOS_ID, MODELS_DIR, TOKENIZER_DIR, WORK_DIR, hf_offline  # noqa: E402

hf_offline()

DEFAULT_CHECKPOINT = Path("/work/artifacts/demo-checkpoint")


def log(msg: str) -> None:
    print(f"[finetune_dialogue {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def dialogue_blocks(ids, block: int):
    """Pack the chunk stream into blocks that start at a chunk (an <|endoftext|> + 1) when one
    starts in the first half of the window, else at the window's start."""
    import numpy as np

    starts = np.flatnonzero(ids == EOS_ID) + 1
    blocks, pos = [], 0
    while pos + block <= ids.size:
        blocks.append(ids[pos:pos + block])
        nxt = starts[(starts > pos + block // 2) & (starts <= pos + block)]
        pos = int(nxt[-1]) if nxt.size else pos + block
    return np.stack(blocks)


def held_sequences(path: Path) -> list:
    """Held-out chunks, each one sequence (their <|endoftext|> separators dropped)."""
    import numpy as np

    ids = np.fromfile(path, dtype="<u2").astype(np.int64)
    seqs, cur = [], []
    for t in ids:
        if t == EOS_ID:
            if len(cur) > 1:
                seqs.append(np.array(cur, dtype=np.int64))
            cur = []
        else:
            cur.append(int(t))
    return seqs


def mean_nll(model, seqs) -> float:
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for s in seqs:
            x = torch.as_tensor(s)[None]
            logits = model(input_ids=x).logits[0, :-1].float()
            total += float(F.cross_entropy(logits, x[0, 1:], reduction="sum"))
            count += x.shape[1] - 1
    model.train(was_training)
    return total / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    ap.add_argument("--dialogue", default=str(WORK_DIR / "dialogue-corpus"), help="dialogue_corpus.py's output")
    ap.add_argument("--corpus", default=str(WORK_DIR / "demo-corpus"), help="demo_corpus.py's output")
    ap.add_argument("--out", default=str(WORK_DIR / "demo-dialogue-finetune"))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=45.0,
                    help="stop training early (at the step then reached) after this long; 0: no limit")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--mix", type=float, default=0.5, help="share of each batch from the demo's own corpus")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numpy as np
    import torch
    from tokenizers import Tokenizer
    from transformers import GPT2LMHeadModel

    t0 = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dlg = Path(args.dialogue)
    for need in (dlg / "train.u16", dlg / "heldout.u16", Path(args.corpus) / "train.u16"):
        if not need.exists():
            sys.exit(f"error: {need} missing (run models/demo_corpus.py, then models/dialogue_corpus.py)")

    train_dlg = dialogue_blocks(np.fromfile(dlg / "train.u16", dtype="<u2").astype(np.int64), args.block)
    general = np.fromfile(Path(args.corpus) / "train.u16", dtype="<u2").astype(np.int64)
    held_dlg = held_sequences(dlg / "heldout.u16")
    tok = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))
    old_text = (MODELS_DIR / "demo" / "heldout.txt").read_text(encoding="utf-8")
    held_old = [np.array(tok.encode(old_text).ids, dtype=np.int64)]
    n_general = int(round(args.batch * args.mix))
    n_dialogue = args.batch - n_general
    log(f"{len(train_dlg)} dialogue blocks, {general.size:,} general tokens; batch {n_dialogue} dialogue + "
        f"{n_general} general blocks; {len(held_dlg)} held-out dialogue chunks")

    model = GPT2LMHeadModel.from_pretrained(args.checkpoint)
    if args.dropout:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = args.dropout

    rows = []

    def evaluate(step: int, loss: float | None = None) -> dict:
        r = {"step": step, "seconds": round(time.time() - t0, 1), "loss": loss,
             "dialogue_ppl": math.exp(mean_nll(model, held_dlg)), "old_heldout_ppl": math.exp(mean_nll(model, held_old))}
        rows.append(r)
        with (out / "log.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(r))
            w.writeheader()
            w.writerows(rows)
        log(f"step {step}: held-out dialogue ppl {r['dialogue_ppl']:.2f}, old held-out ppl {r['old_heldout_ppl']:.2f}")
        return r

    before = evaluate(0)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    rng = np.random.default_rng(args.seed)
    order, cursor = rng.permutation(len(train_dlg)), 0
    t_train = time.time()
    model.train()
    steps_done = 0
    for step in range(args.steps):
        if args.minutes and time.time() - t_train > args.minutes * 60:
            log(f"time budget of {args.minutes} min reached after {step} steps: stopping early")
            break
        if cursor + n_dialogue > len(order):
            order, cursor = rng.permutation(len(train_dlg)), 0
        rows_d = train_dlg[order[cursor:cursor + n_dialogue]]
        cursor += n_dialogue
        offs = rng.integers(0, general.size - args.block, size=n_general)
        rows_g = np.stack([general[o:o + args.block] for o in offs]) if n_general else np.zeros((0, args.block), np.int64)
        x = torch.as_tensor(np.concatenate([rows_d, rows_g]))
        if step < args.warmup:
            lr = args.lr * (step + 1) / args.warmup
        else:
            p = (step - args.warmup) / max(1, args.steps - args.warmup)
            lr = args.lr * 0.1 + 0.5 * args.lr * 0.9 * (1 + math.cos(math.pi * p))
        for gr in opt.param_groups:
            gr["lr"] = lr
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps_done = step + 1
        if (step + 1) % 10 == 0:
            rate = (step + 1) * args.batch * args.block / (time.time() - t_train)
            log(f"step {step + 1}/{args.steps} loss {loss.item():.4f} lr {lr:.2e} ({rate:.0f} tokens/s)")
        if (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            evaluate(step + 1, loss.item())
    train_seconds = time.time() - t_train
    after = evaluate(steps_done, loss.item())

    model.eval()
    ck = out / "checkpoint"
    model.config.resid_pdrop = model.config.embd_pdrop = model.config.attn_pdrop = 0.0
    model.save_pretrained(ck)
    src = Path(args.checkpoint)
    for name in ("generation_config.json", "tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"):
        if (src / name).exists():
            shutil.copyfile(src / name, ck / name)
    result = {
        "checkpoint": str(args.checkpoint), "steps": steps_done, "planned_steps": args.steps, "batch": args.batch, "block": args.block,
        "mix": args.mix, "lr": args.lr, "dropout": args.dropout, "seed": args.seed,
        "dialogue_train_blocks": int(len(train_dlg)),
        "tokens_seen": steps_done * args.batch * args.block,
        "train_seconds": round(train_seconds, 1), "total_seconds": round(time.time() - t0, 1),
        "before": before, "after": after,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    log(f"done in {result['total_seconds'] / 60:.1f} min -> {ck}")


if __name__ == "__main__":
    main()
