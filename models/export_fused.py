#!/usr/bin/env python3
"""Export a transformers GPT-2 checkpoint as a hand-built ONNX graph of ONNX Runtime's fused ops.

    /root/venv-models/bin/python models/export_fused.py \
        --checkpoint models/work/small-random-gpt2-checkpoint --out models/work/fused-small/single --verify

The graph has exactly the interface of optimum's `single` layout (text-generation-with-past), so
gptrt and models/quantize.py run it unchanged:
  in:  input_ids [B,S] int64, past_key_values.N.key / .value [B,H,P,D] float32 (P = 0 on the
       first step), attention_mask [B,P+S] int64, position_ids [B,S] int64
  out: logits [B,S,V] float32, present.N.key / .value [B,H,P+S,D] float32
plus one optional input, `logits_to_keep` (int64 scalar, an overridable initializer, default 0):
N > 0 computes the logits of the last N positions only ([B,min(N,S),V]); gptrt feeds 1 when it
generates, which takes the LM head over every prompt position out of the prefill.
It is written with onnx.helper (no torch.onnx trace), opset 18 + com.microsoft 1:
  embeddings   Gather(wte, input_ids), Gather(wpe, position_ids); their sum is the first
               SkipLayerNormalization's skip sum;
  per layer    SkipLayerNormalization (ln_1; adds the previous MLP output + its bias to the residual)
               MatMul(x, c_attn) -> Split -> q, k, v [B,S,hidden]
               MultiHeadAttention(q, k, v, bias = c_attn bias, key_padding_mask = int32 mask,
                                  past_key, past_value; unidirectional = 1) -> out, present k / v
               MatMul(out, attn.c_proj)
               SkipLayerNormalization (ln_2; adds c_proj bias + residual)
               MatMul(x, c_fc) -> FastGelu(bias = c_fc bias) (gelu_new, the tanh approximation)
               MatMul(x, mlp.c_proj)
  head         SkipLayerNormalization (ln_f) -> Slice (logits_to_keep) -> MatMul(x, wte^T), wte^T a constant copy of the tied
               embedding (so quantize.py's MatMul quantization covers the LM head too).
The padding mask is Cast(attention_mask, int32) once, shared by every layer; MultiHeadAttention's
CPU kernel combines it with the causal (unidirectional) mask, counting the past positions.

--shared-kv writes a variant whose MultiHeadAttention nodes read and write one KV buffer in place:
past_key_values.N.* and present.N.* are [B,H,capacity,D], an int32 [1] input past_sequence_length
says how many positions are filled, and logits_to_keep becomes a plain (required) input. The caller
binds the same memory as past input and present output (ONNX Runtime IO binding), so no step copies
the cache; gptrt detects the variant by its past_sequence_length input.
--shared-kv --attention gptrt puts gptrt's own CPU operator, ai.gptrt:CachedAttention (the same inputs
less MultiHeadAttention's empty attention-bias slot), in place of MultiHeadAttention: it reads each
cached key and value once per step, so a dialogue turn after 800 tokens of history costs ~1.17x one
after 32 (MultiHeadAttention: ~1.22x; 124M fp32). Only gptrt's sessions can run such a graph.
--hidden-states also returns ln_f's output as `last_hidden_state` [B,S,n_embd] (every position, not cut
by logits_to_keep), for gptrt's features and classification heads (see add_hidden_states.py).
The weights go to model.onnx.data beside the graph (ONNX external data; --single-file keeps them
inside): ONNX Runtime maps them instead of parsing them out of the protobuf, so the 124M graph loads
~4x faster. config.json and generation_config.json come from the checkpoint, tokenizer.json from the checkpoint
or --tokenizer (default models/gpt2-tokenizer/tokenizer.json).

--verify then checks the graph with onnxruntime against transformers on the same checkpoint:
first-step logits of every prompt position within --atol, a 20-token KV-cache greedy continuation
equal to transformers' greedy generate, and a left-padded batch of 2 (position_ids = cumsum(mask) - 1,
clipped at 0) equal to each row run alone in transformers (logits and greedy ids).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import onnx_bytes, save_onnx  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_TOKENIZER = MODELS_DIR / "gpt2-tokenizer" / "tokenizer.json"
OPSET = 18
MS_DOMAIN = "com.microsoft"
# gptrt's own operators (sdk/gptrt/src/graph/attention/): only gptrt's sessions can run them
GPTRT_DOMAIN = "ai.gptrt"
COPY_FILES = ("config.json", "generation_config.json")
VERIFY_PROMPTS = ["Hello world", "Once upon a time", "Grüße aus Köln — naïve café", "I love 🦀 and 🐍!",
                  " leading space", "line one\nline two\n"]
VERIFY_BATCH = ["Hello world", "I love 🦀 and 🐍!"]
VERIFY_NEW_TOKENS = 20
LOGITS_TO_KEEP = "logits_to_keep"
PAST_SEQUENCE_LENGTH = "past_sequence_length"


def log(msg: str) -> None:
    print(f"[export_fused] {msg}", flush=True)


def load_weights(checkpoint: Path):
    """(config, {name: float32 array}) of a GPT2LMHeadModel with a tied LM head."""
    import torch
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(checkpoint, dtype=torch.float32).eval()
    cfg = model.config
    if model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr():
        sys.exit("error: the LM head is not tied to the token embedding")
    if cfg.activation_function != "gelu_new":
        sys.exit(f"error: activation {cfg.activation_function!r}; only gelu_new (FastGelu) is supported")
    if not cfg.scale_attn_weights or cfg.scale_attn_by_inverse_layer_idx or cfg.reorder_and_upcast_attn:
        sys.exit("error: only the standard 1/sqrt(head_dim) attention scaling is supported")
    weights = {k: v.detach().float().numpy() for k, v in model.transformer.state_dict().items()}
    return cfg, weights


def build_graph(cfg, w: dict[str, np.ndarray], shared_kv: bool = False, attention: str = "ort") -> onnx.ModelProto:
    n_layer, n_head, hidden = cfg.n_layer, cfg.n_head, cfg.n_embd
    head_dim, vocab, eps = hidden // n_head, cfg.vocab_size, float(cfg.layer_norm_epsilon)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    # every intermediate tensor gets a declared type and shape: onnx shape inference stops at the
    # com.microsoft ops, and quantize.py's quantizer needs the types of the MatMul outputs
    value_info: list[onnx.ValueInfoProto] = []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op: str, inputs: list[str], outputs: list[str], name: str, domain: str = "", width: int = hidden,
             **attrs) -> None:
        """Outputs not named like graph outputs are declared float32 [batch, sequence, width]."""
        nodes.append(helper.make_node(op, inputs, outputs, name=name, domain=domain or None, **attrs))
        for o in outputs:
            if o and o != "logits" and not o.startswith("present."):
                value_info.append(helper.make_tensor_value_info(
                    o, TensorProto.FLOAT, ["batch_size", "sequence_length", width]))

    def skip_ln(x: str, skip: str, ln: str, bias: str, out: str, residual_out: str) -> None:
        """out = LayerNorm(x + bias + skip); residual_out = x + bias + skip."""
        outputs = [out, "", "", residual_out] if residual_out else [out]
        node("SkipLayerNormalization",
             [x, skip, const(f"{ln}.weight", w[f"{ln}.weight"]), const(f"{ln}.bias", w[f"{ln}.bias"]), bias],
             outputs, f"{ln}/SkipLayerNorm", MS_DOMAIN, epsilon=eps)

    wte = const("transformer.wte.weight", w["wte.weight"])
    node("Gather", [wte, "input_ids"], ["tok_emb"], "wte/Gather")
    node("Gather", [const("transformer.wpe.weight", w["wpe.weight"]), "position_ids"], ["pos_emb"], "wpe/Gather")
    nodes.append(helper.make_node("Cast", ["attention_mask"], ["mask_int32"], "attention_mask/Cast",
                                  to=TensorProto.INT32))
    value_info.append(helper.make_tensor_value_info(
        "mask_int32", TensorProto.INT32, ["batch_size", "past_sequence_length + sequence_length"]))
    split_sizes = const("qkv_split", np.array([hidden] * 3, dtype=np.int64))

    # x: the sub-block output still missing its bias (`bias`), added to `residual` by the next SkipLN
    x, residual, bias = "tok_emb", "pos_emb", ""
    for i in range(n_layer):
        p = f"h.{i}"
        skip_ln(x, residual, f"{p}.ln_1", bias, f"{p}.ln_1_out", f"{p}.resid_attn")
        node("MatMul", [f"{p}.ln_1_out", const(f"{p}.attn.c_attn.weight", w[f"{p}.attn.c_attn.weight"])],
             [f"{p}.qkv"], f"{p}.attn.c_attn/MatMul", width=3 * hidden)
        node("Split", [f"{p}.qkv", split_sizes], [f"{p}.q", f"{p}.k", f"{p}.v"], f"{p}.attn/Split", axis=-1)
        qkv_bias = const(f"{p}.attn.c_attn.bias", w[f"{p}.attn.c_attn.bias"])
        past_kv, present_kv = [f"past_key_values.{i}.key", f"past_key_values.{i}.value"], \
            [f"{p}.attn_out", f"present.{i}.key", f"present.{i}.value"]
        if attention == "gptrt":
            node("CachedAttention", [f"{p}.q", f"{p}.k", f"{p}.v", qkv_bias, "mask_int32", *past_kv,
                                     PAST_SEQUENCE_LENGTH],
                 present_kv, f"{p}.attn/CachedAttention", GPTRT_DOMAIN, num_heads=n_head,
                 scale=1.0 / float(np.sqrt(head_dim)))
        else:
            node("MultiHeadAttention",
                 [f"{p}.q", f"{p}.k", f"{p}.v", qkv_bias, "mask_int32", "", *past_kv,
                  *([PAST_SEQUENCE_LENGTH] if shared_kv else [])],
                 present_kv, f"{p}.attn/MultiHeadAttention",
                 MS_DOMAIN, num_heads=n_head, unidirectional=1, scale=1.0 / float(np.sqrt(head_dim)))
        node("MatMul", [f"{p}.attn_out", const(f"{p}.attn.c_proj.weight", w[f"{p}.attn.c_proj.weight"])],
             [f"{p}.attn_proj"], f"{p}.attn.c_proj/MatMul")
        skip_ln(f"{p}.attn_proj", f"{p}.resid_attn", f"{p}.ln_2",
                const(f"{p}.attn.c_proj.bias", w[f"{p}.attn.c_proj.bias"]), f"{p}.ln_2_out", f"{p}.resid_mlp")
        node("MatMul", [f"{p}.ln_2_out", const(f"{p}.mlp.c_fc.weight", w[f"{p}.mlp.c_fc.weight"])],
             [f"{p}.fc"], f"{p}.mlp.c_fc/MatMul", width=4 * hidden)
        node("FastGelu", [f"{p}.fc", const(f"{p}.mlp.c_fc.bias", w[f"{p}.mlp.c_fc.bias"])], [f"{p}.gelu"],
             f"{p}.mlp/FastGelu", MS_DOMAIN, width=4 * hidden)
        node("MatMul", [f"{p}.gelu", const(f"{p}.mlp.c_proj.weight", w[f"{p}.mlp.c_proj.weight"])],
             [f"{p}.mlp_out"], f"{p}.mlp.c_proj/MatMul")
        x, residual = f"{p}.mlp_out", f"{p}.resid_mlp"
        bias = const(f"{p}.mlp.c_proj.bias", w[f"{p}.mlp.c_proj.bias"])
    skip_ln(x, residual, "ln_f", bias, "ln_f_out", "")
    # logits_to_keep (0 = every position, else the last N): generation needs only the last
    # position's logits, and on a long prompt the LM head over every position (and the [B,S,V]
    # logits it writes) is a fifth of the prefill
    seq_len, keep = "ln_f/seq_len", "logits_to_keep/1d"
    nodes += [
        helper.make_node("Shape", ["ln_f_out"], [seq_len], "ln_f/Shape", start=1, end=2),
        helper.make_node("Reshape", [LOGITS_TO_KEEP, const("shape_1", np.array([1], dtype=np.int64))], [keep],
                         "logits_to_keep/Reshape"),
        helper.make_node("Sub", [seq_len, keep], ["logits_to_keep/from"], "logits_to_keep/Sub"),
        helper.make_node("Max", ["logits_to_keep/from", const("zero_1", np.array([0], dtype=np.int64))],
                         ["logits_to_keep/from_clipped"], "logits_to_keep/Max"),
        helper.make_node("Equal", [keep, "zero_1"], ["logits_to_keep/all"], "logits_to_keep/Equal"),
        helper.make_node("Where", ["logits_to_keep/all", "zero_1", "logits_to_keep/from_clipped"],
                         ["logits_to_keep/start"], "logits_to_keep/Where"),
        helper.make_node("Slice", ["ln_f_out", "logits_to_keep/start",
                                   const("int64_max_1", np.array([np.iinfo(np.int64).max], dtype=np.int64)),
                                   "shape_1"], ["ln_f_kept"], "logits_to_keep/Slice"),
    ]
    value_info.append(helper.make_tensor_value_info(
        "ln_f_kept", TensorProto.FLOAT, ["batch_size", "logits_sequence_length", hidden]))
    if not shared_kv:  # IO binding cannot feed an overridable initializer: a plain input there
        inits.append(numpy_helper.from_array(np.array(0, dtype=np.int64), LOGITS_TO_KEEP))
    node("MatMul", ["ln_f_kept", const("lm_head.weight_T", w["wte.weight"].T)], ["logits"], "lm_head/MatMul")

    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    kv_in = ["batch_size", n_head, "max_sequence_length" if shared_kv else "past_sequence_length", head_dim]
    kv_out = kv_in if shared_kv else ["batch_size", n_head, "past_sequence_length + sequence_length", head_dim]
    inputs = [helper.make_tensor_value_info("input_ids", i64, ["batch_size", "sequence_length"])]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch_size", "logits_sequence_length", vocab])]
    for i in range(n_layer):
        for kv in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kv}", f32, kv_in))
            outputs.append(helper.make_tensor_value_info(f"present.{i}.{kv}", f32, kv_out))
    inputs += [
        helper.make_tensor_value_info("attention_mask", i64,
                                      ["batch_size", "past_sequence_length + sequence_length"]),
        helper.make_tensor_value_info("position_ids", i64, ["batch_size", "sequence_length"]),
        # listed as an input and given an initializer: optional, 0 unless the caller feeds it
        helper.make_tensor_value_info(LOGITS_TO_KEEP, i64, []),
    ]
    if shared_kv:
        inputs.append(helper.make_tensor_value_info(PAST_SEQUENCE_LENGTH, TensorProto.INT32, [1]))
    graph = helper.make_graph(nodes, "gpt2_fused", inputs, outputs, initializer=inits, value_info=value_info)
    model = helper.make_model(graph, producer_name="gptrt export_fused.py",
                              opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1),
                                             *([helper.make_opsetid(GPTRT_DOMAIN, 1)] if attention == "gptrt" else [])])
    model.ir_version = 9
    return model


def export(checkpoint: Path, out: Path, tokenizer: Path, external: bool, shared_kv: bool,
           hidden_states: bool = False, attention: str = "ort") -> None:
    cfg, weights = load_weights(checkpoint)
    model = build_graph(cfg, weights, shared_kv, attention)
    if hidden_states:
        # the same edit add_hidden_states.py makes to any export: ln_f's output renamed and returned
        from add_hidden_states import expose
        expose(model.graph, cfg.n_embd)
    onnx.checker.check_model(model)
    out.mkdir(parents=True, exist_ok=True)
    save_onnx(model, out / "model.onnx", external)
    for name in COPY_FILES:
        shutil.copyfile(checkpoint / name, out / name)
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    ops = Counter(n.op_type for n in model.graph.node)
    log(f"{out / 'model.onnx'}: {onnx_bytes(out / 'model.onnx'):,} bytes, {len(model.graph.node)} nodes "
        f"({cfg.n_layer} layers): {dict(ops)}")


# ----------------------------------------------------------------------------------- verification
class OrtDecoder:
    """Left-padded batch greedy decoding of the exported graph with the KV cache."""

    def __init__(self, folder: Path, threads: int):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(str(folder / "model.onnx"), so, providers=["CPUExecutionProvider"])
        cfg = json.loads((folder / "config.json").read_text())
        self.n_layer, self.n_head, self.head_dim = cfg["n_layer"], cfg["n_head"], cfg["n_embd"] // cfg["n_head"]
        self.eos = cfg["eos_token_id"]

    def greedy(self, rows: list[list[int]], max_new: int, keep_last: bool = False):
        """(first-step logits [B,S,V], generated ids per row, stopping after EOS like generate);
        `keep_last` feeds logits_to_keep = 1, as gptrt does, and the logits are [B,1,V]."""
        keep = {LOGITS_TO_KEEP: np.array(1, dtype=np.int64)} if keep_last else {}
        width = max(len(r) for r in rows)
        ids = np.array([[self.eos] * (width - len(r)) + r for r in rows], dtype=np.int64)
        mask = np.array([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=np.int64)
        pos = np.clip(np.cumsum(mask, axis=-1) - 1, 0, None).astype(np.int64)
        empty = np.zeros((len(rows), self.n_head, 0, self.head_dim), dtype=np.float32)
        past = {f"past_key_values.{i}.{kv}": empty for i in range(self.n_layer) for kv in ("key", "value")}
        out_names = [o.name for o in self.sess.get_outputs()]
        first, gen, done = None, [[] for _ in rows], np.zeros(len(rows), dtype=bool)
        for _ in range(max_new):
            outs = dict(zip(out_names, self.sess.run(out_names, {"input_ids": ids, "attention_mask": mask,
                                                                 "position_ids": pos, **past, **keep})))
            if first is None:
                first = outs["logits"]
            past = {f"past_key_values.{i}.{kv}": outs[f"present.{i}.{kv}"]
                    for i in range(self.n_layer) for kv in ("key", "value")}
            nxt = np.where(done, self.eos, outs["logits"][:, -1].argmax(-1)).astype(np.int64)
            for g, t, d in zip(gen, nxt, done):
                if not d:
                    g.append(int(t))
            done |= nxt == self.eos
            if done.all():
                break
            ids, pos = nxt[:, None], pos[:, -1:] + 1
            mask = np.concatenate([mask, np.ones((len(rows), 1), dtype=np.int64)], axis=1)
        return first, gen


def verify(checkpoint: Path, out: Path, tokenizer: Path, atol: float, threads: int) -> bool:
    import torch
    from tokenizers import Tokenizer
    from transformers import GPT2LMHeadModel

    tok = Tokenizer.from_file(str(tokenizer))
    hf = GPT2LMHeadModel.from_pretrained(checkpoint, dtype=torch.float32).eval()
    dec = OrtDecoder(out, threads)

    def hf_run(ids: list[int]):
        with torch.no_grad():
            t = torch.tensor([ids])
            logits = hf(t).logits[0].numpy()
            gen = hf.generate(t, attention_mask=torch.ones_like(t), do_sample=False, max_new_tokens=VERIFY_NEW_TOKENS,
                              pad_token_id=dec.eos, eos_token_id=dec.eos)[0, len(ids):].tolist()
        if dec.eos in gen:  # generate pads finished rows; keep up to and including the first EOS
            gen = gen[:gen.index(dec.eos) + 1]
        return logits, gen

    ok, worst = True, 0.0
    ref = {}
    for prompt in dict.fromkeys(VERIFY_PROMPTS + VERIFY_BATCH):
        ids = tok.encode(prompt).ids
        ref[prompt] = (ids, *hf_run(ids))
    for prompt in VERIFY_PROMPTS:
        ids, want_logits, want_gen = ref[prompt]
        first, (gen,) = dec.greedy([ids], VERIFY_NEW_TOKENS)
        diff = float(np.abs(first[0] - want_logits).max())
        worst = max(worst, diff)
        same = gen == want_gen
        ok &= same and diff <= atol
        log(f"verify {prompt!r} ({len(ids)} tokens): logits max abs diff {diff:.2e}, "
            f"greedy {len(gen)} tokens {'==' if same else '!='} transformers")
        if not same:
            log(f"  ours {gen}\n  transformers {want_gen}")
        last, (gen_last,) = dec.greedy([ids], VERIFY_NEW_TOKENS, keep_last=True)
        diff_last = float(np.abs(last[0, -1] - want_logits[-1]).max())
        ok &= last.shape[1] == 1 and gen_last == want_gen and diff_last <= atol
        log(f"  with logits_to_keep = 1: logits {list(last.shape)}, last position diff {diff_last:.2e}, "
            f"greedy {'==' if gen_last == want_gen else '!='} transformers")
    rows = [ref[p][0] for p in VERIFY_BATCH]
    width = max(len(r) for r in rows)
    first, gen = dec.greedy(rows, VERIFY_NEW_TOKENS)
    for b, prompt in enumerate(VERIFY_BATCH):
        ids, want_logits, want_gen = ref[prompt]
        diff = float(np.abs(first[b, width - len(ids):] - want_logits).max())
        worst = max(worst, diff)
        same = gen[b] == want_gen
        ok &= same and diff <= atol
        log(f"verify batch row {b} ({width - len(ids)} pad + {len(ids)} tokens): logits max abs diff {diff:.2e}, "
            f"greedy {len(gen[b])} tokens {'==' if same else '!='} transformers alone")
    log(f"verify {'OK' if ok else 'FAILED'}: worst logits diff {worst:.2e} (atol {atol})")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a transformers GPT2LMHeadModel folder")
    ap.add_argument("--out", required=True, help="output folder (model.onnx + config + tokenizer)")
    ap.add_argument("--tokenizer", help="tokenizer.json (default: the checkpoint's, else models/gpt2-tokenizer/)")
    ap.add_argument("--verify", action="store_true", help="check the graph against transformers afterwards")
    ap.add_argument("--shared-kv", action="store_true",
                    help="past and present share one buffer (a past_sequence_length input; past/present "
                         "[B,H,capacity,D]); the caller must bind the same memory to both (gptrt does). "
                         "--verify does not cover this variant: the Rust tests do")
    ap.add_argument("--attention", choices=["ort", "gptrt"], default="ort",
                    help="with --shared-kv: ort = ONNX Runtime's MultiHeadAttention (any provider); gptrt = "
                         "gptrt's own ai.gptrt:CachedAttention CPU operator, which reads the cache once per "
                         "step (a turn after a long history costs less; only gptrt can run the graph)")
    ap.add_argument("--hidden-states", action="store_true",
                    help="also return last_hidden_state [B,S,n_embd] (ln_f's output, every position), which "
                         "gptrt's features and classification heads read (as models/add_hidden_states.py adds)")
    ap.add_argument("--single-file", action="store_true",
                    help="keep the weights inside model.onnx (default: model.onnx.data beside it, which loads "
                         "~4x faster)")
    ap.add_argument("--verify-only", action="store_true", help="verify an existing export, do not rewrite it")
    ap.add_argument("--atol", type=float, default=1e-4, help="logits tolerance for --verify")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads for --verify")
    args = ap.parse_args()
    checkpoint, out = Path(args.checkpoint), Path(args.out)
    tokenizer = Path(args.tokenizer) if args.tokenizer else (
        checkpoint / "tokenizer.json" if (checkpoint / "tokenizer.json").exists() else DEFAULT_TOKENIZER)
    if args.attention == "gptrt" and not args.shared_kv:
        sys.exit("error: --attention gptrt updates the cache in place: it needs --shared-kv")
    if not args.verify_only:
        export(checkpoint, out, tokenizer, external=not args.single_file, shared_kv=args.shared_kv,
               hidden_states=args.hidden_states, attention=args.attention)
    if args.shared_kv and (args.verify or args.verify_only):
        sys.exit("error: --verify runs the graph without IO binding, which --shared-kv needs; "
                 "verify the plain export, the Rust tests run the shared one")
    if (args.verify or args.verify_only) and not verify(checkpoint, out, tokenizer, args.atol, args.threads):
        sys.exit(1)


if __name__ == "__main__":
    main()
