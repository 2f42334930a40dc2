#!/usr/bin/env python3
"""transformers' own `generate` (PyTorch, greedy, KV cache) on a GPT-2 checkpoint: a peer for
benchmarks/compare.py.

Prefill is timed as a generate() of one new token, decode as the difference between a generate()
of N new tokens and that one: (N - 1) / (t_N - t_1). min_new_tokens = N, so an end token never
stops a run early. Prints one JSON object.

    /root/venv-models/bin/python benchmarks/transformers_generate.py \
        --checkpoint models/work/small-random-gpt2-checkpoint --new-tokens 128 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time

PROMPT_IDS = [7454, 2402, 257, 640]  # "Once upon a time" in GPT-2's tokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="save_pretrained() folder of a GPT2LMHeadModel")
    ap.add_argument("--prompt-tokens", type=int, default=len(PROMPT_IDS))
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs; the best is reported")
    args = ap.parse_args()

    import torch
    from transformers import GPT2LMHeadModel

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = GPT2LMHeadModel.from_pretrained(args.checkpoint).eval()
    load_s = time.perf_counter() - t0
    prompt = (PROMPT_IDS * args.prompt_tokens)[: args.prompt_tokens]
    ids = torch.tensor([prompt] * args.batch)

    def timed(new_tokens: int) -> float:
        with torch.inference_mode():
            start = time.perf_counter()
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=50256)
            elapsed = time.perf_counter() - start
        assert out.shape[1] == ids.shape[1] + new_tokens, out.shape
        return elapsed

    timed(args.new_tokens)  # warm-up
    prefill = min(timed(1) for _ in range(max(1, args.repeat)))
    full = min(timed(args.new_tokens) for _ in range(max(1, args.repeat)))
    decode_s = max(full - prefill, 1e-9)
    print(json.dumps({
        "runner": "transformers-generate",
        "torch": torch.__version__,
        "threads": args.threads,
        "batch": args.batch,
        "load_s": round(load_s, 4),
        "prompt_tokens": len(prompt),
        "new_tokens": args.new_tokens,
        "prompt_tokens_per_s": round(args.batch * len(prompt) / prefill, 2),
        # two generate() calls of 1 and N tokens: with N <= 2 their difference is noise, not decode
        "decode_tokens_per_s": round(args.batch * (args.new_tokens - 1) / decode_s, 2) if args.new_tokens > 2 else None,
    }))


if __name__ == "__main__":
    main()
