#!/usr/bin/env python3
"""Make an int8 copy of an exported GPT-2 model folder with onnxruntime's dynamic quantization.

    /root/venv-models/bin/python models/quantize.py --model models/work/demo-export/single \
        --out models/work/demo-export-int8/single

Every *.onnx in --model is rewritten and quantized into --out; config.json, generation_config.json
and the tokenizer (tokenizer.json, or vocab.json + merges.txt; symlinks are copied as real files) are
copied next to it. Works on the single, split, nopast and merged (If + subgraphs) layouts of
make_fixtures.py / optimum.

quantize_dynamic(weight_type=QInt8) as-is leaves a GPT-2 export mostly fp32 and slow:
  - Conv1D layers are exported as Gemm, which the dynamic (IntegerOps) quantizer skips;
  - the tied LM head is MatMul(h, Transpose(wte)): B is not an initializer, so it is skipped;
  - the embedding Gather is quantized to uint8 with a DequantizeLinear of the whole
    [50257, n_embd] table on every step.
So the graph is rewritten first (in the outer graph and in If branches):
  1. Gemm(A, B, C) (alpha = beta = 1) -> MatMul(A, B') + Add(C), B' = B or B^T (transB);
  2. MatMul(h, Transpose(W)) with W an initializer -> MatMul(h, W^T), W^T a new constant;
  3. the token embedding Gather(wte, ids) -> Gather(wte_int8, ids) -> Cast(float) ->
     Mul(Gather(wte_scale, ids)): symmetric int8 per row (scale = max|row| / 127), so only the
     gathered rows are dequantized;
then quantize_dynamic(op_types_to_quantize=["MatMul"], weight_type=QInt8, MatMulConstBOnly,
EnableSubgraph) turns every weight MatMul (the 4 per layer and the LM head) into
DynamicQuantizeLinear + MatMulInteger. Position embeddings, LayerNorm and biases stay fp32.
--per-channel uses one scale per output column for the MatMul weights.

Prints a JSON summary (sizes, node counts, fp32 bytes left).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import onnx_bytes, save_onnx, uses_external_data  # noqa: E402

VOCAB_SIZE = 50257
COPY_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "vocab.json", "merges.txt", "special_tokens_map.json")


def _graphs(g):
    """The graph and all its subgraphs (If branches), outermost first."""
    yield g
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sg in a.graphs:
                    yield from _graphs(sg)


def rewrite(model: onnx.ModelProto) -> dict:
    top = model.graph
    inits = {i.name: i for i in top.initializer}
    added: dict[str, str] = {}  # cache: (kind, name) -> new initializer name
    stats = {"gemm_to_matmul": 0, "lm_head_transpose_folded": 0, "embedding_gather_int8": 0}

    def new_init(name: str, arr: np.ndarray) -> str:
        t = numpy_helper.from_array(arr, name)
        top.initializer.append(t)
        inits[name] = t
        return name

    def transposed(name: str) -> str:
        key = f"T:{name}"
        if key not in added:
            arr = numpy_helper.to_array(inits[name])
            added[key] = new_init(f"{name}_T", np.ascontiguousarray(arr.T))
        return added[key]

    def embedding_q(name: str) -> tuple[str, str]:
        key = f"Q:{name}"
        if key not in added:
            w = numpy_helper.to_array(inits[name]).astype(np.float32)
            scale = np.abs(w).max(axis=1, keepdims=True) / 127.0
            scale[scale == 0] = 1.0
            q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
            added[key] = new_init(f"{name}_int8", q)
            added[key + ":s"] = new_init(f"{name}_scale", scale.astype(np.float32))
        return added[key], added[key + ":s"]

    # innermost graphs first: replacing a graph's node list copies its If nodes (and their branches)
    for g in reversed(list(_graphs(top))):
        producers = {o: n for n in g.node for o in n.output}
        new_nodes = []
        for n in g.node:
            if n.op_type == "Gemm" and len(n.input) >= 2 and n.input[1] in inits:
                attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
                if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0):
                    new_nodes.append(n)
                    continue
                b = transposed(n.input[1]) if attrs.get("transB", 0) else n.input[1]
                if len(n.input) > 2 and n.input[2]:
                    mm_out = n.output[0] + "_matmul"
                    new_nodes.append(helper.make_node("MatMul", [n.input[0], b], [mm_out], name=n.name + "_MatMul"))
                    new_nodes.append(helper.make_node("Add", [mm_out, n.input[2]], [n.output[0]], name=n.name + "_Add"))
                else:
                    new_nodes.append(helper.make_node("MatMul", [n.input[0], b], [n.output[0]], name=n.name + "_MatMul"))
                stats["gemm_to_matmul"] += 1
                continue
            if n.op_type == "MatMul" and n.input[1] in producers:
                p = producers[n.input[1]]
                perm = [helper.get_attribute_value(a) for a in p.attribute if a.name == "perm"]
                if p.op_type == "Transpose" and p.input[0] in inits and (not perm or list(perm[0]) == [1, 0]):
                    n.input[1] = transposed(p.input[0])
                    stats["lm_head_transpose_folded"] += 1
            if (n.op_type == "Gather" and n.input[0] in inits
                    and list(inits[n.input[0]].dims)[:1] == [VOCAB_SIZE]
                    and inits[n.input[0]].data_type == TensorProto.FLOAT):
                q, s = embedding_q(n.input[0])
                base = n.output[0]
                new_nodes += [
                    helper.make_node("Gather", [q, n.input[1]], [base + "_q"], name=n.name + "_q", axis=0),
                    helper.make_node("Cast", [base + "_q"], [base + "_qf"], name=n.name + "_cast", to=TensorProto.FLOAT),
                    helper.make_node("Gather", [s, n.input[1]], [base + "_s"], name=n.name + "_scale", axis=0),
                    helper.make_node("Mul", [base + "_qf", base + "_s"], [base], name=n.name + "_dequant"),
                ]
                stats["embedding_gather_int8"] += 1
                continue
            new_nodes.append(n)
        del g.node[:]
        g.node.extend(new_nodes)

    # drop Transpose nodes and initializers nobody uses any more
    for _ in range(2):
        used = {i for g in _graphs(top) for n in g.node for i in n.input}
        used |= {o.name for g in _graphs(top) for o in g.output}
        for g in reversed(list(_graphs(top))):
            keep = [n for n in g.node if n.op_type != "Transpose" or any(o in used for o in n.output)]
            if len(keep) != len(g.node):
                del g.node[:]
                g.node.extend(keep)
        used = {i for g in _graphs(top) for n in g.node for i in n.input}
        keep_inits = [i for i in top.initializer if i.name in used]
        stats["initializers_removed"] = stats.get("initializers_removed", 0) + len(top.initializer) - len(keep_inits)
        del top.initializer[:]
        top.initializer.extend(keep_inits)
    return stats


def summarize(path: Path) -> dict:
    from collections import Counter

    m = onnx.load(str(path))
    ops = Counter(n.op_type for g in _graphs(m.graph) for n in g.node)
    by_type = Counter()
    for i in m.graph.initializer:
        by_type[onnx.helper.tensor_dtype_to_np_dtype(i.data_type).name] += len(i.raw_data) or 0
    return {"bytes": onnx_bytes(path), "MatMul": ops.get("MatMul", 0), "MatMulInteger": ops.get("MatMulInteger", 0),
            "Gemm": ops.get("Gemm", 0), "DequantizeLinear": ops.get("DequantizeLinear", 0),
            "DynamicQuantizeLinear": ops.get("DynamicQuantizeLinear", 0),
            "initializer_bytes_by_dtype": dict(by_type)}


def keep_layout(src: Path, dst: Path) -> None:
    """A source that keeps its weights in external data (export_fused.py) gets a result that does too."""
    if uses_external_data(src):
        save_onnx(onnx.load(str(dst)), dst, external=True)


def quantize_file_int4(src: Path, dst: Path) -> dict:
    """Weight-only int4: MatMulNBits, block 32, symmetric, accuracy level 4 (int8 compute)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(src))
    stats = rewrite(model)
    quantizer = MatMulNBitsQuantizer(model, block_size=32, is_symmetric=True, accuracy_level=4)
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
    onnx.checker.check_model(str(dst))
    keep_layout(src, dst)
    summary = summarize(dst)
    summary["rewrite"] = stats
    m = onnx.load(str(dst))
    summary["MatMulNBits"] = sum(1 for g in _graphs(m.graph) for n in g.node if n.op_type == "MatMulNBits")
    if summary["MatMulNBits"] == 0:
        raise SystemExit(f"error: {dst}: no MatMul was quantized to 4 bits")
    return summary


def quantize_file(src: Path, dst: Path, per_channel: bool) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src))
    stats = rewrite(model)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "rewritten.onnx"
        onnx.save(model, str(tmp))
        quantize_dynamic(
            str(tmp), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel,
            op_types_to_quantize=["MatMul"],
            extra_options={"MatMulConstBOnly": True, "EnableSubgraph": True},
        )
    # the quantizer leaves a stale value_info/opset mix at times; make sure the result is valid
    onnx.checker.check_model(str(dst))
    keep_layout(src, dst)
    summary = summarize(dst)
    summary["rewrite"] = stats
    fp32_left = summary["initializer_bytes_by_dtype"].get("float32", 0)
    if summary["MatMulInteger"] == 0:
        raise SystemExit(f"error: {dst}: no MatMul was quantized")
    summary["fp32_initializer_bytes"] = fp32_left
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a layout folder (*.onnx + config.json + tokenizer)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-channel", action="store_true", help="per-column scales for the MatMul weights")
    ap.add_argument("--bits", type=int, choices=[8, 4], default=8,
                    help="8: dynamic int8 (MatMulInteger); 4: weight-only MatMulNBits, block 32, accuracy level 4")
    args = ap.parse_args()
    src, out = Path(args.model), Path(args.out)
    graphs = sorted(src.glob("*.onnx"))
    if not graphs:
        sys.exit(f"error: no .onnx file in {src}")
    if out.resolve() == src.resolve():
        sys.exit("error: --out must differ from --model")
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    for g in graphs:
        quantized = quantize_file_int4(g, out / g.name) if args.bits == 4 else quantize_file(g, out / g.name, args.per_channel)
        report[g.name] = {"fp32_bytes": onnx_bytes(g), **quantized}
    for name in COPY_FILES:
        p = src / name
        if p.exists():
            dst = out / name
            if dst.exists() or dst.is_symlink():
                dst.unlink()
            shutil.copyfile(p.resolve(), dst)  # a real file, also when the source is a symlink
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
