"""Sampling-chain reference for make_sampler_fixtures.py --part generate ("warped_cases").

Sampling cannot be compared token for token (torch's RNG is not gptrt's), so for a sampling
GenerationConfig this records what transformers' own processor list (the one
`GenerationMixin._get_logits_processor` builds for that config, warpers included) leaves at each step
of a fixed trajectory: the surviving token ids and their processed + warped scores. gptrt's
`SamplerChain::from_config` must keep the same set with the same values
(sdk/gptrt/tests/chain_options.rs).
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import GenerationConfig

# Raw logits differ between torch and onnxruntime (and gptrt) by ~1e-6; a case is kept only when its
# surviving set does not change under uniform noise this large on the raw logits.
RAW_NOISE = 1e-4


def processor_list(model, ids: list[int], cfg: dict):
    """The LogitsProcessorList transformers builds in generate() for `cfg` and this prompt."""
    gc = GenerationConfig(**cfg)
    if gc.max_new_tokens is not None:
        gc.max_length = len(ids) + gc.max_new_tokens
    model._prepare_special_tokens(gc, kwargs_has_attention_mask=True, device="cpu")
    return model._get_logits_processor(generation_config=gc, input_ids_seq_length=len(ids),
                                       encoder_input_ids=torch.tensor([ids]), logits_processor=None,
                                       device="cpu")


def _kept(scores: torch.Tensor) -> list[int]:
    return torch.nonzero(scores > -float("inf")).flatten().tolist()


def warped_steps(model, sess, ids: list[int], trajectory: list[int], cfg: dict, name: str) -> list[dict]:
    """One entry per step k: the sequence is prompt + trajectory[:k]; `kept` lists [id, score] for every
    token transformers' list leaves above -inf, by id. Checks that onnxruntime's logits (nopast graph) and
    noisy torch logits keep the same set with scores within 1e-4 (relative to max(1, |score|))."""
    steps = []
    for k in range(len(trajectory) + 1):
        seq = ids + trajectory[:k]
        x = torch.tensor([seq])
        with torch.no_grad():
            raw = model(x, attention_mask=torch.ones_like(x)).logits[0, -1].float()
        # a fresh list per call: the same list object for every variant (stateless processors)
        procs = processor_list(model, ids, cfg)
        ref = procs(x, raw[None].clone())[0]
        kept = _kept(ref)
        assert kept, f"{name} step {k}: transformers keeps no token"
        variants = {}
        ort_raw = sess.run(["logits"], {"input_ids": np.array([seq], dtype=np.int64),
                                        "attention_mask": np.ones((1, len(seq)), dtype=np.int64),
                                        "position_ids": np.arange(len(seq), dtype=np.int64)[None]})[0][0, -1]
        variants["onnxruntime"] = torch.from_numpy(ort_raw.astype(np.float32))
        for seed in range(4):
            g = torch.Generator().manual_seed(seed)
            variants[f"noise seed {seed}"] = raw + (torch.rand(raw.shape, generator=g) * 2 - 1) * RAW_NOISE
        for label, logits in variants.items():
            out = processor_list(model, ids, cfg)(x, logits[None].clone())[0]
            assert _kept(out) == kept, f"{name} step {k}: kept set changes with {label} logits"
            a, b = out[kept], ref[kept]
            tol = 1e-4 * torch.clamp(b.abs(), min=1.0)
            assert bool(((a - b).abs() <= tol).all()), f"{name} step {k}: scores move > 1e-4 with {label}"
        steps.append({"generated": trajectory[:k],
                      "kept": [[i, float(f"{float(ref[i]):.9g}")] for i in kept]})
    return steps


def sampling_specs(g0: list[int]) -> list[tuple[str, dict]]:
    """Every sampling option alone (on top of transformers' and gptrt's default top_k = 50), and in
    combination with each other and with the processors. `g0` is the greedy continuation."""
    base = dict(do_sample=True, max_new_tokens=20)
    return [
        ("sample_defaults", dict(base)),
        ("sample_temperature_0.7", dict(base, temperature=0.7)),
        ("sample_top_k_7", dict(base, top_k=7)),
        ("sample_top_p_0.6", dict(base, top_p=0.6)),
        ("sample_min_p_0.3", dict(base, min_p=0.3)),
        ("sample_typical_p_0.5", dict(base, typical_p=0.5)),
        ("sample_epsilon_cutoff_0.02", dict(base, epsilon_cutoff=0.02)),
        ("sample_eta_cutoff_0.02", dict(base, eta_cutoff=0.02)),
        ("sample_renormalize_logits", dict(base, renormalize_logits=True)),
        ("sample_top_k_0_min_p_0.2", dict(base, top_k=0, min_p=0.2)),
        ("sample_temperature_1.5_top_k_20_top_p_0.8_renormalize",
         dict(base, temperature=1.5, top_k=20, top_p=0.8, renormalize_logits=True)),
        ("sample_min_p_typical_epsilon_eta",
         dict(base, temperature=0.8, min_p=0.05, typical_p=0.9, epsilon_cutoff=0.01, eta_cutoff=0.01)),
        ("sample_processors",
         dict(base, repetition_penalty=1.3, no_repeat_ngram_size=2, suppress_tokens=[g0[1]],
              begin_suppress_tokens=[g0[0]], bad_words_ids=[[g0[2]]], sequence_bias=[[[g0[3]], -2.0]],
              min_new_tokens=3, eos_token_id=50256, remove_invalid_values=True, top_p=0.7)),
    ]
