#!/usr/bin/env python3
"""Pre-train the demo GPT-2 on the public-domain corpus made by demo_corpus.py, on CPU or a GPU.

    nohup nice -n 19 /root/venv-models/bin/python models/train_demo.py > models/work/train_demo.log 2>&1 &
    python3 models/train_demo.py --device cuda --epochs 20 --dropout 0.1 --batch 64 --minutes 6

On a GPU (`--device cuda`) the token streams live on the GPU and the forward/backward passes run
under bf16 autocast (weights and optimizer state stay fp32, TF32 matmuls allowed); `--epochs E`
sizes the run (decay over the last 1 - --decay-at of it), `--minutes` still caps it: a run that
would overrun starts its decay early, sized to end on time. `--keep-best` restores the weights
of the best validation-subset evaluation before the final evaluation (a guard against
over-fitting when many epochs are run over a small corpus). models/train_demo_gpu.sh runs a
small sweep of such runs side by side on one GPU and keeps the best.

Model: GPT-2 architecture (transformers' GPT2LMHeadModel) with the real GPT-2 tokenizer (vocab
50257), 6 layers, 8 heads, n_embd 256, n_positions 256, tied embedding / LM head,
initializer_range 0.02, dropout --dropout (default 0: none).
Training: next-token cross-entropy on packed 256-token blocks of the token stream (documents
separated by <|endoftext|>), batch 8 blocks (2,048 tokens), AdamW (betas 0.9/0.95, eps 1e-8,
weight decay 0.1 on matrices only), gradient clipping at 1.0, fp32, torch.set_num_threads(2),
seed 0. LR schedule "warm-up, stable, decay": linear warm-up over 50 steps to 1.5e-3, constant,
then linear decay to 1.5e-4 over the last steps (decay_start .. steps).
Blocks are visited in a seeded random order (torch.Generator(seed + epoch)).

Steps: the machine is shared with Rust builds and this runs under nice, so the speed is not known
in advance. `--steps N --decay-start S` fixes the run. Without them the script trains at the
constant LR until 78% of the --minutes budget (default 55, evaluations included) is used, then
measures the recent seconds per step and picks the decay length so that the run ends on time;
S and N are logged (and written to schedule.json), and `--steps N --decay-start S` replays exactly
the same run (the batches and the LR of every step depend only on the seed, S and N).

Validation: val.u16 cut into 256-token blocks; the random-init model (step 0) and the final model
are evaluated on all of them; every --eval-every steps a fixed subset (every 8th block) is used.
Perplexity = exp(mean next-token cross-entropy over all predicted tokens).

Outputs in --out (default models/work/demo-train/):
  checkpoint/        save_pretrained() of the final model (+ generation_config.json)
  latest/            the last periodic checkpoint (every --save-every steps)
  log.csv            step,tokens,lr,train_loss,val_loss,val_subset,elapsed_s
  summary.json       hyper-parameters, versions, timings, random-init and final validation loss/ppl
  samples.txt        samples from the final model (transformers generate, demo sampling settings)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EOS_ID, TOKENIZER_DIR, VOCAB_SIZE, WORK_DIR, hf_offline  # noqa: E402

hf_offline()

ARCH = dict(n_layer=6, n_head=8, n_embd=256, n_positions=256)
SAMPLE_PROMPTS = ["Once upon a time", "The king said", "Love is"]
DEMO_SAMPLING = dict(do_sample=True, top_k=50, top_p=0.95, temperature=0.8, repetition_penalty=1.2,
                     max_new_tokens=60)


def log(msg: str) -> None:
    print(f"[train_demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_blocks(path: Path, block: int):
    import numpy as np
    import torch

    ids = np.fromfile(path, dtype="<u2").astype(np.int64)
    n = ids.size // block
    return torch.from_numpy(ids[: n * block].reshape(n, block))


def make_model(seed: int, dropout: float = 0.0):
    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=VOCAB_SIZE, initializer_range=0.02, bos_token_id=EOS_ID, eos_token_id=EOS_ID,
        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout, tie_word_embeddings=True, **ARCH,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(cfg)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr(), "embedding not tied"
    model.generation_config = GenerationConfig(bos_token_id=EOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID,
                                               **DEMO_SAMPLING)
    return model


def autocast(device: str):
    """bf16 autocast on a GPU; a no-op context on CPU (fp32 there)."""
    import contextlib

    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()


def evaluate(model, blocks, batch: int = 16, device: str = "cpu") -> float:
    """Mean next-token cross-entropy over every predicted token of the blocks."""
    import torch
    import torch.nn.functional as F

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad(), autocast(device):
        for i in range(0, blocks.shape[0], batch):
            x = blocks[i: i + batch]
            logits = model(input_ids=x).logits[:, :-1]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1), reduction="sum")
            total += float(loss)
            count += x[:, 1:].numel()
    model.train()
    return total / count


def batch_order(n_blocks: int, batch: int, seed: int):
    """Block indices of each batch: epoch e visits the blocks in randperm(seed + e) order, the
    remainder that does not fill a batch is dropped."""
    import torch

    epoch = 0
    while True:
        order = torch.randperm(n_blocks, generator=torch.Generator().manual_seed(seed + epoch))
        epoch += 1
        for pos in range(0, n_blocks - batch + 1, batch):
            yield order[pos: pos + batch]


def lr_at(step: int, total: int | None, decay_start: int | None, peak: float, floor: float, warmup: int) -> float:
    """Linear warm-up, constant, then linear decay from decay_start to total (step is 0-based)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if total is None or decay_start is None or step < decay_start:
        return peak
    p = min(1.0, (step - decay_start + 1) / max(1, total - decay_start))
    return peak + (floor - peak) * p


def sample(model, prompts, seed: int, n: int = 1, device: str = "cpu") -> list[str]:
    import torch
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))
    model.eval()
    out = []
    for prompt in prompts:
        ids = torch.tensor([tok.encode(prompt).ids], device=device)
        for k in range(n):
            torch.manual_seed(seed + k)
            g = model.generate(ids, attention_mask=torch.ones_like(ids), pad_token_id=EOS_ID, **DEMO_SAMPLING)
            out.append(tok.decode(g[0].tolist(), skip_special_tokens=False))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(WORK_DIR / "demo-corpus"))
    ap.add_argument("--out", default=str(WORK_DIR / "demo-train"))
    ap.add_argument("--steps", type=int, help="total optimizer steps (default: chosen from --minutes)")
    ap.add_argument("--decay-start", type=int, help="first step of the LR decay (with --steps)")
    ap.add_argument("--minutes", type=float, default=55.0, help="wall-time budget used to pick --steps")
    ap.add_argument("--decay-at", type=float, default=0.78, help="fraction of the budget spent before the decay")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--min-lr", type=float, default=1.5e-4)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--save-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--epochs", type=float, help="size the run in passes over the training blocks "
                    "(instead of --steps/--decay-start); --minutes still caps it")
    ap.add_argument("--dropout", type=float, default=0.0, help="resid/embd/attn dropout while training")
    ap.add_argument("--keep-best", action="store_true",
                    help="end with the weights of the best validation-subset evaluation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init-from", help="continue a previous run: its --out directory (checkpoint/, "
                    "summary.json, log.csv); the data order carries on where it stopped, steps count on")
    args = ap.parse_args()

    import numpy as np
    import torch
    import transformers

    t_start = time.time()
    torch.set_num_threads(args.threads)
    device = args.device
    if device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("error: --device cuda but torch sees no GPU")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = Path(args.corpus)
    if not (corpus / "train.u16").exists():
        sys.exit(f"error: {corpus}/train.u16 missing: run models/demo_corpus.py first")
    train = load_blocks(corpus / "train.u16", args.block).to(device)
    val = load_blocks(corpus / "val.u16", args.block).to(device)
    val_subset = val[::8]
    log(f"train {train.shape[0]} blocks ({train.numel():,} tokens), val {val.shape[0]} blocks "
        f"({val.numel():,} tokens; subset {val_subset.shape[0]} blocks)")

    prev = None
    if args.init_from:
        from transformers import GPT2LMHeadModel

        prev_dir = Path(args.init_from)
        if not (prev_dir / "checkpoint").is_dir() or not (prev_dir / "summary.json").exists():
            sys.exit(f"error: --init-from {prev_dir}: needs checkpoint/ and summary.json of a finished run")
        prev = json.loads((prev_dir / "summary.json").read_text())
        if prev["arch"] != ARCH or prev["block"] != args.block or prev["batch_blocks"] != args.batch:
            sys.exit(f"error: --init-from {prev_dir}: arch/block/batch differ from this run's")
        model = GPT2LMHeadModel.from_pretrained(prev_dir / "checkpoint")
        model.generation_config = make_model(args.seed).generation_config
        if args.dropout:
            for m in model.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.p = args.dropout
        # a continued run counts on from where its own predecessors ended
        step_offset = prev["steps"] + prev.get("step_offset", 0)
        tokens_offset = prev.get("tokens_seen_total", prev["tokens_seen"])
        log(f"continuing {prev_dir} after step {step_offset} ({tokens_offset:,} tokens)")
    else:
        model = make_model(args.seed, args.dropout)
        step_offset, tokens_offset = 0, 0
    model.to(device)
    eval_batch = 64 if device == "cuda" else 16
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model {ARCH}, {n_params:,} parameters (tied embedding counted once)")

    # the random-init model is deterministic (seed, architecture): its validation loss is cached
    cache = out / "random_init.json"
    key = {"arch": ARCH, "seed": args.seed, "val_blocks": int(val.shape[0]), "block": args.block}
    cached = json.loads(cache.read_text()) if cache.exists() else {}
    if prev and cached.get("key") != key:
        cached = json.loads((Path(args.init_from) / "random_init.json").read_text())
        cache.write_text(json.dumps(cached) + "\n")
    t = time.time()
    if cached.get("key") == key:
        rand_val, rand_sub, t_full_eval = cached["val_loss"], cached["val_subset"], cached["seconds"]
        log(f"random-init val loss {rand_val:.4f} (ppl {math.exp(rand_val):.1f}) from {cache}")
    else:
        rand_val = evaluate(model, val, eval_batch, device)
        t_full_eval = time.time() - t
        log(f"random-init val loss {rand_val:.4f} (ppl {math.exp(rand_val):.1f}) in {t_full_eval:.0f}s")
        rand_sub = evaluate(model, val_subset, eval_batch, device)
        cache.write_text(json.dumps({"key": key, "val_loss": rand_val, "val_subset": rand_sub,
                                     "seconds": t_full_eval}) + "\n")
    t = time.time()
    evaluate(model, val_subset[:eval_batch], eval_batch, device)
    t_sub_eval = (time.time() - t) * val_subset.shape[0] / eval_batch

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=device == "cuda")

    f = open(out / "log.csv", "w", newline="")
    w = csv.writer(f)
    w.writerow(["step", "tokens", "lr", "train_loss", "val_loss", "val_subset", "elapsed_s"])
    if prev:
        with open(Path(args.init_from) / "log.csv") as fh:
            # the previous run's final full-validation row stays: it marks where this run starts
            w.writerows(list(csv.reader(fh))[1:])
    else:
        w.writerow([0, 0, 0, "", f"{rand_val:.5f}", f"{rand_sub:.5f}", f"{time.time() - t_start:.1f}"])
    f.flush()

    total, decay_start = args.steps, args.decay_start
    if (total is None) != (decay_start is None):
        ap.error("--steps and --decay-start go together")
    chosen_by = "--steps/--decay-start" if total else None
    if args.epochs:
        if total:
            ap.error("--epochs and --steps exclude each other")
        total = max(args.warmup + 10, int(args.epochs * train.shape[0] / args.batch))
        decay_start = int(args.decay_at * total)
        chosen_by = f"--epochs {args.epochs}"
        log(f"{total} steps ({args.epochs} epochs), decay from step {decay_start}")
    planned = total is not None and chosen_by != "--steps/--decay-start"  # may be cut short by --minutes
    best = None  # (val_subset loss, step, weights on CPU) with --keep-best
    loop_budget = args.minutes * 60 - (time.time() - t_start) - t_full_eval - 90  # final eval + save + samples
    tokens = 0
    t_loop = time.time()
    step_times = []
    model.train()
    batches = batch_order(train.shape[0], args.batch, args.seed)
    for _ in range(step_offset):  # the previous run's batches: same order, skipped
        next(batches)
    step = 0
    while total is None or step < total:
        x = train[next(batches).to(device)]
        lr = lr_at(step, total, decay_start, args.lr, args.min_lr, args.warmup)
        for gr in opt.param_groups:
            gr["lr"] = lr
        ts = time.time()
        with autocast(device):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        train_loss = loss.item()  # waits for the GPU: the step time below is the real one, not the launch time
        step_times.append(time.time() - ts)
        tokens += x.numel()
        step += 1

        used = time.time() - t_loop
        over = planned and step < decay_start and used >= args.decay_at * loop_budget
        if (total is None or over) and step >= args.warmup and used >= args.decay_at * loop_budget:
            recent = step_times[-30:]
            sec = float(np.mean(recent)) + t_sub_eval / args.eval_every
            decay = max(10, int((loop_budget - used) / sec))
            decay_start, total = step, step + decay
            planned = False
            chosen_by = (f"--minutes {args.minutes}: decay after {used / 60:.1f} min at {sec:.2f} s/step "
                         f"({x.numel() / sec:.0f} tok/s)")
            log(f"LR decay from step {decay_start} to {total}; replay with --steps {total} "
                f"--decay-start {decay_start} ({chosen_by})")
            (out / "schedule.json").write_text(json.dumps({"steps": total, "decay_start": decay_start,
                                                           "chosen_by": chosen_by}) + "\n")

        val_loss = ""
        if step % args.eval_every == 0 or step == total:
            v = evaluate(model, val_subset, eval_batch, device)
            val_loss = f"{v:.5f}"
            if args.keep_best and (best is None or v < best[0]):
                best = (v, step, {k: t.detach().to("cpu", copy=True) for k, t in model.state_dict().items()})
        el = time.time() - t_start
        w.writerow([step + step_offset, tokens + tokens_offset, f"{lr:.6g}", f"{train_loss:.5f}", "", val_loss, f"{el:.1f}"])
        f.flush()
        if step % 10 == 0 or val_loss:
            rate = tokens / (time.time() - t_loop)
            log(f"step {step}/{total} (+{step_offset}) loss {train_loss:.4f} lr {lr:.2e} {rate:.0f} tok/s"
                + (f" val_subset {val_loss}" if val_loss else ""))
        if step % args.save_every == 0:
            model.save_pretrained(out / "latest")
    train_time = time.time() - t_loop

    best_step = step
    if best is not None and best[1] != step:
        log(f"--keep-best: the weights of step {best[1]} (val_subset {best[0]:.4f})")
        model.load_state_dict(best[2])
        best_step = best[1]
    final_val = evaluate(model, val, eval_batch, device)
    w.writerow([step + step_offset, tokens + tokens_offset, "", "", f"{final_val:.5f}", "", f"{time.time() - t_start:.1f}"])
    f.close()
    log(f"final val loss {final_val:.4f} (ppl {math.exp(final_val):.2f}); random-init {rand_val:.4f} "
        f"(ppl {math.exp(rand_val):.1f})")
    model.save_pretrained(out / "checkpoint")

    samples = sample(model, SAMPLE_PROMPTS, args.seed, n=3, device=device)
    (out / "samples.txt").write_text("\n\n-----\n\n".join(samples) + "\n", encoding="utf-8")

    summary = {
        "arch": ARCH, "vocab_size": VOCAB_SIZE, "parameters": n_params, "initializer_range": 0.02,
        "tied_embeddings": True, "dropout": args.dropout, "device": device, "epochs": args.epochs,
        "keep_best": args.keep_best, "final_weights_step": best_step + step_offset,
        "steps": total, "decay_start": decay_start, "steps_chosen_by": chosen_by,
        "init_from": args.init_from, "step_offset": step_offset, "tokens_seen_total": tokens + tokens_offset,
        "previous_run": prev, "batch_blocks": args.batch, "block": args.block,
        "tokens_seen": tokens, "epochs_fraction": tokens / train.numel(),
        "optimizer": {"name": "AdamW", "lr": args.lr, "min_lr": args.min_lr, "warmup": args.warmup,
                      "schedule": "linear warm-up, constant, linear decay from decay_start",
                      "betas": [0.9, 0.95], "eps": 1e-8,
                      "weight_decay": args.weight_decay, "grad_clip": args.grad_clip},
        "seed": args.seed, "threads": args.threads,
        "train_tokens": int(train.numel()), "val_tokens": int(val.numel()),
        "val_loss_random_init": rand_val, "val_ppl_random_init": math.exp(rand_val),
        "val_loss": final_val, "val_ppl": math.exp(final_val),
        "final_train_loss_mean_last_20": None,
        "train_seconds": train_time, "total_seconds": time.time() - t_start,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "numpy": np.__version__},
        "machine": (f"{torch.cuda.get_device_name()}, bf16 autocast" if device == "cuda" else
                    f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, under nice -n 19"),
    }
    with open(out / "log.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["train_loss"]]
    summary["final_train_loss_mean_last_20"] = float(np.mean([float(r["train_loss"]) for r in rows[-20:]]))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"done in {summary['total_seconds'] / 60:.1f} min; {out}")


if __name__ == "__main__":
    main()
