#!/usr/bin/env python3
"""Make a random-init GPT-2, export it in every ONNX layout gptrt accepts, and write references.

    /root/venv-models/bin/python models/make_fixtures.py --preset tiny    # -> models/fixtures/tiny-random-gpt2/
    /root/venv-models/bin/python models/make_fixtures.py --preset small   # -> models/work/small-random-gpt2/
    /root/venv-models/bin/python models/make_fixtures.py --checkpoint CKPT_DIR --out OUT_DIR
                                      # export an existing transformers GPT-2 checkpoint (e.g. the
                                      # trained demo model) the same way: steps 2-5 below

Steps (everything local; the Hugging Face hub is never contacted):
  1. GPT2Config(vocab 50257, preset shape, initializer_range) + torch.manual_seed(seed) ->
     GPT2LMHeadModel, saved as a checkpoint under models/work/<name>-checkpoint/ (ignored).
  2. ONNX exports with optimum-onnx 0.1.0 (opset 18, fp32):
       single/  model.onnx        main_export(task="text-generation-with-past")
                                   == optimum-cli export onnx --task text-generation-with-past
       nopast/  model.onnx        main_export(task="text-generation")
       split/   decoder_model.onnx + decoder_with_past_model.onnx
                                   optimum-onnx 0.1.0 no longer has `--legacy`, so the two graphs are
                                   exported with optimum's export_models() from two GPT2OnnxConfig
                                   objects (use_past_in_inputs False / True), which is what the old
                                   legacy mode did, then optimum's own post-processing
                                   (GPT2OnnxConfig.post_process_exported_models: tied-weight
                                   de-duplication + merge_decoders) runs on them;
       merged/  decoder_model_merged.onnx
                                   the output of that merge_decoders (If node on `use_cache_branch`).
     Each folder gets config.json, generation_config.json and tokenizer.json (a relative symlink
     to ../tokenizer.json; the model folder holds the real copy).
  3. LAYOUTS.md: every graph's inputs/outputs with shapes and dtypes.
  4. reference.json + logits_<case>.f32 from transformers (torch) on the same checkpoint, plus a
     left-padded batch case checked against the one-by-one results.
  5. verify_fixtures.py: every layout run with onnxruntime against the reference
     (first-step logits within 1e-4, greedy ids exact).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EOS_ID, FIXTURES_DIR, TOKENIZER_DIR, VOCAB_SIZE, WORK_DIR, hf_offline  # noqa: E402

hf_offline()

PRESETS = {
    # committed test fixture: each graph ~7 MB (the 50257x32 embedding dominates)
    "tiny": dict(n_layer=2, n_head=4, n_embd=32, n_positions=128),
    # gpt2-small shape for benchmarks (~500 MB per graph, not committed)
    "small": dict(n_layer=12, n_head=12, n_embd=768, n_positions=1024),
}
DEFAULT_OUT = {
    "tiny": FIXTURES_DIR / "tiny-random-gpt2",
    "small": WORK_DIR / "small-random-gpt2",
}
# With the usual 0.02 a random GPT-2 has nearly flat logits (std ~0.1 for tiny) and greedy
# decoding repeats one token forever. These ranges give last-position logits with std ~3,
# varied greedy continuations, and top-1/top-2 gaps (>= 0.008 over all reference steps) far
# above fp32 noise, so greedy ids are stable across runtimes. 12 layers amplify more than 2,
# so small needs a smaller range (0.5 there makes torch's own KV-cache and full-recompute
# greedy paths disagree).
DEFAULT_INITIALIZER_RANGE = {"tiny": 0.5, "small": 0.1}
OPSET = 18
MAX_NEW_TOKENS = 24
LAYOUTS = ("single", "split", "merged", "nopast")

CASES = [
    ("hello_world", "Hello world"),
    ("once_upon_a_time", "Once upon a time"),
    ("unicode", "Grüße aus Köln — naïve café"),
    ("emoji", "I love 🦀 and 🐍!"),
    ("cjk", "日本語のテキスト"),
    ("leading_space", " leading space"),
    ("newlines", "line one\nline two\n"),
    ("empty", ""),
]
BATCH_CASES = ["hello_world", "once_upon_a_time", "emoji"]  # 2, 4 and 10 tokens


def log(msg: str) -> None:
    print(f"[make_fixtures] {msg}", flush=True)


def ensure_tokenizer() -> Path:
    tj = TOKENIZER_DIR / "tokenizer.json"
    if not tj.exists():
        log("models/gpt2-tokenizer/ missing: running make_tokenizer.py")
        import make_tokenizer

        sys.argv = [sys.argv[0]]
        make_tokenizer.main()
    return tj


# ----------------------------------------------------------------------------------- checkpoint
def make_checkpoint(preset: str, seed: int, init_range: float, ckpt: Path):
    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=VOCAB_SIZE,
        initializer_range=init_range,
        bos_token_id=EOS_ID,
        eos_token_id=EOS_ID,
        **PRESETS[preset],
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(cfg).eval()
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr(), "embedding not tied"
    model.generation_config = GenerationConfig(bos_token_id=EOS_ID, eos_token_id=EOS_ID)
    if ckpt.exists():
        shutil.rmtree(ckpt)
    model.save_pretrained(ckpt)
    n = sum(p.numel() for p in model.parameters())
    log(f"checkpoint {ckpt} ({n:,} parameters, seed {seed}, initializer_range {init_range})")
    return model


# ----------------------------------------------------------------------------------- exports
def export_main(ckpt: Path, out: Path, task: str) -> None:
    """The documented optimum path (the same as `optimum-cli export onnx --task TASK`)."""
    from optimum.exporters.onnx import main_export

    main_export(
        str(ckpt), output=str(out), task=task, opset=OPSET, device="cpu",
        local_files_only=True, library_name="transformers",
    )


def export_split(ckpt: Path, out: Path) -> None:
    """decoder_model.onnx + decoder_with_past_model.onnx (+ decoder_model_merged.onnx)."""
    from optimum.exporters.onnx.convert import export_models
    from optimum.exporters.onnx.model_configs import GPT2OnnxConfig
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(ckpt).eval()
    task = "text-generation"  # the config's task name; use_past=True adds the present outputs
    first = GPT2OnnxConfig(model.config, task=task, use_past=True, use_past_in_inputs=False)
    with_past = GPT2OnnxConfig(model.config, task=task, use_past=True, use_past_in_inputs=True)
    models_and_configs = {"decoder_model": (model, first), "decoder_with_past_model": (model, with_past)}
    names = ["decoder_model.onnx", "decoder_with_past_model.onnx"]
    out.mkdir(parents=True, exist_ok=True)
    export_models(models_and_configs, output_dir=out, opset=OPSET, output_names=names, device="cpu")
    # optimum's own post-processing: de-duplicate the tied embedding/LM head in each graph, then
    # merge the two graphs into decoder_model_merged.onnx (If node on `use_cache_branch`).
    first.post_process_exported_models(out, models_and_configs, names)
    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)


def export_all(ckpt: Path, out: Path, tokenizer_json: Path) -> None:
    tmp = WORK_DIR / f"{out.name}-export"
    if tmp.exists():
        shutil.rmtree(tmp)
    for layout in LAYOUTS:
        if (out / layout).exists():
            shutil.rmtree(out / layout)

    t = time.time()
    export_main(ckpt, tmp / "single", "text-generation-with-past")
    log(f"single exported ({time.time() - t:.0f}s)")
    t = time.time()
    export_main(ckpt, tmp / "nopast", "text-generation")
    log(f"nopast exported ({time.time() - t:.0f}s)")
    t = time.time()
    export_split(ckpt, tmp / "split")
    log(f"split + merged exported ({time.time() - t:.0f}s)")

    files = {
        "single": [("single/model.onnx", "model.onnx")],
        "nopast": [("nopast/model.onnx", "model.onnx")],
        "split": [("split/decoder_model.onnx", "decoder_model.onnx"),
                  ("split/decoder_with_past_model.onnx", "decoder_with_past_model.onnx")],
        "merged": [("split/decoder_model_merged.onnx", "decoder_model_merged.onnx")],
    }
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tokenizer_json, out / "tokenizer.json")
    for layout, pairs in files.items():
        d = out / layout
        d.mkdir(parents=True)
        for src, dst in pairs:
            src_path = tmp / src
            if Path(str(src_path) + "_data").exists():
                raise SystemExit(f"error: {src} was saved with external data; not expected for these sizes")
            shutil.move(src_path, d / dst)
        # config.json + generation_config.json as optimum saved them next to the graph
        src_dir = tmp / pairs[0][0].split("/")[0]
        for name in ("config.json", "generation_config.json"):
            shutil.copyfile(src_dir / name, d / name)
        os.symlink("../tokenizer.json", d / "tokenizer.json")
    shutil.rmtree(tmp)


# ----------------------------------------------------------------------------------- LAYOUTS.md
def _dims(t) -> str:
    dims = []
    for d in t.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(str(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append("?")
    return "[" + ", ".join(dims) + "]"


def _dtype(t) -> str:
    import onnx

    return onnx.helper.tensor_dtype_to_np_dtype(t.type.tensor_type.elem_type).name


def describe_graphs(out: Path, name: str, preset: str, init_range: float, seed: int,
                    origin: str | None = None) -> dict:
    import onnx

    if origin is None:
        origin = (f"Generated by `models/make_fixtures.py --preset {preset}` (seed {seed}, initializer_range "
                  f"{init_range}, {PRESETS[preset]}, vocab {VOCAB_SIZE}).")
    lines = [
        f"# {name}: ONNX layouts",
        "",
        origin,
        "Shapes use the symbolic dimension names stored in each graph. ids and masks are int64, floats are",
        "float32. The tied embedding / LM head is stored once per graph (`wte` shared by Gather and MatMul).",
        "",
    ]
    summary = {}
    for layout in LAYOUTS:
        for f in sorted((out / layout).glob("*.onnx")):
            m = onnx.load(str(f), load_external_data=False)
            init_bytes = sum(len(i.raw_data) for i in m.graph.initializer)
            big = [i for i in m.graph.initializer if len(i.raw_data) >= VOCAB_SIZE * 4]
            if not big:  # merged: the initializers live in the outer graph
                big = [i for i in m.graph.initializer if len(i.raw_data) >= VOCAB_SIZE]
            opset = {o.domain or "ai.onnx": o.version for o in m.opset_import}
            size = f.stat().st_size
            rel = f"{layout}/{f.name}"
            lines += [f"## `{rel}`", "",
                      f"- size: {size:,} bytes; opset {opset}; {len(m.graph.node)} top-level nodes; "
                      f"{len(m.graph.initializer)} initializers; initializers of >= vocab x 4 bytes: "
                      + ", ".join(f"`{i.name}` {list(i.dims)}" for i in big),
                      "", "| | name | dtype | shape |", "|---|---|---|---|"]
            ins = [(i.name, _dtype(i), _dims(i)) for i in m.graph.input]
            outs = [(o.name, _dtype(o), _dims(o)) for o in m.graph.output]
            lines += [f"| in | `{n}` | {d} | {s} |" for n, d, s in ins]
            lines += [f"| out | `{n}` | {d} | {s} |" for n, d, s in outs]
            lines.append("")
            summary[rel] = {"size": size, "inputs": ins, "outputs": outs, "opset": opset}
            # a tied embedding stored twice would show up as two 50257 x n_embd initializers
            n_vocab_mats = sum(1 for i in big if VOCAB_SIZE in i.dims)
            assert n_vocab_mats <= 1, f"{rel}: vocab matrix stored {n_vocab_mats} times"
    (out / "LAYOUTS.md").write_text("\n".join(lines))
    log(f"wrote {out / 'LAYOUTS.md'}")
    return summary


# ----------------------------------------------------------------------------------- reference
def make_reference(ckpt: Path, out: Path, tokenizer_json: Path, meta: dict) -> None:
    import numpy as np
    import torch
    import transformers
    from tokenizers import Tokenizer
    from transformers import GPT2LMHeadModel

    tok = Tokenizer.from_file(str(tokenizer_json))
    model = GPT2LMHeadModel.from_pretrained(ckpt).eval()
    # the references are plain greedy: ignore sampling / repetition_penalty defaults that a
    # checkpoint's generation_config.json may carry (the demo model's does)
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(bos_token_id=EOS_ID, eos_token_id=EOS_ID)
    for old in out.glob("logits_*.f32"):
        old.unlink()

    cases = []
    by_name = {}
    min_gap = float("inf")
    with torch.no_grad():
        for name, prompt in CASES:
            ids = tok.encode(prompt).ids or [EOS_ID]
            x = torch.tensor([ids])
            mask = torch.ones_like(x)
            logits = model(input_ids=x, attention_mask=mask).logits[0, -1].float()
            assert logits.shape == (VOCAB_SIZE,)
            fname = f"logits_{name}.f32"
            logits.numpy().astype("<f4").tofile(out / fname)
            gen = model.generate(
                x, attention_mask=mask, do_sample=False, max_new_tokens=MAX_NEW_TOKENS,
                eos_token_id=EOS_ID, pad_token_id=EOS_ID,
            )[0, len(ids):].tolist()
            # how far each greedy choice is from a tie (full-recompute forward over the sequence)
            full = torch.tensor([ids + gen])
            step_logits = model(full).logits[0, len(ids) - 1: len(ids) - 1 + len(gen)]
            top2 = step_logits.topk(2, dim=-1).values
            gap = float((top2[:, 0] - top2[:, 1]).min())
            min_gap = min(min_gap, gap)
            chosen = step_logits.argmax(-1).tolist()
            assert chosen == gen, f"{name}: full-recompute argmax {chosen} != generate {gen}"
            distinct = len(set(gen))
            log(f"case {name}: prompt {len(ids)} tokens, greedy {len(gen)} tokens "
                f"({distinct} distinct), min top1-top2 gap {gap:.4f}")
            case = {"name": name, "prompt": prompt, "prompt_ids": ids, "greedy_ids": gen, "logits_file": fname}
            cases.append(case)
            by_name[name] = (case, logits.numpy())

        batch = make_batch_reference(model, by_name)

    ref = {
        "max_new_tokens": MAX_NEW_TOKENS,
        "eos_token_id": EOS_ID,
        "vocab_size": VOCAB_SIZE,
        "logits_dtype": "float32 little-endian, logits at the last prompt position of the first forward",
        "cases": cases,
        "batch": batch,
        "generated_with": {
            "torch": torch.__version__, "transformers": transformers.__version__,
            "min_top1_top2_gap": round(min_gap, 6), **meta,
        },
    }
    (out / "reference.json").write_text(dump_json(ref), encoding="utf-8")
    log(f"wrote {out / 'reference.json'} ({len(cases)} cases + batch of {len(batch['names'])}); "
        f"smallest top1-top2 logit gap over all greedy steps: {min_gap:.4f}")
    if min_gap < 1e-3:
        log("WARNING: a greedy step is within 1e-3 of a tie; runtimes may legitimately disagree")


def dump_json(obj) -> str:
    """Indented JSON with lists of numbers kept on one line."""
    import re

    text = json.dumps(obj, ensure_ascii=False, indent=2)
    return re.sub(r"\[\s+([-0-9.eE,\s]+?)\s+\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def make_batch_reference(model, by_name: dict) -> dict:
    """Left-padded batch through transformers, checked against the one-by-one results."""
    import torch

    rows = [by_name[n][0]["prompt_ids"] for n in BATCH_CASES]
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([[EOS_ID] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    # transformers' recipe for GPT-2 (GenerationMixin / GPT2 prepare_inputs_for_generation)
    pos = mask.cumsum(-1) - 1
    pos = pos.masked_fill(mask == 0, 1)

    # (a) model.generate on the padded batch
    gen = model.generate(
        input_ids, attention_mask=mask, do_sample=False, max_new_tokens=MAX_NEW_TOKENS,
        eos_token_id=EOS_ID, pad_token_id=EOS_ID,
    )[:, width:].tolist()

    # (b) the same by hand with explicit position_ids and the KV cache
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=pos, use_cache=True)
    first_logits = out.logits[:, -1].float()
    past, m, p = out.past_key_values, mask, pos[:, -1:]
    nxt = first_logits.argmax(-1)
    manual = [[int(t)] for t in nxt]
    done = nxt == EOS_ID
    for _ in range(MAX_NEW_TOKENS - 1):
        m = torch.cat([m, torch.ones_like(m[:, :1])], dim=1)
        p = p + 1
        out = model(input_ids=nxt[:, None], attention_mask=m, position_ids=p, past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, EOS_ID), nxt)
        for row, t in zip(manual, nxt):
            row.append(int(t))
        done = done | (nxt == EOS_ID)

    greedy = []
    for i, n in enumerate(BATCH_CASES):
        single, single_logits = by_name[n]
        want = single["greedy_ids"]
        diff = float((first_logits[i] - torch.from_numpy(single_logits)).abs().max())
        assert diff < 1e-4, f"batch row {n}: first-step logits differ from one-by-one by {diff}"
        assert gen[i][: len(want)] == want, f"batch generate row {n}: {gen[i]} != {want}"
        assert manual[i][: len(want)] == want, f"batch manual row {n}: {manual[i]} != {want}"
        rest = gen[i][len(want):]
        assert all(t == EOS_ID for t in rest), f"batch row {n}: tokens after EOS {rest}"
        greedy.append(want)
        log(f"batch row {n}: same greedy ids as one-by-one; first-step logits max diff {diff:.2e}")
    return {
        "names": BATCH_CASES,
        "padding_side": "left",
        "pad_token_id": EOS_ID,
        "input_ids": input_ids.tolist(),
        "attention_mask": mask.tolist(),
        "position_ids": pos.tolist(),
        "position_ids_rule": "cumsum(attention_mask)-1, set to 1 where attention_mask is 0; "
                             "each decode step feeds last position + 1",
        "greedy_ids": greedy,
        "note": "greedy_ids per row equal the one-by-one cases (rows stop at EOS; later slots are pad)",
    }


# ----------------------------------------------------------------------------------- main
def export_checkpoint(ckpt: Path, out: Path, skip_export: bool = False, verify: bool = True,
                      reference: bool = True) -> Path:
    """Export an existing checkpoint folder (config.json + weights) into OUT/{single,split,merged,nopast}/
    with OUT/tokenizer.json, LAYOUTS.md and (unless reference=False) reference.json + logits, verified."""
    from transformers import GPT2Config

    ckpt, out = ckpt.resolve(), out.resolve()
    tokenizer_json = ensure_tokenizer()
    if not skip_export:
        export_all(ckpt, out, tokenizer_json)
    cfg = GPT2Config.from_pretrained(ckpt)
    shape = {k: getattr(cfg, k) for k in ("n_layer", "n_head", "n_embd", "n_positions")}
    origin = (f"Exported by `models/make_fixtures.py --checkpoint {ckpt.name}` ({shape}, "
              f"vocab {cfg.vocab_size}).")
    describe_graphs(out, out.name, "", 0.0, 0, origin=origin)
    if reference:
        make_reference(ckpt, out, tokenizer_json, {"checkpoint": ckpt.name, "config": shape})
        if verify:
            import verify_fixtures

            if not verify_fixtures.verify(out):
                raise SystemExit("verification failed")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and not f.is_symlink())
    log(f"done: {out} ({total / 1e6:.1f} MB)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--out", help="output folder (default: tiny -> models/fixtures/tiny-random-gpt2, "
                                  "small -> models/work/small-random-gpt2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--initializer-range", type=float,
                    help="std of the random init (default: tiny 0.5, small 0.1)")
    ap.add_argument("--skip-export", action="store_true", help="reuse the existing checkpoint and graphs")
    ap.add_argument("--skip-verify", action="store_true", help="do not run verify_fixtures.py at the end")
    ap.add_argument("--checkpoint", help="export this existing transformers GPT-2 checkpoint folder instead of "
                                         "making a random one (needs --out; --preset/--seed are ignored)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.checkpoint:
        if not args.out:
            ap.error("--checkpoint needs --out")
        export_checkpoint(Path(args.checkpoint), Path(args.out), skip_export=args.skip_export,
                          verify=not args.skip_verify)
        return
    if args.initializer_range is None:
        args.initializer_range = DEFAULT_INITIALIZER_RANGE[args.preset]
    out = Path(args.out) if args.out else DEFAULT_OUT[args.preset]
    name = out.name
    ckpt = WORK_DIR / f"{name}-checkpoint"
    tokenizer_json = ensure_tokenizer()

    if not args.skip_export:
        make_checkpoint(args.preset, args.seed, args.initializer_range, ckpt)
        export_all(ckpt, out, tokenizer_json)
    meta = {"preset": args.preset, "config": PRESETS[args.preset], "seed": args.seed,
            "initializer_range": args.initializer_range}
    describe_graphs(out, name, args.preset, args.initializer_range, args.seed)
    make_reference(ckpt, out, tokenizer_json, meta)

    if not args.skip_verify:
        import verify_fixtures

        if not verify_fixtures.verify(out):
            raise SystemExit("verification failed")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and not f.is_symlink())
    log(f"done: {out} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
