#!/usr/bin/env python3
"""Reconstruct a transformers fp32 GPT2LMHeadModel checkpoint from an exported GPT-2 graph.

    /root/venv-models/bin/python models/checkpoint_from_onnx.py \
        --model models/demo --out /work/artifacts/demo-checkpoint --verify

The committed demo model exists only as an int8 graph (models/demo/model.onnx, made by quantize.py
--method int8-rows): its fp32 training checkpoint is not in the repository. This script walks the
graph and puts every weight back under its Hugging Face parameter name, dequantized:
  weight MatMuls  MatMulInteger(x, W_q, x_zp, W_zp) -> Cast -> Mul(scale) [-> Mul(row scale)] -> Add(bias):
                  W = (W_q - W_zp) * scale, [in, out] as GPT-2's Conv1D stores it; the parameter is
                  the one whose bias the Add reads (X.bias -> X.weight). A plain fp32 MatMul / Gemm
                  with an initializer weight is taken as it is (so an fp32 graph works too).
  embeddings      Gather(table, ids): the table is transformer.wte.weight when ids come from
                  input_ids and transformer.wpe.weight when they come from position_ids; an int8
                  table with a per-row scale (Gather_q / Gather_scale -> Cast -> Mul) is dequantized.
  LayerNorms      LayerNormalization's scale and bias initializers keep their HF names (optimum's
                  export names them after the parameters); they are fp32 and copied as they are.
  LM head         the MatMul whose result becomes `logits` and has no bias: the tied embedding.
                  The int8 graph stores it twice (the embedding per row, wte^T per tensor, which is
                  coarser); the checkpoint ties one tensor, the per-row embedding, which is closer to
                  the fp32 original. The largest difference between the two is printed.
Every parameter of GPT2LMHeadModel(config) must be found exactly once with the right shape,
otherwise the script stops and names what is missing or doubled.

config.json and generation_config.json come from the model folder; tokenizer.json (a copy) from the
model folder, else models/gpt2-tokenizer/. --verify then compares the checkpoint with the graph
on models/demo/heldout.txt (or --text): both perplexities and the largest first-step logit
difference over every prompt position, and writes verify.json into --out. READY (empty) is written
last, so other jobs can wait for it.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from collections import deque
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MODELS_DIR, TOKENIZER_DIR, hf_offline  # noqa: E402

hf_offline()

COPY_FILES = ("config.json", "generation_config.json")
# Nodes the path from a quantized MatMul's int32 output to its bias Add may cross.
PASS_THROUGH = {"Cast", "Mul", "Reshape", "Identity"}


def log(msg: str) -> None:
    print(f"[checkpoint_from_onnx] {msg}", flush=True)


class Graph:
    """Producer/consumer maps and initializers of an ONNX graph."""

    def __init__(self, path: Path):
        import onnx
        from onnx import numpy_helper

        self.model = onnx.load(str(path))
        g = self.model.graph
        self.init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        # Constant nodes can hold scales or zero points too.
        for n in g.node:
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
                self.init[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        self.nodes = list(g.node)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.inputs = {i.name for i in g.input}
        self.outputs = {o.name for o in g.output}

    def is_init(self, name: str) -> bool:
        return name in self.init

    def downstream(self, name: str, allowed: set[str], limit: int = 6):
        """Nodes reachable from tensor `name` through at most `limit` nodes of the `allowed` types
        (the node reached that is not allowed is yielded too, and not crossed)."""
        seen, queue = set(), deque([(name, 0)])
        while queue:
            t, depth = queue.popleft()
            for n in self.consumers.get(t, []):
                if id(n) in seen:
                    continue
                seen.add(id(n))
                yield n
                if n.op_type in allowed and depth + 1 < limit:
                    for o in n.output:
                        queue.append((o, depth + 1))

    def reaches_output(self, name: str, output: str, limit: int = 6) -> bool:
        if name == output:
            return True
        return any(output in n.output for n in self.downstream(name, PASS_THROUGH | {"Add"}, limit))

    def source_inputs(self, name: str, limit: int = 40) -> set[str]:
        """Graph inputs that tensor `name` depends on (a bounded walk upstream)."""
        found, seen, queue = set(), set(), deque([name])
        while queue and len(seen) < limit * 10:
            t = queue.popleft()
            if t in seen:
                continue
            seen.add(t)
            if t in self.inputs:
                found.add(t)
                continue
            n = self.producer.get(t)
            if n is not None:
                queue.extend(i for i in n.input if i)
        return found


def scale_after(g: Graph, tensor: str, node_name: str) -> np.ndarray:
    """The weight scale a quantized MatMul's output is multiplied by: the first Mul after the Cast
    whose other input is a constant."""
    for n in g.downstream(tensor, {"Cast"}, limit=2):
        if n.op_type == "Mul":
            consts = [i for i in n.input if g.is_init(i)]
            if consts:
                return g.init[consts[0]].astype(np.float32)
    raise SystemExit(f"error: no weight scale Mul after MatMulInteger {node_name!r}")


def bias_of(g: Graph, tensor: str) -> str | None:
    """The bias initializer added to this MatMul's result (its name X.bias names the weight X.weight)."""
    for n in g.downstream(tensor, PASS_THROUGH):
        if n.op_type == "Add":
            for i in n.input:
                if g.is_init(i) and i.endswith(".bias") and g.init[i].ndim == 1:
                    return i
    return None


def constant_weight(g: Graph, name: str) -> np.ndarray | None:
    """An fp32 initializer, or the Transpose of one (optimum's export of the tied LM head)."""
    if g.is_init(name):
        return g.init[name].astype(np.float32)
    n = g.producer.get(name)
    if n is not None and n.op_type == "Transpose" and g.is_init(n.input[0]) and g.init[n.input[0]].ndim == 2:
        return g.init[n.input[0]].astype(np.float32).T
    return None


def matmul_weights(g: Graph) -> tuple[dict[str, np.ndarray], np.ndarray | None, tuple | None]:
    """({HF weight and bias names: fp32, weights [in, out]}, LM head [in, vocab] or None,
    the LM head's (int8 values, zero point, per-tensor scale) when it is quantized)."""
    found: dict[str, np.ndarray] = {}
    lm_head, lm_head_q, quant = None, None, None
    for n in g.nodes:
        if n.op_type == "MatMulInteger":
            wq = n.input[1]
            if not g.is_init(wq):
                continue
            zp = g.init[n.input[3]].astype(np.float32) if len(n.input) > 3 and n.input[3] else np.float32(0)
            scale = scale_after(g, n.output[0], n.name)
            w = (g.init[wq].astype(np.float32) - zp) * scale
            quant = (g.init[wq], zp, scale)
        elif n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and constant_weight(g, n.input[1]) is not None:
            w = constant_weight(g, n.input[1])
            quant = None
            if n.op_type == "Gemm":
                if any(a.name == "transB" and a.i for a in n.attribute):
                    w = w.T
                if any(a.name == "transA" and a.i for a in n.attribute):
                    raise SystemExit(f"error: Gemm {n.name!r} has transA=1; not a GPT-2 export")
        else:
            continue
        # optimum exports Conv1D as Gemm with the bias as its third input; quantize.py's rewrite
        # turns that into MatMul + Add.
        gemm_bias = n.input[2] if n.op_type == "Gemm" and len(n.input) > 2 and g.is_init(n.input[2]) else None
        bias = gemm_bias if gemm_bias and gemm_bias.endswith(".bias") else bias_of(g, n.output[0])
        if bias is None:
            if g.reaches_output(n.output[0], "logits"):
                if lm_head is not None:
                    raise SystemExit(f"error: a second LM head MatMul {n.name!r}")
                lm_head, lm_head_q = w, quant
                continue
            raise SystemExit(f"error: weight MatMul {n.name!r} ({n.input[1]}) has no bias Add and is not the "
                             "LM head: cannot name its parameter")
        name = bias[: -len(".bias")] + ".weight"
        if name in found:
            raise SystemExit(f"error: two MatMuls map to {name} (the second is {n.name!r})")
        if g.init[bias].shape[0] != w.shape[1]:
            raise SystemExit(f"error: bias {bias} has {g.init[bias].shape[0]} values for a weight of {w.shape[1]} "
                             "outputs")
        found[name] = w
        found[bias] = g.init[bias].astype(np.float32)
    return found, lm_head, lm_head_q


def embedding_tables(g: Graph) -> tuple[dict[str, np.ndarray], dict[str, tuple]]:
    """({transformer.wte.weight / transformer.wpe.weight: [rows, n_embd] fp32} from the Gather nodes,
    {name: (int8 table, per-row scale [rows, 1])} for the quantized ones)."""
    found: dict[str, np.ndarray] = {}
    quantized: dict[str, tuple] = {}
    gathers = [n for n in g.nodes if n.op_type == "Gather" and g.is_init(n.input[0]) and g.init[n.input[0]].ndim == 2]
    scale_gathers = {}
    for n in gathers:
        # A per-row scale table ([rows, 1]) gathered by the same indices as an int8 table.
        if g.init[n.input[0]].shape[1] == 1:
            scale_gathers[n.input[1]] = g.init[n.input[0]].astype(np.float32)
    for n in gathers:
        table = g.init[n.input[0]]
        if table.shape[1] == 1:
            continue
        srcs = g.source_inputs(n.input[1])
        if srcs == {"input_ids"}:
            name = "transformer.wte.weight"
        elif srcs == {"position_ids"}:
            name = "transformer.wpe.weight"
        else:
            raise SystemExit(f"error: Gather {n.name!r} of {n.input[0]} reads {sorted(srcs) or 'no input'}; "
                             "expected input_ids or position_ids")
        if table.dtype in (np.int8, np.uint8):
            scale = scale_gathers.get(n.input[1])
            if scale is None:
                raise SystemExit(f"error: int8 table {n.input[0]} has no per-row scale Gather with the same indices")
            quantized[name] = (table, scale)
            table = table.astype(np.float32) * scale
        if name in found:
            raise SystemExit(f"error: two Gathers map to {name}")
        found[name] = table.astype(np.float32)
    return found, quantized


def reconcile_tied(row_q: np.ndarray, row_scale: np.ndarray, head_q: np.ndarray, head_zp, head_scale,
                   ) -> tuple[np.ndarray, dict]:
    """One fp32 embedding that both of the graph's int8 copies come from.

    The graph quantized the same fp32 table twice: per row for the embedding Gather and per tensor
    (transposed) for the LM head. Each int8 value says the original lay within half a step of
    q * scale, so the original lies in the intersection of the two intervals; its midpoint
    re-quantizes to both int8 tables (quantize.py, the same pipeline, then rebuilds the committed
    graph's weights) and is closer to the original than either dequantized copy. Each row's
    largest entry stays exactly 127 * row scale so both scales come out the same. Where the
    intervals do not meet (a graph not quantized from one table), the per-row value is kept.
    """
    row_q = row_q.astype(np.float32)
    head = (head_q.T.astype(np.float32) - np.float32(head_zp))
    hs = np.float32(head_scale)
    lo = np.maximum((row_q - 0.5) * row_scale, (head - 0.5) * hs)
    hi = np.minimum((row_q + 0.5) * row_scale, (head + 0.5) * hs)
    ok = lo <= hi
    w = np.where(ok, (lo + hi) / 2, row_q * row_scale).astype(np.float32)
    at_max = np.abs(row_q) == 127
    w = np.where(at_max, row_q * row_scale, w).astype(np.float32)
    # No entry may exceed its row's maximum, or the per-row scale would change.
    cap = 127 * row_scale
    w = np.clip(w, -cap, cap).astype(np.float32)
    stats = {"entries": int(w.size), "intervals_disjoint": int((~ok).sum())}
    log(f"tied embedding: {stats['intervals_disjoint']} of {stats['entries']:,} entries have no value that "
        "quantizes to both int8 copies (kept per row)")
    return w, stats


def layer_norms(g: Graph) -> dict[str, np.ndarray]:
    found = {}
    for n in g.nodes:
        if n.op_type not in ("LayerNormalization", "SkipLayerNormalization"):
            continue
        params = [i for i in n.input[1:] if g.is_init(i)]
        for p in params:
            if p in found:
                raise SystemExit(f"error: LayerNorm parameter {p} is used twice")
            found[p] = g.init[p].astype(np.float32)
    return found


def reconstruct(model_dir: Path, out: Path) -> dict:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    graph_path = model_dir / "model.onnx"
    if not graph_path.exists():
        raise SystemExit(f"error: {graph_path} not found (the single layout's model.onnx)")
    cfg = GPT2Config.from_pretrained(model_dir)
    g = Graph(graph_path)
    weights, lm_head, lm_head_q = matmul_weights(g)
    embeds, embeds_q = embedding_tables(g)
    norms = layer_norms(g)
    params: dict[str, np.ndarray] = {}
    for part in (weights, embeds, norms):
        for k, v in part.items():
            if k in params:
                raise SystemExit(f"error: {k} found twice in the graph")
            params[k] = v

    model = GPT2LMHeadModel(cfg)
    sd = model.state_dict()
    tied = model.config.tie_word_embeddings
    expected = {k for k in sd if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    if tied:
        expected.discard("lm_head.weight")
    missing = sorted(expected - params.keys())
    extra = sorted(params.keys() - expected)
    if missing or extra:
        raise SystemExit(f"error: graph {graph_path} does not map onto GPT2LMHeadModel: missing {missing}, "
                         f"unexpected {extra}")
    for k in expected:
        if tuple(sd[k].shape) != params[k].shape:
            raise SystemExit(f"error: {k} is {params[k].shape} in the graph, {tuple(sd[k].shape)} in the model")

    info: dict = {"graph": str(graph_path), "parameters": int(sum(p.size for p in params.values()))}
    if lm_head is None:
        raise SystemExit("error: no LM head MatMul feeds `logits`")
    if tied:
        wte = params["transformer.wte.weight"]
        if lm_head.shape != wte.T.shape:
            raise SystemExit(f"error: LM head is {lm_head.shape}, expected {wte.T.shape}")
        info["lm_head_vs_embedding_max_abs_diff"] = float(np.abs(lm_head - wte.T).max())
        log(f"tied LM head: the graph's LM head weight differs from its embedding by at most "
            f"{info['lm_head_vs_embedding_max_abs_diff']:.5f}")
        if lm_head_q is not None and "transformer.wte.weight" in embeds_q:
            params["transformer.wte.weight"], info["tied_reconciled"] = reconcile_tied(
                *embeds_q["transformer.wte.weight"], *lm_head_q)
    else:
        params["lm_head.weight"] = lm_head.T
    with torch.no_grad():
        for k, v in params.items():
            sd[k].copy_(torch.from_numpy(np.ascontiguousarray(v)))
    model.eval()

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model.save_pretrained(out)
    for name in COPY_FILES:
        if (model_dir / name).exists():
            shutil.copyfile(model_dir / name, out / name)
    tok = model_dir / "tokenizer.json"
    shutil.copyfile(tok if tok.exists() else TOKENIZER_DIR / "tokenizer.json", out / "tokenizer.json")
    for extra_file in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        if (TOKENIZER_DIR / extra_file).exists():
            shutil.copyfile(TOKENIZER_DIR / extra_file, out / extra_file)
    log(f"wrote {out} ({info['parameters']:,} parameters from {len(params)} tensors)")
    return info


def verify(model_dir: Path, out: Path, text_file: Path, threads: int) -> dict:
    from demo_eval import OnnxLM, TorchLM, log_softmax_nll, text_ids
    from transformers import GPT2LMHeadModel

    ids = np.array([text_ids(text_file.read_text(encoding="utf-8"))], dtype=np.int64)
    onnx_lm = OnnxLM(model_dir, threads)
    torch_lm = TorchLM(GPT2LMHeadModel.from_pretrained(out), threads)
    a, b = onnx_lm.logits(ids)[0], torch_lm.logits(ids)[0]
    res = {"text": str(text_file), "tokens": int(ids.shape[1])}
    for name, lg in (("onnx", a), ("checkpoint", b)):
        nll = log_softmax_nll(lg[:-1], ids[0, 1:]) / (ids.shape[1] - 1)
        res[f"{name}_perplexity"] = math.exp(nll)
    res["perplexity_rel_diff"] = res["checkpoint_perplexity"] / res["onnx_perplexity"] - 1
    res["first_step_logits_max_abs_diff"] = float(np.abs(a - b).max())
    res["first_step_last_position_max_abs_diff"] = float(np.abs(a[-1] - b[-1]).max())
    res["logit_std"] = float(a.std())
    res["argmax_agreement"] = float((a.argmax(-1) == b.argmax(-1)).mean())
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(MODELS_DIR / "demo"), help="folder with model.onnx + config.json")
    ap.add_argument("--out", required=True, help="checkpoint folder to write (replaced)")
    ap.add_argument("--verify", action="store_true", help="compare with the graph on --text")
    ap.add_argument("--text", default=str(MODELS_DIR / "demo" / "heldout.txt"))
    ap.add_argument("--max-ppl-diff", type=float, default=0.01,
                    help="--verify fails when the perplexities differ by more than this fraction")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    model_dir, out = Path(args.model), Path(args.out)
    (out / "READY").unlink(missing_ok=True)
    info = reconstruct(model_dir, out)
    if args.verify:
        res = verify(model_dir, out, Path(args.text), args.threads)
        info["verify"] = res
        log(json.dumps(res))
        (out / "verify.json").write_text(json.dumps(info, indent=2) + "\n")
        if abs(res["perplexity_rel_diff"]) > args.max_ppl_diff:
            raise SystemExit(f"error: checkpoint perplexity {res['checkpoint_perplexity']:.3f} differs from the "
                             f"graph's {res['onnx_perplexity']:.3f} by more than {args.max_ppl_diff:.0%}")
    (out / "READY").write_text("")
    log(f"READY: {out / 'READY'}")


if __name__ == "__main__":
    main()
