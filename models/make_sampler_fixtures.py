#!/usr/bin/env python3
"""Reference data for gptrt's logits processors / warpers and for `generate`, from transformers itself.

    /root/venv-models/bin/python models/make_sampler_fixtures.py                 # both parts
    /root/venv-models/bin/python models/make_sampler_fixtures.py --part processors
    /root/venv-models/bin/python models/make_sampler_fixtures.py --part generate

Part "processors" -> models/fixtures/processors/
    input_<k>.f32     3 input score vectors, V = 1000 little-endian float32 (seeded numpy)
    <case>.f32        the output of transformers' own processor class(es) on (input_ids, input_k)
    cases.json        one entry per case: processor, params, input, expected, HF class + args, checks
    ORDER.md          the order `GenerationMixin._get_logits_processor` (4.57.6) applies them in, the
                      conditions, and the GenerationConfig defaults (read from this transformers)
Part "generate" -> models/fixtures/tiny-random-gpt2/generate_reference.json
    "cases": greedy and beam-search `model.generate` on the tiny random checkpoint
    (models/work/tiny-random-gpt2-checkpoint; made by make_fixtures.py --preset tiny if missing), every
    generation option gptrt implements that transformers has, alone and in combinations, greedy and beam
    (each case must change the result where the option can; see the asserts).
    "warped_cases": sampling configs, which cannot be compared token for token (torch's RNG cannot be
    reproduced elsewhere): for each, transformers' own processor + warper list for that GenerationConfig
    applied at each step of a fixed trajectory (the greedy continuation), as the surviving [id, score]
    pairs (models/_warped_reference.py).

Everything is deterministic (fixed seeds, CPU torch); rerunning reproduces the files byte for byte.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import math
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EOS_ID, FIXTURES_DIR, MODELS_DIR, TOKENIZER_DIR, WORK_DIR, hf_offline  # noqa: E402

hf_offline()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import GenerationConfig  # noqa: E402
from transformers.generation import logits_process as lp  # noqa: E402
from _warped_reference import RAW_NOISE, sampling_specs, warped_steps  # noqa: E402

torch.set_num_threads(2)

PROC_DIR = FIXTURES_DIR / "processors"
TINY_DIR = FIXTURES_DIR / "tiny-random-gpt2"
CKPT = WORK_DIR / "tiny-random-gpt2-checkpoint"

V = 1000
EOS_SMALL = 999  # the eos id used by the V = 1000 processor cases
# ~30 context ids with repeats: ends in (17, 42, 256); (256, x) occurs 3 times earlier (x = 9, 7, 12),
# (42, 256, x) twice (x = 9, 12), so no_repeat_ngram_size 2 / 3 ban {9, 7, 12} / {9, 12}.
INPUT_IDS = [101, 17, 42, 256, 9, 33, 256, 7, 500, 101, 3, 17, 42, 256, 12, 88, 5, 7, 640, 33,
             101, 250, 1, 64, 911, 3, 17, 42, 256]


def log(msg: str) -> None:
    print(f"[make_sampler_fixtures] {msg}", flush=True)


def dump_json(obj) -> str:
    """Indented JSON with lists of numbers kept on one line (same style as reference.json)."""
    import re

    text = json.dumps(obj, ensure_ascii=False, indent=2)
    return re.sub(r"\[\s+([-0-9.eE,\s]+?)\s+\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def write_f32(path: Path, t) -> None:
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    a.reshape(-1).astype("<f4").tofile(path)


# =================================================================================== part A
def make_inputs() -> dict[str, np.ndarray]:
    """input_1: N(0,1)*3; input_2: N(0,1)*2 rounded to 0.5 steps (many exact ties);
    input_3: N(0,1)*2 plus 4 very large logits (40, 38.7, 37.1, 33.4) at fixed ids."""
    rng = np.random.default_rng(20240601)
    x1 = (rng.standard_normal(V) * 3.0).astype(np.float32)
    x2 = (np.round(rng.standard_normal(V) * 2.0 / 0.5) * 0.5).astype(np.float32)
    x3 = (rng.standard_normal(V) * 2.0).astype(np.float32)
    for tok, val in [(123, 40.0), (456, 38.7), (789, 37.1), (42, 33.4)]:
        x3[tok] = val
    return {"input_1.f32": x1, "input_2.f32": x2, "input_3.f32": x3.astype(np.float32)}


# --- decision margins: how far each threshold decision is from flipping (so a runtime whose softmax /
# cumsum differ by ~1e-7 still makes the same choice). Recomputed with torch ops like the class does.
def _margin(proc, ids: torch.Tensor, scores: torch.Tensor):
    if isinstance(proc, lp.TopPLogitsWarper):
        s, _ = torch.sort(scores, descending=False)
        cum = s.softmax(-1).cumsum(-1)[0]
        thr = torch.tensor(1 - proc.top_p, dtype=torch.float32)
        return float((cum - thr).abs().min())
    if isinstance(proc, lp.TypicalLogitsWarper):
        normalized = torch.nn.functional.log_softmax(scores, dim=-1)
        p = torch.exp(normalized)
        ent = -(normalized * p).nansum(-1, keepdim=True)
        shifted = torch.abs((-normalized) - ent)
        ss, si = torch.sort(shifted, descending=False)
        cum = scores.gather(-1, si).softmax(-1).cumsum(-1)[0]
        m1 = float((cum - torch.tensor(proc.mass, dtype=torch.float32)).abs().min())
        last = int((cum < proc.mass).sum().clamp(max=ss.shape[-1] - 1))
        ref = ss[0, last]
        d = (ss[0] - ref).abs()
        d = d[(d > 0) & torch.isfinite(d)]
        m2 = float(d.min() / max(abs(float(ref)), 1e-30)) if d.numel() else float("inf")
        return min(m1, m2)
    if isinstance(proc, lp.MinPLogitsWarper):
        probs = torch.softmax(scores, -1)
        thr = proc.min_p * probs.max()
        return float(((probs - thr).abs() / thr).min())
    if isinstance(proc, lp.EpsilonLogitsWarper):
        probs = scores.softmax(-1)
        return float(((probs - proc.epsilon).abs() / proc.epsilon).min())
    if isinstance(proc, lp.EtaLogitsWarper):
        probs = scores.softmax(-1)
        entropy = torch.distributions.Categorical(logits=scores).entropy()
        eta = torch.min(proc.epsilon, torch.sqrt(proc.epsilon) * torch.exp(-entropy))
        return float(((probs - eta).abs() / eta).min())
    if isinstance(proc, lp.TopKLogitsWarper):
        k = min(proc.top_k, scores.shape[-1])
        kth = torch.topk(scores, k)[0][0, -1]
        d = (scores[0] - kth).abs()
        d = d[(d > 0) & torch.isfinite(d)]
        return float(d.min()) if d.numel() else float("inf")
    return None


def _tie_split(inp: torch.Tensor, out: torch.Tensor) -> bool:
    """True when two equal finite input scores end up one removed (-inf) and one kept."""
    x, y = inp[0].numpy(), out[0].numpy()
    removed = np.isneginf(y) & np.isfinite(x)
    for v in np.unique(x[np.isfinite(x)]):
        grp = removed[x == v]
        if grp.any() and not grp.all():
            return True
    return False


def _apply_checked(procs, ids: torch.Tensor, scores: torch.Tensor):
    """Apply processors one by one; collect the smallest decision margin and any tie split."""
    margins, tie = [], False
    cur = scores
    for p in procs:
        m = _margin(p, ids, cur)
        nxt = p(ids, cur.clone())
        if m is not None:
            margins.append(m)
            tie = tie or _tie_split(cur, nxt)
        cur = nxt
    return cur, (min(margins) if margins else None), tie


def _permutation_stable(procs, ids, scores, n=8) -> bool:
    """Vocabulary-permutation check (only for processors that do not look at token ids):
    permuting the vocab, applying, and un-permuting must give the same result."""
    ref = scores
    for p in procs:
        ref = p(ids, ref.clone())
    g = torch.Generator().manual_seed(0)
    for _ in range(n):
        perm = torch.randperm(scores.shape[-1], generator=g)
        out = scores[:, perm]
        for p in procs:
            out = p(ids, out.clone())
        back = torch.empty_like(out)
        back[:, perm] = out
        if not torch.equal(back, ref):
            return False
    return True


def chain_from_generation_config(model, gen_kwargs: dict, prompt_length: int):
    """The LogitsProcessorList transformers itself builds in generate() for this config."""
    gc = GenerationConfig(**gen_kwargs)
    model._prepare_special_tokens(gc, kwargs_has_attention_mask=True, device="cpu")
    return model._get_logits_processor(
        generation_config=gc, input_ids_seq_length=prompt_length,
        encoder_input_ids=torch.tensor([INPUT_IDS[:prompt_length]]), logits_processor=None, device="cpu",
    )


def describe(proc) -> dict:
    """Class name + the public attributes that define it (for cases.json / chains)."""
    d = {"class": type(proc).__name__}
    for k, v in vars(proc).items():
        if k.startswith("_") or k in ("filter_value", "logits_indices", "cu_seq_lens_q", "length_1_bias",
                                      "prepared_bias_variables"):
            continue
        if isinstance(v, torch.Tensor):
            v = v.tolist()
        if k in ("sequence_bias",) and isinstance(v, dict):
            v = [[list(key), b if math.isfinite(b) else str(b)] for key, b in v.items()]
        if isinstance(v, float) and not math.isfinite(v):
            v = str(v)
        d[k] = v
    return d


def build_processor_cases(model) -> list[dict]:
    """(name, processor, params, hf_args, [procs], input_ids override, inputs used)."""
    ALL = ["input_1.f32", "input_2.f32", "input_3.f32"]
    L = len(INPUT_IDS)
    specs = []

    def add(name, processor, params, procs, inputs=ALL, input_ids=None, extra=None):
        specs.append(dict(name=name, processor=processor, params=params, procs=procs,
                          inputs=inputs, input_ids=input_ids, extra=extra or {}))

    for t in (0.5, 0.7, 1.3):
        add(f"temperature_{t}", "temperature", {"temperature": t}, [lp.TemperatureLogitsWarper(t)])
    for k in (1, 5, 50, 1000, 2000):
        add(f"top_k_{k}", "top_k", {"top_k": k, "min_tokens_to_keep": 1}, [lp.TopKLogitsWarper(k, min_tokens_to_keep=1)])
    add("top_k_1_keep3", "top_k", {"top_k": 1, "min_tokens_to_keep": 3}, [lp.TopKLogitsWarper(1, min_tokens_to_keep=3)])
    for p in (0.1, 0.5, 0.9, 0.95, 0.999):
        add(f"top_p_{p}", "top_p", {"top_p": p, "min_tokens_to_keep": 1}, [lp.TopPLogitsWarper(p, min_tokens_to_keep=1)])
    add("top_p_0.01_keep3", "top_p", {"top_p": 0.01, "min_tokens_to_keep": 3},
        [lp.TopPLogitsWarper(0.01, min_tokens_to_keep=3)])
    for p in (0.2, 0.9):
        add(f"typical_p_{p}", "typical_p", {"typical_p": p, "min_tokens_to_keep": 1},
            [lp.TypicalLogitsWarper(mass=p, min_tokens_to_keep=1)])
    add("typical_p_0.2_keep3", "typical_p", {"typical_p": 0.2, "min_tokens_to_keep": 3},
        [lp.TypicalLogitsWarper(mass=0.2, min_tokens_to_keep=3)])
    for p in (0.05, 0.2):
        add(f"min_p_{p}", "min_p", {"min_p": p, "min_tokens_to_keep": 1}, [lp.MinPLogitsWarper(p, min_tokens_to_keep=1)])
    add("min_p_0.2_keep3", "min_p", {"min_p": 0.2, "min_tokens_to_keep": 3}, [lp.MinPLogitsWarper(0.2, min_tokens_to_keep=3)])
    for e in (3e-4, 0.01):
        add(f"epsilon_cutoff_{e}", "epsilon_cutoff", {"epsilon_cutoff": e, "min_tokens_to_keep": 1},
            [lp.EpsilonLogitsWarper(e, min_tokens_to_keep=1)])
    add("epsilon_cutoff_0.01_keep3", "epsilon_cutoff", {"epsilon_cutoff": 0.01, "min_tokens_to_keep": 3},
        [lp.EpsilonLogitsWarper(0.01, min_tokens_to_keep=3)])
    for e in (3e-4, 0.01, 0.2):
        add(f"eta_cutoff_{e}", "eta_cutoff", {"eta_cutoff": e, "min_tokens_to_keep": 1},
            [lp.EtaLogitsWarper(e, min_tokens_to_keep=1)])
    add("eta_cutoff_0.01_keep3", "eta_cutoff", {"eta_cutoff": 0.01, "min_tokens_to_keep": 3},
        [lp.EtaLogitsWarper(0.01, min_tokens_to_keep=3)])
    for r in (1.2, 0.8):
        add(f"repetition_penalty_{r}", "repetition_penalty", {"repetition_penalty": r},
            [lp.RepetitionPenaltyLogitsProcessor(r)])
    for n in (1, 2, 3):
        add(f"no_repeat_ngram_size_{n}", "no_repeat_ngram_size", {"no_repeat_ngram_size": n},
            [lp.NoRepeatNGramLogitsProcessor(n)])
    # no_repeat n = 4: (17, 42, 256) occurred only at the end before... (17,42,256) occurs at 1-3 -> bans 9
    add("no_repeat_ngram_size_4", "no_repeat_ngram_size", {"no_repeat_ngram_size": 4},
        [lp.NoRepeatNGramLogitsProcessor(4)], inputs=["input_1.f32"])
    last = INPUT_IDS[-1]
    bad = [[5], [7, 8], [last, 77], [42, last, 78], [17, 43, 79], [EOS_SMALL]]
    add("bad_words_ids", "bad_words_ids", {"bad_words_ids": bad, "eos_token_id": EOS_SMALL},
        [lp.NoBadWordsLogitsProcessor(bad, eos_token_id=EOS_SMALL)],
        extra={"note": f"bans 5 (single), 77 (prefix [{last}] matches the context end), 78 (prefix [42, {last}] "
                       f"matches); 8 and 79 are not banned (prefix does not match); [999] is dropped because "
                       f"it equals eos_token_id"})
    sb = {(3,): 2.5, (last, 11): -4.0}
    add("sequence_bias", "sequence_bias", {"sequence_bias": [[list(k), v] for k, v in sb.items()]},
        [lp.SequenceBiasLogitsProcessor(sb)])
    sb2 = {(3,): 2.5, (last, 11): -4.0, (42, last, 11): 1.5, (17, 12): 1.0, (700,): -1.25,
           (101, 3, 17, 42, 256, 13): 0.75}
    add("sequence_bias_overlap", "sequence_bias", {"sequence_bias": [[list(k), v] for k, v in sb2.items()]},
        [lp.SequenceBiasLogitsProcessor(sb2)],
        extra={"note": "11 gets -4.0 + 1.5 (both prefixes match the end; biases add), 12 nothing (prefix [17] "
                       "does not match the end), 13 nothing (prefix longer than the matching tail)"})
    add("suppress_tokens", "suppress_tokens", {"suppress_tokens": [1, 2, 500]},
        [lp.SuppressTokensLogitsProcessor([1, 2, 500])])
    for P, M in ((L - 2, 5), (L - 4, 5), (L - 5, 5), (L - 10, 5), (L, 1), (L, 0)):
        add(f"min_new_tokens_p{P}_m{M}", "min_new_tokens",
            {"prompt_length": P, "min_new_tokens": M, "eos_token_id": EOS_SMALL},
            [lp.MinNewTokensLengthLogitsProcessor(P, M, EOS_SMALL)], inputs=["input_1.f32"],
            extra={"eos_suppressed": (L - P) < M})
    add("min_new_tokens_eos_list", "min_new_tokens",
        {"prompt_length": L - 1, "min_new_tokens": 3, "eos_token_id": [998, EOS_SMALL]},
        [lp.MinNewTokensLengthLogitsProcessor(L - 1, 3, [998, EOS_SMALL])], inputs=["input_1.f32"],
        extra={"eos_suppressed": True})
    for ml in (L + 1, L + 2, L):
        add(f"min_length_{ml}", "min_length", {"min_length": ml, "eos_token_id": EOS_SMALL},
            [lp.MinLengthLogitsProcessor(ml, EOS_SMALL)], inputs=["input_1.f32"],
            extra={"eos_suppressed": L < ml})
    for ml in (L + 1, L + 2, L):
        add(f"forced_eos_max_length_{ml}", "forced_eos", {"max_length": ml, "eos_token_id": EOS_SMALL},
            [lp.ForcedEOSTokenLogitsProcessor(ml, EOS_SMALL)], inputs=["input_1.f32"],
            extra={"forced": L == ml - 1})
    add("forced_eos_list", "forced_eos", {"max_length": L + 1, "eos_token_id": [998, EOS_SMALL]},
        [lp.ForcedEOSTokenLogitsProcessor(L + 1, [998, EOS_SMALL])], inputs=["input_1.f32"],
        extra={"forced": True})
    add("renormalize_logits", "renormalize_logits", {"renormalize_logits": True}, [lp.LogitNormalization()])

    # chains exactly as GenerationMixin._get_logits_processor builds them
    chains = [
        ("chain", dict(do_sample=True, temperature=0.7, top_k=40, top_p=0.9, repetition_penalty=1.3), L),
        ("chain_all", dict(do_sample=True, temperature=0.8, top_k=100, top_p=0.95, min_p=0.02, typical_p=0.97,
                           epsilon_cutoff=3e-4, eta_cutoff=3e-4, repetition_penalty=1.2, no_repeat_ngram_size=2,
                           bad_words_ids=[[5], [INPUT_IDS[-1], 77]], min_new_tokens=4, suppress_tokens=[1, 2],
                           sequence_bias={(3,): 2.5, (INPUT_IDS[-1], 11): -4.0}, eos_token_id=EOS_SMALL,
                           pad_token_id=EOS_SMALL), L - 2),
        ("chain_greedy", dict(do_sample=False, temperature=0.7, top_k=40, top_p=0.9, repetition_penalty=1.3,
                              no_repeat_ngram_size=3), L),
        ("chain_beam_sample", dict(do_sample=True, num_beams=2, top_k=1, top_p=0.3, eos_token_id=EOS_SMALL,
                                   pad_token_id=EOS_SMALL), L),
    ]
    for name, gk, P in chains:
        procs = list(chain_from_generation_config(model, gk, P))
        params = {k: ([[list(a), b] for a, b in v.items()] if k == "sequence_bias" else v) for k, v in gk.items()}
        add(name, "chain", params, procs,
            extra={"prompt_length": P, "classes": [describe(p) for p in procs]})
    return specs


def make_processor_fixtures() -> None:
    from transformers import GPT2LMHeadModel

    PROC_DIR.mkdir(parents=True, exist_ok=True)
    for old in PROC_DIR.glob("*.f32"):
        old.unlink()
    inputs = make_inputs()
    for fname, arr in inputs.items():
        write_f32(PROC_DIR / fname, arr)
    model = GPT2LMHeadModel.from_pretrained(CKPT).eval()  # only for its _get_logits_processor
    specs = build_processor_cases(model)

    cases, min_margin, n_tie = [], float("inf"), 0
    for sp in specs:
        for fname in sp["inputs"]:
            k = fname.split("_")[1].split(".")[0]
            name = f"{sp['name']}_in{k}"
            ids_list = sp["input_ids"] or INPUT_IDS
            ids = torch.tensor([ids_list], dtype=torch.long)
            scores = torch.from_numpy(inputs[fname].copy()).view(1, V)
            # fresh processor objects for every use (SequenceBias caches its bias on the first call)
            procs = [copy.deepcopy(p) for p in sp["procs"]]
            # the list call path (LogitsProcessorList) is what generate uses; also apply step by step
            out_list = lp.LogitsProcessorList(procs)(ids, scores.clone())
            procs2 = [copy.deepcopy(p) for p in sp["procs"]]
            out, margin, tie = _apply_checked(procs2, ids, scores.clone())
            assert torch.equal(out_list, out), name
            assert not torch.isnan(out).any(), f"{name}: NaN in output"
            assert not torch.isposinf(out).any(), f"{name}: +inf in output"
            write_f32(PROC_DIR / f"{name}.f32", out_list)
            n_inf_in = int(torch.isneginf(scores).sum())
            n_inf = int(torch.isneginf(out_list).sum())
            case = {"name": name, "processor": sp["processor"], "params": sp["params"], "input": fname,
                    "expected": f"{name}.f32"}
            if sp["input_ids"] is not None:
                case["input_ids"] = sp["input_ids"]
            case["hf"] = [describe(p) for p in sp["procs"]] if sp["processor"] != "chain" else None
            if case["hf"] is None:
                del case["hf"]
            case["n_neg_inf"] = n_inf - n_inf_in
            case["n_kept"] = int(torch.isfinite(out_list).sum())
            if margin is not None:
                case["margin"] = float(f"{margin:.3g}")
                min_margin = min(min_margin, margin)
                case["tie_sensitive"] = bool(tie)
                if not any(isinstance(p, (lp.RepetitionPenaltyLogitsProcessor, lp.NoRepeatNGramLogitsProcessor,
                                          lp.SequenceBiasLogitsProcessor, lp.MinNewTokensLengthLogitsProcessor,
                                          lp.SuppressTokensLogitsProcessor)) for p in procs2):
                    stable = _permutation_stable([copy.deepcopy(p) for p in sp["procs"]], ids, scores.clone())
                    assert stable == (not tie), f"{name}: permutation check {stable} vs tie split {tie}"
                    if tie:
                        n_tie += 1
                elif tie:
                    n_tie += 1
            if len(procs2) == 1 and isinstance(procs2[0], lp.EtaLogitsWarper):
                ent = torch.distributions.Categorical(logits=scores).entropy()
                eps = procs2[0].epsilon
                eta = torch.min(eps, torch.sqrt(eps) * torch.exp(-ent))
                case["entropy"] = float(f"{float(ent):.7g}")
                case["eta"] = float(f"{float(eta):.7g}")
                case["eta_branch"] = "epsilon" if float(eta) == float(eps) else "sqrt(epsilon)*exp(-entropy)"
            case.update(sp["extra"])
            cases.append(case)
            log(f"{name:40s} kept {case['n_kept']:4d}  -inf added {case['n_neg_inf']:4d}"
                + (f"  margin {margin:.3g}" if margin is not None else "") + ("  TIE-SENSITIVE" if tie else ""))
    doc = {
        "vocab_size": V,
        "input_ids": INPUT_IDS,
        "format": "input_<k>.f32 / <case>.f32: 1000 little-endian float32 (batch 1); removed tokens are -inf",
        "notes": {
            "margin": "smallest distance of any threshold decision from flipping: |cumsum - (1-top_p)| (top_p), "
                      "|cumsum - mass| and relative gap of the shifted-score cut (typical_p), "
                      "|p - thr|/thr (min_p, epsilon, eta), absolute logit gap to the k-th value (top_k); "
                      "minimum over the warpers of a chain",
            "tie_sensitive": "true when equal input scores straddle the cut: which of the tied tokens are removed "
                             "depends on torch.sort / argsort order, and torch's CPU sort is NOT stable. Compare "
                             "such cases as multisets (sorted output values, or the count of -inf per distinct "
                             "input value), not position by position",
            "n_neg_inf": "number of -inf the processor(s) added",
        },
        "generated_with": {"torch": torch.__version__, "transformers": transformers.__version__,
                           "numpy": np.__version__, "seed": 20240601},
        "cases": cases,
    }
    (PROC_DIR / "cases.json").write_text(dump_json(doc), encoding="utf-8")
    log(f"wrote {PROC_DIR / 'cases.json'}: {len(cases)} cases, smallest margin {min_margin:.3g}, "
        f"{n_tie} tie-sensitive")
    write_order_md(model)


# ----------------------------------------------------------------------------------- ORDER.md
ORDER = [
    # (class, GenerationConfig condition)
    ("UnbatchedClassifierFreeGuidanceLogitsProcessor", "guidance_scale is not None and != 1"),
    ("SequenceBiasLogitsProcessor", "sequence_bias is not None"),
    ("EncoderRepetitionPenaltyLogitsProcessor", "encoder_repetition_penalty is not None and != 1.0 "
                                                "(encoder_input_ids = the prompt for decoder-only models)"),
    ("RepetitionPenaltyLogitsProcessor", "repetition_penalty is not None and != 1.0"),
    ("NoRepeatNGramLogitsProcessor", "no_repeat_ngram_size is not None and > 0"),
    ("EncoderNoRepeatNGramLogitsProcessor", "encoder_no_repeat_ngram_size is not None and > 0"),
    ("NoBadWordsLogitsProcessor", "bad_words_ids is not None (eos ids given as single-token bad words are dropped)"),
    ("MinLengthLogitsProcessor", "min_length is not None and > 0 and an eos token is set"),
    ("MinNewTokensLengthLogitsProcessor", "min_new_tokens is not None and > 0 and an eos token is set "
                                          "(prompt_length_to_skip = prompt length)"),
    ("PrefixConstrainedLogitsProcessor", "prefix_allowed_tokens_fn passed to generate"),
    ("ForcedBOSTokenLogitsProcessor", "forced_bos_token_id is not None"),
    ("ForcedEOSTokenLogitsProcessor", "forced_eos_token_id is not None (uses generation_config.max_length = "
                                      "prompt length + max_new_tokens)"),
    ("InfNanRemoveLogitsProcessor", "remove_invalid_values is True"),
    ("ExponentialDecayLengthPenalty", "exponential_decay_length_penalty is not None"),
    ("SuppressTokensLogitsProcessor", "suppress_tokens is not None"),
    ("SuppressTokensAtBeginLogitsProcessor", "begin_suppress_tokens is not None"),
    ("(user logits_processor list)", "merged here by _merge_criteria_processor_list: a user processor whose class "
                                     "is already in the list replaces it in place, the others are appended here "
                                     "(i.e. before the warpers)"),
    ("TemperatureLogitsWarper", "do_sample and temperature is not None and != 1.0"),
    ("TopKLogitsWarper", "do_sample and top_k is not None and != 0"),
    ("TopPLogitsWarper", "do_sample and top_p is not None and < 1.0"),
    ("MinPLogitsWarper", "do_sample and min_p is not None"),
    ("TypicalLogitsWarper", "do_sample and typical_p is not None and < 1.0"),
    ("EpsilonLogitsWarper", "do_sample and 0.0 < epsilon_cutoff < 1.0"),
    ("EtaLogitsWarper", "do_sample and 0.0 < eta_cutoff < 1.0"),
    ("(watermarking processor)", "watermarking_config is not None"),
    ("LogitNormalization", "renormalize_logits is True (always last)"),
]


def write_order_md(model) -> None:
    src = inspect.getsource(type(model)._get_logits_processor)
    pos = []
    for cls, _ in ORDER:
        if cls.startswith("("):
            continue
        i = src.find(cls + "(")
        assert i >= 0, f"{cls} not found in _get_logits_processor"
        pos.append(i)
    assert pos == sorted(pos), "ORDER does not match the source of _get_logits_processor"
    # and check it with an actual build that turns on (almost) everything
    gk = dict(do_sample=True, temperature=0.8, top_k=100, top_p=0.95, min_p=0.02, typical_p=0.97,
              epsilon_cutoff=3e-4, eta_cutoff=3e-4, repetition_penalty=1.2, encoder_repetition_penalty=1.1,
              no_repeat_ngram_size=2, encoder_no_repeat_ngram_size=3, bad_words_ids=[[5]], min_length=3,
              min_new_tokens=4, forced_bos_token_id=0, forced_eos_token_id=EOS_SMALL, remove_invalid_values=True,
              exponential_decay_length_penalty=(5, 1.1), suppress_tokens=[1, 2], begin_suppress_tokens=[3],
              sequence_bias={(3,): 2.5}, renormalize_logits=True, eos_token_id=EOS_SMALL, pad_token_id=EOS_SMALL,
              max_length=40)
    built = [type(p).__name__ for p in chain_from_generation_config(model, gk, 10)]
    expected = [c for c, _ in ORDER if not c.startswith("(") and c not in (
        "UnbatchedClassifierFreeGuidanceLogitsProcessor", "PrefixConstrainedLogitsProcessor")]
    assert built == expected, f"built {built}\nexpected {expected}"
    built_beam = chain_from_generation_config(model, dict(gk, num_beams=2), 10)
    mtk = {type(p).__name__: (p.top_k if isinstance(p, lp.TopKLogitsWarper) else p.min_tokens_to_keep)
           for p in built_beam if hasattr(p, "min_tokens_to_keep") or isinstance(p, lp.TopKLogitsWarper)}

    d = GenerationConfig()
    fields = ["max_length", "max_new_tokens", "min_length", "min_new_tokens", "early_stopping", "do_sample",
              "num_beams", "num_return_sequences", "temperature", "top_k", "top_p", "min_p", "typical_p",
              "epsilon_cutoff", "eta_cutoff", "repetition_penalty", "encoder_repetition_penalty", "length_penalty",
              "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids", "sequence_bias",
              "suppress_tokens", "begin_suppress_tokens", "forced_bos_token_id", "forced_eos_token_id",
              "remove_invalid_values", "exponential_decay_length_penalty", "renormalize_logits",
              "guidance_scale", "bos_token_id", "eos_token_id", "pad_token_id", "use_cache"]
    lines = [
        f"# Logits processor order in transformers {transformers.__version__}",
        "",
        "Generated by `models/make_sampler_fixtures.py --part processors` from the source of",
        "`transformers.generation.utils.GenerationMixin._get_logits_processor` (checked two ways: the class names",
        "appear in this order in that function's source, and a GenerationConfig that turns on every option",
        "builds exactly this list).",
        "",
        "## Order and conditions",
        "",
        "| # | class | added when (GenerationConfig) |",
        "|---|---|---|",
    ]
    lines += [f"| {i + 1} | `{c}` | {cond} |" for i, (c, cond) in enumerate(ORDER)]
    lines += [
        "",
        "Everything above `TemperatureLogitsWarper` is a *processor* (applied for greedy, beam and sampling);",
        "from `TemperatureLogitsWarper` to `EtaLogitsWarper` they are the former *warpers*, added only when",
        "`do_sample=True`. Note that `min_p` comes right after `top_p` and BEFORE `typical_p`, epsilon and eta.",
        "`_get_logits_processor` builds the list once per `generate` call; the list is applied in order to",
        "`(input_ids [B, cur_len] (prompt + generated so far), scores [B, V] float32)`:",
        "",
        "- greedy / sampling (`_sample`): `scores` = the raw last-position logits (copied to float32);",
        "  greedy takes `argmax` of the processed scores, sampling `multinomial(softmax(processed))`.",
        "- beam search (`_beam_search`): `scores` = `log_softmax(logits)` and the processors run on the",
        "  log-probabilities; the processed values are then added to the running beam scores.",
        "",
        "## min_tokens_to_keep",
        "",
        "With `num_beams == 1` every warper gets `min_tokens_to_keep = 1`. With `num_beams > 1` (beam sampling)",
        "they get `len(eos_token_id) + 1` (the eos ids as a tensor; 2 when no eos is set), e.g. with one eos id:",
        "`" + json.dumps(mtk) + "` (TopK stores `max(top_k, min_tokens_to_keep)` as its `top_k`).",
        "",
        "## Other order-relevant details",
        "",
        "- `max_new_tokens` overrides `max_length`: `max_length = prompt_length + max_new_tokens`.",
        "- `MinNewTokensLengthLogitsProcessor(prompt_length_to_skip = prompt length, min_new_tokens)`: eos ids",
        "  set to -inf while `input_ids.shape[-1] - prompt_length < min_new_tokens`.",
        "- `MinLengthLogitsProcessor(min_length)`: eos ids -inf while `input_ids.shape[-1] < min_length`",
        "  (min_length counts the prompt).",
        "- `ForcedEOSTokenLogitsProcessor(max_length, eos)`: when `input_ids.shape[-1] == max_length - 1`, every",
        "  score becomes -inf and the eos id(s) 0.",
        "- `NoBadWordsLogitsProcessor` drops every bad word that is exactly `[eos]` for an eos id, then behaves",
        "  as `SequenceBiasLogitsProcessor` with bias -inf.",
        "- `guidance_scale`, `prefix_allowed_tokens_fn`, `watermarking_config` are not used by gptrt.",
        "",
        f"## GenerationConfig defaults ({transformers.__version__})",
        "",
        "| field | default |",
        "|---|---|",
    ]
    lines += [f"| `{f}` | `{json.dumps(getattr(d, f))}` |" for f in fields]
    lines += [
        "",
        "A model's `generation_config.json` overrides these (the tiny checkpoint sets `bos_token_id` and",
        "`eos_token_id` to 50256); `generate(**kwargs)` overrides both. With `do_sample=False` the warper fields",
        "(temperature, top_k = 50 by default, top_p, ...) are ignored. `early_stopping` is only used by beam",
        "search. A GenerationConfig with `pad_token_id` None gets `pad_token_id = eos_token_id[0]` inside",
        "generate (with a warning).",
        "",
    ]
    (PROC_DIR / "ORDER.md").write_text("\n".join(lines), encoding="utf-8")
    log(f"wrote {PROC_DIR / 'ORDER.md'}")


# =================================================================================== part B
PROMPTS = [("hello_world", "Hello world"), ("once_upon_a_time", "Once upon a time"),
           ("leading_space", " leading space")]
NOISE = 1e-4  # perturbation used to check that every reference is robust


class _Noise(lp.LogitsProcessor):
    def __init__(self, seed: int, amp: float):
        self.g = torch.Generator().manual_seed(seed)
        self.amp = amp

    def __call__(self, input_ids, scores):
        n = (torch.rand(scores.shape, generator=self.g) * 2 - 1) * self.amp
        return scores + n


def ensure_checkpoint() -> None:
    if (CKPT / "model.safetensors").exists():
        return
    # make_fixtures.py names the checkpoint work/<out folder name>-checkpoint; exporting to
    # work/tiny-random-gpt2 recreates work/tiny-random-gpt2-checkpoint without touching the committed fixtures
    log(f"{CKPT} missing: running make_fixtures.py --preset tiny --out models/work/tiny-random-gpt2")
    subprocess.run([sys.executable, str(MODELS_DIR / "make_fixtures.py"), "--preset", "tiny",
                    "--out", str(WORK_DIR / "tiny-random-gpt2"), "--skip-verify"], check=True)


def ort_greedy_replay(model, onnx_path: Path, ids: list[int], cfg: dict) -> tuple[list[int], float]:
    """Greedy decoding with onnxruntime logits (full recompute on the nopast graph) and the processor list
    transformers builds for `cfg`: what a runtime on the ONNX export should reproduce. Returns the generated
    ids (cut after eos) and the smallest top1-top2 gap of the processed scores."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    gc = GenerationConfig(**cfg)
    if gc.max_new_tokens is not None:
        gc.max_length = len(ids) + gc.max_new_tokens
    model._prepare_special_tokens(gc, kwargs_has_attention_mask=True, device="cpu")
    procs = model._get_logits_processor(generation_config=gc, input_ids_seq_length=len(ids),
                                        encoder_input_ids=torch.tensor([ids]), device="cpu")
    eos = set(gc._eos_token_tensor.tolist()) if gc._eos_token_tensor is not None else set()
    seq, out, gap = list(ids), [], float("inf")
    new_tokens = gc.max_new_tokens if gc.max_new_tokens is not None else gc.max_length - len(ids)
    for _ in range(new_tokens):
        x = np.array([seq], dtype=np.int64)
        logits = sess.run(["logits"], {"input_ids": x, "attention_mask": np.ones_like(x),
                                       "position_ids": np.arange(len(seq), dtype=np.int64)[None]})[0][0, -1]
        sc = procs(torch.tensor([seq]), torch.from_numpy(logits.astype(np.float32))[None])
        v = torch.topk(sc[0], 2).values
        gap = min(gap, float(v[0] - v[1]))
        t = int(sc[0].argmax())
        seq.append(t)
        out.append(t)
        if t in eos:
            break
    return out, gap


def ort_beam_replay(model, onnx_path: Path, ids: list[int], cfg: dict):
    """Beam search re-implemented from the 4.57.6 source (GenerationMixin._beam_search and helpers) in plain
    numpy/float32 on onnxruntime logits (batch 1). It documents the algorithm a runtime has to follow;
    make_generate_reference checks that it returns transformers' sequences and sequences_scores."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    gc = GenerationConfig(**cfg)
    if gc.max_new_tokens is not None:
        gc.max_length = len(ids) + gc.max_new_tokens
    model._prepare_special_tokens(gc, kwargs_has_attention_mask=True, device="cpu")
    procs = model._get_logits_processor(generation_config=gc, input_ids_seq_length=len(ids),
                                        encoder_input_ids=torch.tensor([ids]), device="cpu")
    eos = gc._eos_token_tensor.tolist() if gc._eos_token_tensor is not None else []
    nb, lpen, es, max_len, P = gc.num_beams, gc.length_penalty, gc.early_stopping, gc.max_length, len(ids)
    K = max(2, 1 + len(eos)) * nb                      # beams_to_keep
    f32 = np.float32
    running = [list(ids) for _ in range(nb)]
    run_scores = np.array([0.0] + [-1e9] * (nb - 1), dtype=f32)
    fin = [list(ids) for _ in range(nb)]               # finished hypotheses ("sequences")
    fin_scores = np.full(nb, -1e9, dtype=f32)           # ("beam_scores")
    fin_done = np.zeros(nb, dtype=bool)                 # ("is_sent_finished")
    unsatisfied = True                                  # ("is_early_stop_heuristic_unsatisfied")
    cur = P
    while True:
        x = np.array(running, dtype=np.int64)
        logits = sess.run(["logits"], {"input_ids": x, "attention_mask": np.ones_like(x),
                                       "position_ids": np.tile(np.arange(cur, dtype=np.int64), (nb, 1))})[0][:, -1]
        m = logits.max(-1, keepdims=True)
        logp = (logits - m) - np.log(np.exp(logits - m).sum(-1, keepdims=True))
        logp = procs(torch.tensor(running), torch.from_numpy(logp.astype(f32))).numpy()
        acc = (logp + run_scores[:, None]).reshape(-1).astype(f32)
        top = np.argsort(-acc, kind="stable")[:K]       # torch.topk over num_beams * V
        top_lp = acc[top]
        cand = [running[i // logp.shape[1]] + [int(i % logp.shape[1])] for i in top]
        hits = np.array([c[-1] in eos or len(c) >= max_len for c in cand])
        # e. next running beams: best num_beams candidates that did not stop
        r_lp = (top_lp + hits.astype(f32) * f32(-1e9)).astype(f32)
        nxt = np.argsort(-r_lp, kind="stable")[:nb]
        running, run_scores = [cand[i] for i in nxt], r_lp[nxt]
        # f. finished: only candidates among the first num_beams of the K that stopped
        just = hits & (np.arange(K) < nb)
        f_lp = (top_lp / f32((cur + 1 - P) ** lpen)).astype(f32)
        if fin_done.all() and es is True:
            f_lp = f_lp + f32(-1e9)
        if not unsatisfied:
            f_lp = f_lp + f32(-1e9)
        f_lp = np.where(just, f_lp, f_lp + f32(-1e9)).astype(f32)
        m_scores = np.concatenate([fin_scores, f_lp])
        m_seqs = fin + cand
        m_done = np.concatenate([fin_done, just])
        sel = np.argsort(-m_scores, kind="stable")[:nb]
        fin, fin_scores, fin_done = [m_seqs[i] for i in sel], m_scores[sel], m_done[sel]
        cur += 1
        # g. early-stop heuristic and loop condition
        best_len = (max_len - P) if (es == "never" and lpen > 0.0) else (cur - P)
        best_possible = run_scores[0] / f32(best_len ** lpen)
        worst = np.where(fin_done, fin_scores.min(), f32(-1e9))
        unsatisfied = unsatisfied and bool((best_possible > worst).any())
        if not (unsatisfied and not (fin_done.all() and es is True) and not hits.all()):
            break
    n = gc.num_return_sequences
    return [s[P:] for s in fin[:n]], [float(v) for v in fin_scores[:n]]


WARPED_STEPS = 4  # steps recorded per warped case: the prompt, then 1..3 greedy tokens appended


def make_generate_reference() -> None:
    import onnxruntime as ort
    from tokenizers import Tokenizer
    from transformers import GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    ensure_checkpoint()
    model = GPT2LMHeadModel.from_pretrained(CKPT).eval()
    tok = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))
    ref = json.loads((TINY_DIR / "reference.json").read_text())
    ref_greedy = {c["prompt"]: c["greedy_ids"] for c in ref["cases"]}

    def gen(ids, cfg, noise_seed=None):
        x = torch.tensor([ids])
        extra = {}
        if noise_seed is not None:
            extra["logits_processor"] = lp.LogitsProcessorList([_Noise(noise_seed, NOISE)])
        with torch.no_grad():
            return model.generate(x, attention_mask=torch.ones_like(x), return_dict_in_generate=True,
                                  output_scores=True, **cfg, **extra)

    def strip(seq, eos):
        eos = set(eos if isinstance(eos, list) else [eos])
        out = []
        for t in seq:
            out.append(t)
            if t in eos:
                break
        return out

    cases, warped = [], []
    min_gap_all = float("inf")
    beam_diff = 0.0
    for pname, prompt in PROMPTS:
        ids = tok.encode(prompt).ids
        base = dict(do_sample=False, max_new_tokens=20, eos_token_id=EOS_ID, pad_token_id=EOS_ID)
        g0 = gen(ids, base).sequences[0, len(ids):].tolist()
        assert g0 == ref_greedy[prompt][:20], f"{pname}: greedy differs from reference.json"
        # a bigram repeated within the 20 greedy tokens (prompt included)?
        full = ids + g0
        bigrams = list(zip(full, full[1:]))
        assert len(set(bigrams)) < len(bigrams), f"{pname}: greedy never repeats a bigram"
        t3 = g0[2]
        assert t3 not in g0[:2]
        eos_list = [EOS_ID, t3]
        with_bad = gen(ids, dict(base, bad_words_ids=[[g0[1]]])).sequences[0, len(ids):].tolist()
        r2 = with_bad[1]
        # eos for the beam cases: a token the beams reach (2nd generated token or later of the returned
        # sequences without eos), chosen so that early_stopping True / "never" / False differ where possible
        beam_cfg = dict(do_sample=False, num_beams=3, num_return_sequences=2, length_penalty=1.0,
                        max_new_tokens=12, pad_token_id=EOS_ID)
        b0 = gen(ids, dict(beam_cfg, early_stopping=False, eos_token_id=EOS_ID)).sequences[:, len(ids):].tolist()
        cands = []
        for row in b0:
            cands += [t for t in row[1:] if t not in cands]
        best = None
        for c in cands:
            rs = {es: gen(ids, dict(beam_cfg, early_stopping=es, eos_token_id=c)).sequences.tolist()
                  for es in (False, True, "never")}
            changes = [x[len(ids):] for x in rs[False]] != b0
            score = (changes, (rs[True] != rs[False]) + (rs["never"] != rs[False]), rs[True] != rs[False])
            if best is None or score > best[0]:
                best = (score, c)
        beam_eos = best[1]
        log(f"{pname}: beam eos {beam_eos} (changes result, #early_stopping variants differing from False, "
            f"True differs) = {best[0]}")
        specs = [
            ("greedy", dict(base)),
            ("greedy_repetition_penalty_1.3", dict(base, repetition_penalty=1.3)),
            ("greedy_no_repeat_ngram_size_2", dict(base, no_repeat_ngram_size=2)),
            ("greedy_eos_list", dict(base, eos_token_id=eos_list)),
            ("greedy_eos_list_min_new_tokens_5", dict(base, eos_token_id=eos_list, min_new_tokens=5)),
            ("greedy_forced_eos", dict(base, max_new_tokens=10, forced_eos_token_id=t3)),
            ("greedy_bad_words", dict(base, bad_words_ids=[[g0[1]]])),
            ("greedy_bad_words_suppress", dict(base, bad_words_ids=[[g0[1]]], suppress_tokens=[r2, EOS_ID])),
            ("beam3_lp1.0_nrs2", dict(beam_cfg, early_stopping=False, eos_token_id=EOS_ID)),
            ("beam4_lp0.6_early_nrs1", dict(do_sample=False, num_beams=4, num_return_sequences=1,
                                            length_penalty=0.6, early_stopping=True, max_new_tokens=12,
                                            pad_token_id=EOS_ID, eos_token_id=EOS_ID)),
            ("beam3_eos_early_false", dict(beam_cfg, early_stopping=False, eos_token_id=beam_eos)),
            ("beam3_eos_early_true", dict(beam_cfg, early_stopping=True, eos_token_id=beam_eos)),
            ("beam3_eos_early_never", dict(beam_cfg, early_stopping="never", eos_token_id=beam_eos)),
            ("beam3_eos_lp2.0_early_never", dict(beam_cfg, length_penalty=2.0, early_stopping="never",
                                                 eos_token_id=beam_eos)),
        ]
        # every other option gptrt implements that transformers has: alone, then combined
        beam_base = dict(beam_cfg, early_stopping=False, eos_token_id=EOS_ID)
        overflow = [[[t3], 3.0e38], [[t3, t3], 3.0e38]]  # t3's score reaches +inf from the 2nd t3 on
        specs += [
            ("greedy_max_length", dict(do_sample=False, max_length=len(ids) + 12, eos_token_id=EOS_ID,
                                       pad_token_id=EOS_ID)),
            ("greedy_eos_list_min_length", dict(base, eos_token_id=eos_list, min_length=len(ids) + 5)),
            ("greedy_suppress_tokens", dict(base, suppress_tokens=[g0[0], t3])),
            ("greedy_begin_suppress_tokens", dict(base, begin_suppress_tokens=[g0[0]])),
            ("greedy_begin_suppress_and_suppress", dict(base, begin_suppress_tokens=[g0[0], g0[1]],
                                                        suppress_tokens=[t3])),
            ("greedy_sequence_bias", dict(base, sequence_bias=[[[g0[0]], -10.0], [[g0[0], g0[1]], -10.0],
                                                               [[t3], 0.5]])),
            ("greedy_remove_invalid_values", dict(base, sequence_bias=overflow, renormalize_logits=True,
                                                  remove_invalid_values=True)),
            ("greedy_forced_eos_remove_invalid_values", dict(base, max_new_tokens=10, forced_eos_token_id=t3,
                                                             remove_invalid_values=True)),
            ("greedy_renormalize_repetition_penalty", dict(base, repetition_penalty=1.3,
                                                           renormalize_logits=True)),
            ("greedy_ngram3_repetition_bad_words_min_new", dict(base, no_repeat_ngram_size=3,
                                                                repetition_penalty=1.1,
                                                                bad_words_ids=[[g0[1]], [g0[0], t3]],
                                                                eos_token_id=eos_list, min_new_tokens=4)),
            ("beam3_max_length", dict(beam_base, max_new_tokens=None, max_length=len(ids) + 10)),
            ("beam3_begin_suppress_tokens", dict(beam_base, begin_suppress_tokens=[b0[0][0]])),
            ("beam3_suppress_tokens", dict(beam_base, suppress_tokens=[b0[0][1]])),
            ("beam3_repetition_penalty_renormalize", dict(beam_base, repetition_penalty=1.5,
                                                          renormalize_logits=True)),
            ("beam3_no_repeat_ngram_2", dict(beam_base, no_repeat_ngram_size=2)),
            ("beam3_sequence_bias_bad_words", dict(beam_base, sequence_bias=[[[b0[0][0]], -3.0]],
                                                   bad_words_ids=[[b0[1][1]]])),
            ("beam3_eos_min_new_tokens_min_length", dict(beam_cfg, early_stopping=False, eos_token_id=beam_eos,
                                                         min_new_tokens=6, min_length=len(ids) + 4)),
            ("beam3_forced_eos_remove_invalid_values", dict(beam_base, max_new_tokens=8,
                                                            forced_eos_token_id=EOS_ID,
                                                            remove_invalid_values=True)),
            ("beam4_begin_suppress_suppress_renormalize_lp0.8", dict(
                beam_base, num_beams=4, length_penalty=0.8, begin_suppress_tokens=[b0[0][0], b0[1][0]],
                suppress_tokens=[b0[0][1]], renormalize_logits=True, early_stopping=True)),
        ]
        results = {}
        specs_by_name = dict(specs)
        assert len(specs_by_name) == len(specs)
        for cname, cfg in specs:
            out = gen(ids, cfg)
            seqs = out.sequences[:, len(ids):].tolist()
            eos = cfg.get("eos_token_id")
            stripped = [strip(s, eos) for s in seqs]
            case = {"name": f"{pname}_{cname}", "prompt": prompt, "prompt_ids": ids, "config": cfg,
                    "sequences": stripped}
            # robustness: the same output under uniform noise of +-NOISE added to the processed scores
            for seed in range(4):
                o2 = gen(ids, cfg, noise_seed=seed)
                assert o2.sequences.tolist() == out.sequences.tolist(), \
                    f"{case['name']}: result changes under {NOISE} noise (seed {seed})"
            if cfg.get("num_beams", 1) > 1:
                case["sequence_scores"] = [float(f"{v:.7g}") for v in out.sequences_scores.tolist()]
                ts = model.compute_transition_scores(out.sequences, out.scores, out.beam_indices,
                                                     normalize_logits=False)
                case["transition_scores"] = [[float(f"{v:.7g}") for v in row[: len(s)]]
                                             for row, s in zip(ts.tolist(), stripped)]
                case["beam_indices"] = [row[: len(s)] for row, s in zip(out.beam_indices.tolist(), stripped)]
                lpen = cfg["length_penalty"]
                for row, s, sc in zip(case["transition_scores"], stripped, case["sequence_scores"]):
                    assert abs(sum(row) / len(s) ** lpen - sc) < 1e-4, (case["name"], sum(row), sc)
            else:
                # top1 - top2 gap of the processed scores at every greedy step
                gaps = []
                for step in out.scores:
                    v = torch.topk(step[0], 2).values
                    gaps.append(float(v[0] - v[1]))
                gap = min(gaps)
                case["min_gap"] = float(f"{gap:.4g}")
                min_gap_all = min(min_gap_all, gap)
                assert gap > 1e-3, f"{case['name']}: top1-top2 gap {gap}"
            if cfg.get("num_beams", 1) == 1:
                ort_ids, ort_gap = ort_greedy_replay(model, TINY_DIR / "nopast" / "model.onnx", ids, cfg)
                assert ort_ids == stripped[0], f"{case['name']}: onnxruntime replay {ort_ids} != {stripped[0]}"
                assert ort_gap > 1e-3, f"{case['name']}: onnxruntime replay gap {ort_gap}"
            else:
                b_ids, b_scores = ort_beam_replay(model, TINY_DIR / "nopast" / "model.onnx", ids, cfg)
                b_ids = [strip(x, cfg.get("eos_token_id")) for x in b_ids]
                assert b_ids == stripped, f"{case['name']}: numpy/onnxruntime beam replay {b_ids} != {stripped}"
                diff = max(abs(a - b) for a, b in zip(b_scores, case["sequence_scores"]))
                assert diff < 1e-4, f"{case['name']}: beam replay scores {b_scores} vs {case['sequence_scores']}"
                beam_diff = max(beam_diff, diff)
            results[cname] = case
            cases.append(case)
            log(f"{case['name']:55s} {stripped}" + (f" scores {case['sequence_scores']}" if "sequence_scores" in case
                                                     else f" gap {case['min_gap']:.4f}"))
        # the options must visibly change the result
        r = {k: v["sequences"] for k, v in results.items()}
        assert r["greedy_repetition_penalty_1.3"] != r["greedy"]
        assert r["greedy_no_repeat_ngram_size_2"] != r["greedy"]
        assert len(r["greedy_eos_list"][0]) == 3
        assert r["greedy_eos_list_min_new_tokens_5"] != r["greedy_eos_list"]
        assert len(r["greedy_eos_list_min_new_tokens_5"][0]) >= 6
        assert r["greedy_forced_eos"][0][-1] == t3 and len(r["greedy_forced_eos"][0]) == 10
        assert r["greedy_bad_words"][0][1] != g0[1]
        assert r["greedy_bad_words_suppress"][0][1] not in (g0[1], r2)
        assert r["beam3_eos_early_false"] != r["beam3_lp1.0_nrs2"], f"{pname}: eos does not change the beams"
        assert any(s[-1] == beam_eos for c in ("beam3_eos_early_false", "beam3_eos_early_true",
                                               "beam3_eos_early_never") for s in r[c]), f"{pname}: no eos hypothesis"
        assert r["greedy_max_length"][0] == g0[:12]
        assert r["greedy_eos_list_min_length"] == r["greedy_eos_list_min_new_tokens_5"]
        assert not {g0[0], t3} & set(r["greedy_suppress_tokens"][0])
        first = r["greedy_begin_suppress_tokens"][0][0]
        assert first != g0[0], f"{pname}: begin_suppress_tokens must ban the greedy first token"
        assert r["greedy_begin_suppress_and_suppress"][0][0] not in (g0[0], g0[1])
        assert t3 not in r["greedy_begin_suppress_and_suppress"][0]
        assert r["greedy_sequence_bias"] != r["greedy"]
        # remove_invalid_values: +inf -> float32 max keeps t3 winning; without it, log_softmax of +inf is NaN
        assert r["greedy_remove_invalid_values"][0] == [t3] * 20
        no_fix = gen(ids, dict(specs_by_name["greedy_remove_invalid_values"], remove_invalid_values=False))
        assert no_fix.sequences[0, len(ids):].tolist() != [t3] * 20, f"{pname}: remove_invalid_values changes nothing"
        assert r["greedy_forced_eos_remove_invalid_values"] == r["greedy_forced_eos"]
        assert r["beam3_max_length"] != r["beam3_lp1.0_nrs2"]
        assert all(s[0] != b0[0][0] for s in r["beam3_begin_suppress_tokens"])
        assert all(b0[0][1] not in s for s in r["beam3_suppress_tokens"])
        plain = gen(ids, dict(beam_base, repetition_penalty=1.5)).sequences_scores.tolist()
        renormalized = results["beam3_repetition_penalty_renormalize"]["sequence_scores"]
        assert max(abs(x - y) for x, y in zip(plain, renormalized)) > 1e-3, \
            f"{pname}: renormalize_logits does not change the beam scores"
        assert r["beam3_no_repeat_ngram_2"] != r["beam3_lp1.0_nrs2"]
        assert r["beam3_sequence_bias_bad_words"] != r["beam3_lp1.0_nrs2"]
        assert all(len(s) >= 6 for s in r["beam3_eos_min_new_tokens_min_length"])
        assert all(s[-1] == EOS_ID for s in r["beam3_forced_eos_remove_invalid_values"])
        assert all(s[0] not in (b0[0][0], b0[1][0]) and b0[0][1] not in s
                   for s in r["beam4_begin_suppress_suppress_renormalize_lp0.8"])

        # sampling: transformers' processed + warped scores along the greedy trajectory
        sess = ort.InferenceSession(str(TINY_DIR / "nopast" / "model.onnx"), providers=["CPUExecutionProvider"])
        for cname, cfg in sampling_specs(g0):
            name = f"{pname}_{cname}"
            steps = warped_steps(model, sess, ids, g0[:WARPED_STEPS - 1], cfg, name)
            warped.append({"name": name, "prompt": prompt, "prompt_ids": ids, "config": cfg, "steps": steps})
            log(f"{name:55s} kept per step {[len(s['kept']) for s in steps]}")

    doc = {
        "model": "tiny-random-gpt2 (models/work/tiny-random-gpt2-checkpoint; ONNX exports in this folder)",
        "format": {
            "sequences": "generated ids only (no prompt), one list per returned sequence, cut after the first eos "
                         "id (inclusive); generate pads shorter beams to the longest with pad_token_id",
            "config": "the keyword arguments passed to model.generate (plus input_ids / attention_mask of ones)",
            "sequence_scores": "beam only: outputs.sequences_scores = sum of the processed log-probs of the "
                               "generated tokens / (number of generated tokens incl. eos) ** length_penalty",
            "transition_scores": "beam only: per generated token, the processed log-prob it contributed "
                                 "(model.compute_transition_scores(..., normalize_logits=False))",
            "beam_indices": "beam only: outputs.beam_indices per returned sequence, per generated token",
            "min_gap": "greedy only: smallest top1 - top2 gap of the processed scores over the steps",
            "warped_cases": "sampling configs (do_sample true): name, prompt, prompt_ids, config (GenerationConfig "
                            "fields), steps; each step has `generated` (the tokens after the prompt so far: a prefix "
                            "of the greedy continuation) and `kept` ([id, score] for every token that transformers' "
                            "processor + warper list for that config, model._get_logits_processor, leaves above "
                            "-inf on the model's last logits, by id). The set is the same and the scores within "
                            f"1e-4 with onnxruntime's logits and with +-{RAW_NOISE} noise on torch's",
        },
        "robustness": f"every case gives the same sequences when uniform noise in [-{NOISE}, {NOISE}] is added to "
                      f"the processed scores at every step (4 noise seeds); greedy min_gap over all cases "
                      f"{min_gap_all:.4g}; every greedy case is also reproduced by onnxruntime on nopast/model.onnx "
                      f"with transformers' processor list, and every beam case by ort_beam_replay (numpy re-implementation "
                      f"of 4.57.6 beam search on onnxruntime logits; sequences equal, sequences_scores within "
                      f"{beam_diff:.1e})",
        "generated_with": {"torch": torch.__version__, "transformers": transformers.__version__},
        "cases": cases,
        "warped_cases": warped,
    }
    (TINY_DIR / "generate_reference.json").write_text(dump_json(doc), encoding="utf-8")
    log(f"wrote {TINY_DIR / 'generate_reference.json'}: {len(cases)} cases, {len(warped)} warped cases; greedy min gap {min_gap_all:.4g}; "
        f"beam replay max score diff {beam_diff:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["processors", "generate", "all"], default="all")
    args = ap.parse_args()
    if args.part in ("processors", "all"):
        ensure_checkpoint()
        make_processor_fixtures()
    if args.part in ("generate", "all"):
        make_generate_reference()


if __name__ == "__main__":
    main()
