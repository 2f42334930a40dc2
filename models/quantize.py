#!/usr/bin/env python3
"""Make an int8 (or int4) copy of an exported GPT-2 model folder for ONNX Runtime's CPU provider.

    /root/venv-models/bin/python models/quantize.py --model models/work/demo-export/single \
        --out models/work/demo-export-int8/single

Every *.onnx in --model is rewritten and quantized into --out; config.json, generation_config.json
and the tokenizer (tokenizer.json, or vocab.json + merges.txt; symlinks are copied as real files) are
copied next to it. Works on the single, split, nopast and merged (If + subgraphs) layouts of
make_fixtures.py / optimum.

--method picks the recipe; every one but int8-dynamic is batch-invariant: a sequence batched with
others computes bit for bit what it computes alone (measured with onnxruntime 1.31.1's CPU kernels,
batches of 2-16 different rows against each row alone, 1-4 threads; --check measures it on the result):
  int8-rows (default): onnxruntime's quantize_dynamic (int8 weights, MatMulInteger), then the
    activations are quantized per row instead of per tensor (rowwise_int8.py). The decode speed of
    int8-dynamic minus the cost of the extra element-wise ops; held-out perplexity slightly better.
  int8-static: int8 weights as int8-rows, and each activation quantized with ONE constant scale and
    zero point measured on --calibration text through the fp32 graph (static_int8.py): one
    QuantizeLinear and a MatMulIntegerToFloat per MatMul, no scale computed at run time. The fastest
    recipe (classification features at batch 32: faster than int8-dynamic) and batch-invariant;
    values outside the calibrated range saturate, so calibrate on text like the model's input.
    Top-level MatMuls only (not optimum's merged layout).
  int8-nbits: weight-only MatMulNBits (com.microsoft), 8 bits, symmetric, one scale per block of
    --block-size weights, accuracy level 4 (activations quantized per row and block on the fly).
    ORT 1.31's CPU kernel for 8 bits is slower than MatMulInteger here. Blocks of 128 and more are
    not batch-invariant: its one-row kernel sums the blocks in another order (ulp differences that
    grow through the layers).
  int4 (also --bits 4): the same with 4-bit weights.
  int8-dynamic: quantize_dynamic as-is: DynamicQuantizeLinear computes ONE activation scale over the
    whole batch, so a row's result depends on its batch mates (gptrt inspect reports such graphs as
    not batch-invariant). Kept to compare.

The quantizers on a GPT-2 export as-is leave it mostly fp32 and slow:
  - Conv1D layers are exported as Gemm, which the quantizers skip;
  - the tied LM head is MatMul(h, Transpose(wte)): B is not an initializer, so it is skipped;
  - the embedding Gather is quantized to uint8 with a DequantizeLinear of the whole
    [50257, n_embd] table on every step (dynamic), or left fp32.
So the graph is rewritten first (in the outer graph and in If branches):
  1. Gemm(A, B, C) (alpha = beta = 1) -> MatMul(A, B') + Add(C), B' = B or B^T (transB);
  2. MatMul(h, Transpose(W)) with W an initializer -> MatMul(h, W^T), W^T a new constant;
  3. the token embedding Gather(wte, ids) -> Gather(wte_int8, ids) -> Cast(float) ->
     Mul(Gather(wte_scale, ids)): symmetric int8 per row (scale = max|row| / 127), so only the
     gathered rows are dequantized (row-independent: each row reads only its own ids);
then every weight MatMul (the 4 per layer and the LM head) is quantized. Position embeddings,
LayerNorm and biases stay fp32.

A graph that is already dynamic int8 (int8-dynamic's output, e.g. the demo model committed before
int8-rows, whose fp32 checkpoint is not in the repository): int8-rows keeps its int8 weights bit for
bit and only changes how the activations are quantized; int8-nbits and int4 first turn its
MatMulIntegers back into fp32 MatMuls holding exactly its dequantized weights.

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
from _common import all_graphs, onnx_bytes, save_onnx, uses_external_data  # noqa: E402
from static_int8 import calibration_texts  # noqa: E402

VOCAB_SIZE = 50257
# nodes that only feed a replaced one: dropped once nothing reads their outputs
PRUNABLE = ("Transpose", "DynamicQuantizeLinear", "Mul")
METHODS = ("int8-rows", "int8-static", "int8-nbits", "int4", "int8-dynamic")
COPY_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "vocab.json", "merges.txt", "special_tokens_map.json")



def _prune(top: onnx.GraphProto) -> int:
    """Drop the nodes nobody reads any more (Transpose, DynamicQuantizeLinear, their scale Muls) and
    the initializers nobody uses; returns how many initializers went."""
    removed = 0
    for _ in range(3):
        used = {i for g in all_graphs(top) for n in g.node for i in n.input}
        used |= {o.name for g in all_graphs(top) for o in g.output}
        for g in reversed(list(all_graphs(top))):
            keep = [n for n in g.node if n.op_type not in PRUNABLE or any(o in used for o in n.output)]
            if len(keep) != len(g.node):
                del g.node[:]
                g.node.extend(keep)
        used = {i for g in all_graphs(top) for n in g.node for i in n.input}
        keep_inits = [i for i in top.initializer if i.name in used]
        removed += len(top.initializer) - len(keep_inits)
        del top.initializer[:]
        top.initializer.extend(keep_inits)
    return removed


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
    for g in reversed(list(all_graphs(top))):
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
                    and len(inits[n.input[0]].dims) == 2 and inits[n.input[0]].dims[0] == VOCAB_SIZE
                    and inits[n.input[0]].dims[1] > 1  # not the row scales of an already int8 table
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

    stats["initializers_removed"] = _prune(top)
    return stats



def dequantize_dynamic(model: onnx.ModelProto) -> int:
    """DynamicQuantizeLinear(x) -> MatMulInteger(x_q, W_q, x_zp, W_zp) -> Cast -> Mul(x_s * W_s), with
    W_q, W_zp and W_s initializers (quantize_dynamic's pattern), back to MatMul(x, (W_q - W_zp) * W_s):
    the same weights in fp32, no activation quantization. Returns how many were replaced."""
    top = model.graph
    inits = {i.name: i for i in top.initializer}
    replaced = 0

    def const(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(inits[name]) if name in inits else None

    for g in reversed(list(all_graphs(top))):
        producers = {o: n for n in g.node for o in n.output}
        consumers: dict[str, list] = {}
        for n in g.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        drop: set[int] = set()
        replace: dict[int, onnx.NodeProto] = {}
        for n in g.node:
            if n.op_type != "MatMulInteger":
                continue
            dql = producers.get(n.input[0])
            wq = const(n.input[1])
            wzp = const(n.input[3]) if len(n.input) > 3 and n.input[3] else np.zeros((), np.int8)
            cast = consumers.get(n.output[0], [])
            mul = consumers.get(cast[0].output[0], []) if len(cast) == 1 else []
            if (dql is None or dql.op_type != "DynamicQuantizeLinear" or wq is None or wzp is None
                    or len(cast) != 1 or cast[0].op_type != "Cast" or len(mul) != 1 or mul[0].op_type != "Mul"):
                raise SystemExit(f"error: {n.name}: not quantize_dynamic's MatMulInteger pattern; "
                                 "quantize the fp32 export instead")
            scales = producers.get(next(i for i in mul[0].input if i != cast[0].output[0]))
            w_scale = [const(i) for i in scales.input if i != dql.output[1]] if scales is not None else []
            if scales is None or scales.op_type != "Mul" or len(w_scale) != 1 or w_scale[0] is None:
                raise SystemExit(f"error: {n.name}: cannot find the weight scale of its MatMulInteger")
            w = (wq.astype(np.float32) - wzp.astype(np.float32)) * w_scale[0].astype(np.float32)
            name = n.input[1].removesuffix("_quantized")
            if name in inits:
                name += "_dequantized"
            t = numpy_helper.from_array(w.astype(np.float32), name)
            top.initializer.append(t)
            inits[name] = t
            replace[id(n)] = helper.make_node("MatMul", [dql.input[0], name], [mul[0].output[0]],
                                              name=n.name.removesuffix("_quant") + "_dequantized")
            # the activation's quantizer may feed several MatMulIntegers (Q, K, V share an input)
            drop |= {id(cast[0]), id(mul[0])}
            replaced += 1
        new_nodes = [replace.get(id(n), n) for n in g.node if id(n) not in drop]
        del g.node[:]
        g.node.extend(new_nodes)
    if replaced:
        _prune(top)
    return replaced


def summarize(path: Path) -> dict:
    from collections import Counter

    m = onnx.load(str(path))
    ops = Counter(n.op_type for g in all_graphs(m.graph) for n in g.node)
    by_type = Counter()
    for i in m.graph.initializer:
        by_type[onnx.helper.tensor_dtype_to_np_dtype(i.data_type).name] += len(i.raw_data) or 0
    return {"bytes": onnx_bytes(path), "MatMul": ops.get("MatMul", 0), "MatMulInteger": ops.get("MatMulInteger", 0),
            "MatMulIntegerToFloat": ops.get("MatMulIntegerToFloat", 0),
            "Gemm": ops.get("Gemm", 0), "DequantizeLinear": ops.get("DequantizeLinear", 0),
            "DynamicQuantizeLinear": ops.get("DynamicQuantizeLinear", 0),
            "initializer_bytes_by_dtype": dict(by_type)}


def keep_layout(src: Path, dst: Path) -> None:
    """A source that keeps its weights in external data (export_fused.py) gets a result that does too."""
    if uses_external_data(src):
        save_onnx(onnx.load(str(dst)), dst, external=True)


def quantize_file_nbits(src: Path, dst: Path, bits: int, block_size: int) -> dict:
    """Weight-only MatMulNBits: `bits` bits, blocks of `block_size`, symmetric, accuracy level 4."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(src))
    dequantized = dequantize_dynamic(model)
    stats = rewrite(model)
    quantizer = MatMulNBitsQuantizer(model, bits=bits, block_size=block_size, is_symmetric=True, accuracy_level=4)
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
    onnx.checker.check_model(str(dst))
    keep_layout(src, dst)
    summary = summarize(dst)
    summary["rewrite"] = stats
    summary["matmulinteger_dequantized"] = dequantized
    m = onnx.load(str(dst))
    summary["MatMulNBits"] = sum(1 for g in all_graphs(m.graph) for n in g.node if n.op_type == "MatMulNBits")
    if summary["MatMulNBits"] == 0:
        raise SystemExit(f"error: {dst}: no MatMul was quantized to {bits} bits")
    if summary["DynamicQuantizeLinear"]:
        raise SystemExit(f"error: {dst}: {summary['DynamicQuantizeLinear']} DynamicQuantizeLinear left")
    return summary


def quantize_file(src: Path, dst: Path, per_channel: bool, method: str,
                  calibration: list[str] | None = None) -> dict:
    """Dynamic int8 (MatMulInteger); int8-rows quantizes its activations per row (rowwise_int8),
    int8-static with constant scales calibrated on `calibration` (static_int8)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from rowwise_int8 import rowwise
    from static_int8 import calibrate, to_static

    rows, static = method == "int8-rows", method == "int8-static"

    model = onnx.load(str(src))
    if static and any(n.op_type == "If" for n in model.graph.node):
        raise SystemExit(f"error: {src}: int8-static rewrites top-level MatMuls only and this graph keeps them "
                         "in If branches (optimum's merged layout): quantize the single layout or an "
                         "export_fused.py export")
    already = sum(1 for g in all_graphs(model.graph) for n in g.node if n.op_type == "MatMulInteger")
    if already and method == "int8-dynamic":
        raise SystemExit(f"error: {src} is dynamic int8 already")
    if already:
        stats = {"already_dynamic_int8": already}  # the same weights, bit for bit
    else:
        stats = rewrite(model)
        with tempfile.TemporaryDirectory() as td:
            tmp = Path(td) / "rewritten.onnx"
            onnx.save(model, str(tmp))
            quantize_dynamic(
                str(tmp), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel,
                op_types_to_quantize=["MatMul"],
                extra_options={"MatMulConstBOnly": True, "EnableSubgraph": True},
            )
        model = onnx.load(str(dst))
    if rows:
        stats["activations_quantized_per_row"] = rowwise(model)
    if static:
        tensors = [n.input[0] for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
        stats["activations_static"] = to_static(model, calibrate(src, tensors, calibration))
        stats["calibration_texts"] = len(calibration)
    if rows or static:
        _prune(model.graph)
        onnx.save(model, str(dst))
    # the quantizer leaves a stale value_info/opset mix at times; make sure the result is valid
    onnx.checker.check_model(str(dst))
    keep_layout(src, dst)
    summary = summarize(dst)
    summary["rewrite"] = stats
    fp32_left = summary["initializer_bytes_by_dtype"].get("float32", 0)
    if summary["MatMulInteger"] + summary["MatMulIntegerToFloat"] == 0:
        raise SystemExit(f"error: {dst}: no MatMul was quantized")
    if (rows or static) and summary["DynamicQuantizeLinear"]:
        raise SystemExit(f"error: {dst}: {summary['DynamicQuantizeLinear']} DynamicQuantizeLinear left")
    summary["fp32_initializer_bytes"] = fp32_left
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a layout folder (*.onnx + config.json + tokenizer)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--method", choices=METHODS, default="int8-rows",
                    help="int8-rows: dynamic int8 with per-row activation scales (default, batch-invariant); "
                         "int8-static: int8 with constant activation scales from --calibration (batch-invariant, "
                         "the fastest); "
                         "int8-nbits: weight-only MatMulNBits 8-bit (batch-invariant, slower on ORT 1.31's CPU); "
                         "int4: MatMulNBits 4-bit (batch-invariant); "
                         "int8-dynamic: quantize_dynamic as-is (one activation scale per batch: NOT batch-invariant)")
    ap.add_argument("--calibration", type=Path,
                    help="int8-static: text to measure the activations on (.jsonl with a `text` field per line, "
                         "or paragraphs separated by blank lines; the first 512 texts, each cut to n_positions tokens)")
    ap.add_argument("--bits", type=int, choices=[8, 4], help="4: the same as --method int4")
    ap.add_argument("--block-size", type=int, choices=[16, 32, 64], default=32,
                    help="MatMulNBits weights per scale; 128 and more are not batch-invariant on ORT 1.31's CPU")
    ap.add_argument("--per-channel", action="store_true",
                    help="int8-rows / int8-dynamic: per-column scales for the MatMul weights")
    ap.add_argument("--check", action="store_true",
                    help="run each result on a batch and on each row alone and report the largest logit difference")
    args = ap.parse_args()
    method = "int4" if args.bits == 4 else args.method
    if (method == "int8-static") != (args.calibration is not None):
        sys.exit("error: --calibration goes with --method int8-static, which needs it")
    calibration = calibration_texts(args.calibration) if args.calibration else None
    src, out = Path(args.model), Path(args.out)
    graphs = sorted(src.glob("*.onnx"))
    if not graphs:
        sys.exit(f"error: no .onnx file in {src}")
    if out.resolve() == src.resolve():
        sys.exit("error: --out must differ from --model")
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    for g in graphs:
        if method in ("int8-rows", "int8-static", "int8-dynamic"):
            quantized = quantize_file(g, out / g.name, args.per_channel, method, calibration)
        else:
            quantized = quantize_file_nbits(g, out / g.name, 4 if method == "int4" else 8, args.block_size)
        report[g.name] = {"fp32_bytes": onnx_bytes(g), **quantized}
    for name in COPY_FILES:
        p = src / name
        if p.exists():
            dst = out / name
            if dst.exists() or dst.is_symlink():
                dst.unlink()
            shutil.copyfile(p.resolve(), dst)  # a real file, also when the source is a symlink
    if args.check:
        from rowwise_int8 import test_batch_invariance

        for g in graphs:
            if g.name in ("model.onnx", "decoder_with_past_model.onnx"):  # graphs with past inputs
                report[g.name]["batch_vs_alone_max_abs_logit_diff"] = test_batch_invariance(out / g.name)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
