#!/usr/bin/env python3
"""Fine-tuning example: continue training the demo checkpoint on one topic of the fortunes.

    nice -n 19 /root/venv-models/bin/python models/finetune_demo.py        # ~5 min on 2 cores

The topic (`science`, the fortune file kept out of the pre-training corpus by demo_corpus.py) is
split by fortune: number i is held out when i % 5 == 0, the rest is trained on. The held-out
fortunes are joined with <|endoftext|> and cut into 256-token blocks; their perplexity (exp of the
mean next-token cross-entropy) is measured before and after fine-tuning, together with the general
validation subset (every 8th validation block of the demo corpus) to show what the model forgets.

Training: the same loss as train_demo.py, blocks of 256 tokens from the shuffled training fortunes
(re-shuffled each epoch, seed 0), batch 4, AdamW (betas 0.9/0.95, weight decay 0.1), LR 3e-4 with 10
warm-up steps and cosine decay to 3e-5, --epochs 3, fp32, 2 threads.

Writes --out (default models/work/demo-finetune-science/): checkpoint/ and result.json (perplexities
before/after, steps, seconds, a sample from each model for the prompt "Science is").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EOS_ID, TOKENIZER_DIR, WORK_DIR, hf_offline  # noqa: E402

hf_offline()


def log(msg: str) -> None:
    print(f"[finetune_demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def to_blocks(docs: list[str], block: int, keep_tail: bool):
    import numpy as np
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))
    ids = []
    for enc in tok.encode_batch(docs):
        ids += enc.ids + [EOS_ID]
    ids = np.array(ids, dtype=np.int64)
    n = ids.size // block
    blocks = [ids[i * block:(i + 1) * block] for i in range(n)]
    if keep_tail and ids.size > n * block + 1:
        blocks.append(ids[n * block:])
    return blocks, int(ids.size)


def nll(model, blocks) -> float:
    import torch
    import torch.nn.functional as F

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for b in blocks:
            x = torch.as_tensor(b)[None]
            logits = model(input_ids=x).logits[0, :-1].float()
            total += float(F.cross_entropy(logits, x[0, 1:], reduction="sum"))
            count += x.shape[1] - 1
    model.train()
    return total / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(WORK_DIR / "demo-train-gpu" / "e20-drop0.1" / "checkpoint"))
    ap.add_argument("--corpus", default=str(WORK_DIR / "demo-corpus"))
    ap.add_argument("--topic", default="science")
    ap.add_argument("--out", default=None)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numpy as np
    import torch
    from tokenizers import Tokenizer
    from transformers import GPT2LMHeadModel

    from demo_eval import val_blocks

    t0 = time.time()
    torch.set_num_threads(args.threads)
    out = Path(args.out or WORK_DIR / f"demo-finetune-{args.topic}")
    out.mkdir(parents=True, exist_ok=True)
    path = Path(args.corpus) / f"finetune-{args.topic}.jsonl"
    if not path.exists():
        sys.exit(f"error: {path} missing (demo_corpus.py writes finetune-science.jsonl)")
    docs = [json.loads(line) for line in path.open(encoding="utf-8")]
    train_docs = [d["text"] for d in docs if d["split"] == "train"]
    held_docs = [d["text"] for d in docs if d["split"] == "val"]
    train_blocks, train_tokens = to_blocks(train_docs, args.block, keep_tail=False)
    held_blocks, held_tokens = to_blocks(held_docs, args.block, keep_tail=True)
    general = list(val_blocks(Path(args.corpus))[::8])
    log(f"topic {args.topic}: {len(train_docs)} training fortunes ({train_tokens:,} tokens, {len(train_blocks)} "
        f"blocks), {len(held_docs)} held out ({held_tokens:,} tokens)")

    model = GPT2LMHeadModel.from_pretrained(args.checkpoint)
    tok = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))

    def sample(prompt: str = "Science is") -> str:
        torch.manual_seed(args.seed)
        ids = torch.tensor([tok.encode(prompt).ids])
        model.eval()
        g = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=50, top_p=0.95,
                           temperature=0.8, repetition_penalty=1.2, max_new_tokens=60, pad_token_id=EOS_ID)
        model.train()
        return tok.decode(g[0].tolist())

    before = {"topic_heldout": nll(model, held_blocks), "general_val_subset": nll(model, general)}
    sample_before = sample()
    log(f"before: topic held-out ppl {math.exp(before['topic_heldout']):.2f}, general val subset ppl "
        f"{math.exp(before['general_val_subset']):.2f}")

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    data = torch.as_tensor(np.stack(train_blocks))
    per_epoch = len(train_blocks) // args.batch
    total = per_epoch * args.epochs
    step, t_train = 0, time.time()
    model.train()
    for epoch in range(args.epochs):
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed + epoch))
        for i in range(per_epoch):
            x = data[order[i * args.batch:(i + 1) * args.batch]]
            if step < args.warmup:
                lr = args.lr * (step + 1) / args.warmup
            else:
                p = (step - args.warmup) / max(1, total - args.warmup)
                lr = args.lr * 0.1 + 0.5 * args.lr * 0.9 * (1 + math.cos(math.pi * p))
            for gr in opt.param_groups:
                gr["lr"] = lr
            loss = model(input_ids=x, labels=x).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
        log(f"epoch {epoch + 1}/{args.epochs}: step {step}, last loss {loss.item():.4f}")
    train_seconds = time.time() - t_train

    after = {"topic_heldout": nll(model, held_blocks), "general_val_subset": nll(model, general)}
    sample_after = sample()
    log(f"after: topic held-out ppl {math.exp(after['topic_heldout']):.2f}, general val subset ppl "
        f"{math.exp(after['general_val_subset']):.2f}")
    model.save_pretrained(out / "checkpoint")
    result = {
        "topic": args.topic, "checkpoint": str(args.checkpoint),
        "train_fortunes": len(train_docs), "train_tokens": train_tokens,
        "heldout_fortunes": len(held_docs), "heldout_tokens": held_tokens,
        "epochs": args.epochs, "steps": total, "batch": args.batch, "block": args.block, "lr": args.lr,
        "train_seconds": round(train_seconds, 1), "total_seconds": round(time.time() - t0, 1),
        "before": {k: {"loss": v, "perplexity": math.exp(v)} for k, v in before.items()},
        "after": {k: {"loss": v, "perplexity": math.exp(v)} for k, v in after.items()},
        "sample_before": sample_before, "sample_after": sample_after,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    log(f"done in {result['total_seconds'] / 60:.1f} min -> {out}")


if __name__ == "__main__":
    main()
