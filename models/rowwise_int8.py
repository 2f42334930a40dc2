"""Per-row activation quantization for a dynamic int8 graph, so batching cannot change a row's numbers.

onnxruntime's quantize_dynamic puts DynamicQuantizeLinear before each MatMulInteger: ONE scale and
zero point for the whole activation tensor, i.e. for every row of the batch. A sequence's numbers then
depend on what the other sequences of its batch hold (a longer or louder neighbour changes the scale),
and its sampled tokens can differ from a run alone. `rowwise(model)` replaces every
DynamicQuantizeLinear(x) -> (x_q, x_scale, x_zero_point) with the same quantization done per row
(per position: the last axis is the one MatMulInteger contracts), in plain ONNX ops:

    x_scale = Max(ReduceMax(Abs(x), axes=[-1], keepdims=1) / 127, tiny)     # [..., rows, 1]
    x_q     = Cast<uint8>(Round(x / x_scale) + 128)                          # 1..255
    x_zero_point = 128 (a constant: symmetric, so a scalar zero point suits every row)

and reorders the dequantization after MatMulInteger from Cast -> Mul(Mul(x_scale, w_scale)) to
Cast -> Mul(w_scale) -> Mul(x_scale). The reorder matters: ONNX Runtime's graph optimizer fuses
MatMulInteger + Cast + Mul(x_scale * w_scale) into MatMulIntegerToFloat, whose A scale is per tensor or
per column, and with a per-row [rows, 1] scale it computed wrong numbers (held-out loss 3.53 instead of
3.13 on the demo model, onnxruntime 1.31.1, ORT_ENABLE_ALL); split, the fused part only sees the weight
scale.

The integer GEMM is exact, and every other op works row by row, so a row gives bit-identical logits in
any batch (checked by test_batch_invariance below and by gptrt's batch_invariance tests).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from _common import all_graphs


def _split_scale_muls(g: onnx.GraphProto, quantizers: dict[str, onnx.NodeProto]) -> int:
    """MatMulInteger -> Cast -> Mul(s) with s = Mul(x_scale, w_scale) becomes
    Cast -> Mul(w_scale) -> Mul(x_scale); returns how many."""
    producers = {o: n for n in g.node for o in n.output}
    new_nodes, done = [], 0
    for n in g.node:
        new_nodes.append(n)
        if n.op_type != "Mul" or len(n.input) != 2:
            continue
        casts = [i for i in n.input if i in producers and producers[i].op_type == "Cast"
                 and producers[i].input[0] in producers
                 and producers[producers[i].input[0]].op_type == "MatMulInteger"]
        if len(casts) != 1:
            continue
        cast = producers[casts[0]]
        mmi = producers[cast.input[0]]
        scales = producers.get(n.input[1] if n.input[0] == casts[0] else n.input[0])
        if scales is None or scales.op_type != "Mul":
            continue
        x_scale = quantizers[mmi.input[0]].output[1] if mmi.input[0] in quantizers else None
        if x_scale not in scales.input:
            continue
        w_scale = scales.input[1] if scales.input[0] == x_scale else scales.input[0]
        out = n.output[0]
        n.input[:] = [cast.output[0], w_scale]
        n.output[0] = out + "_weight_scaled"
        new_nodes.append(helper.make_node("Mul", [n.output[0], x_scale], [out], name=n.name + "_row_scale"))
        done += 1
    del g.node[:]
    g.node.extend(new_nodes)
    return done


def rowwise(model: onnx.ModelProto) -> int:
    """Quantize every DynamicQuantizeLinear's input per row instead (see the module doc); returns
    how many. Raises SystemExit when a quantized MatMul's dequantization is not the expected form."""
    top = model.graph
    consts = {
        "axes": np.array([-1], np.int64),
        "tiny": np.array(1e-30, np.float32),
        "127": np.array(127.0, np.float32),
        "128": np.array(128.0, np.float32),
        "zero_point": np.array(128, np.uint8),
    }
    names = {}
    for key, value in consts.items():
        names[key] = f"rowwise_int8_{key}"
        top.initializer.append(numpy_helper.from_array(value, names[key]))
    count = 0
    for g in list(all_graphs(top)):
        quantizers = {o: n for n in g.node if n.op_type == "DynamicQuantizeLinear" for o in n.output[:1]}
        if not quantizers:
            continue
        split = _split_scale_muls(g, quantizers)
        matmuls = sum(1 for n in g.node if n.op_type == "MatMulInteger")
        if split != matmuls:
            raise SystemExit(f"error: {split} of {matmuls} MatMulInteger outputs are dequantized as "
                             "Cast -> Mul(x_scale * w_scale); cannot quantize the others per row")
        new_nodes = []
        rename: dict[str, str] = {}
        for n in g.node:
            if n.op_type != "DynamicQuantizeLinear":
                new_nodes.append(n)
                continue
            x = n.input[0]
            q, scale, zero_point = n.output
            b = (n.name or x) + "_row"
            rename[zero_point] = names["zero_point"]
            new_nodes += [
                helper.make_node("Abs", [x], [b + "_abs"], name=b + "_abs"),
                helper.make_node("ReduceMax", [b + "_abs", names["axes"]], [b + "_max"], name=b + "_max",
                                 keepdims=1),
                helper.make_node("Div", [b + "_max", names["127"]], [b + "_scale0"], name=b + "_scale0"),
                # an all-zero row: any positive scale quantizes it to zeros
                helper.make_node("Max", [b + "_scale0", names["tiny"]], [scale], name=b + "_scale"),
                helper.make_node("Div", [x, scale], [b + "_scaled"], name=b + "_div"),
                helper.make_node("Round", [b + "_scaled"], [b + "_round"], name=b + "_round"),
                helper.make_node("Add", [b + "_round", names["128"]], [b + "_shift"], name=b + "_shift"),
                helper.make_node("Cast", [b + "_shift"], [q], name=b + "_cast", to=TensorProto.UINT8),
            ]
            count += 1
        for n in new_nodes:
            n.input[:] = [rename.get(i, i) for i in n.input]
        del g.node[:]
        g.node.extend(new_nodes)
    return count


def test_batch_invariance(path, rows: int = 6, tokens: int = 7, threads: int = 2) -> float | None:
    """Largest |logit difference| between a batch of `rows` different sequences (prompt step,
    then 5 decode steps) and each row run alone: 0.0 when the graph is batch-invariant. None for
    a graph without the single layout's interface (merged, no-past)."""
    import json
    from pathlib import Path

    import onnxruntime as ort

    path = Path(path)
    folder = path.parent if path.is_file() else path
    graph = path if path.is_file() else folder / "model.onnx"
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    s = ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])
    if "past_key_values.0.key" not in {i.name for i in s.get_inputs()} or len(s.get_inputs()) > 3 + 2 * json.loads(
            (folder / "config.json").read_text())["n_layer"]:
        return None  # checks the single layout's interface (and the split export's with-past graph)
    cfg = json.loads((folder / "config.json").read_text())
    heads, dim, layers = cfg["n_head"], cfg["n_embd"] // cfg["n_head"], cfg["n_layer"]

    def run(ids, past):
        b, t = ids.shape
        p = past[0].shape[2]
        feed = {"input_ids": ids, "attention_mask": np.ones((b, p + t), np.int64),
                "position_ids": np.broadcast_to(np.arange(p, p + t, dtype=np.int64), (b, t)).copy()}
        for layer in range(layers):
            feed[f"past_key_values.{layer}.key"] = past[2 * layer]
            feed[f"past_key_values.{layer}.value"] = past[2 * layer + 1]
        out = s.run(None, feed)
        return out[0], out[1:]

    rng = np.random.default_rng(0)
    empty = lambda b: [np.zeros((b, heads, 0, dim), np.float32)] * (2 * layers)  # noqa: E731
    ids = rng.integers(0, cfg["vocab_size"] - 1, (rows, tokens)).astype(np.int64)
    batch_logits, batch_past = run(ids, empty(rows))
    worst = 0.0
    alone = []
    for i in range(rows):
        logits, past = run(ids[i:i + 1], empty(1))
        alone.append(past)
        worst = max(worst, float(np.abs(logits - batch_logits[i:i + 1]).max()))
    for _ in range(5):
        step = rng.integers(0, cfg["vocab_size"] - 1, (rows, 1)).astype(np.int64)
        batch_logits, batch_past = run(step, batch_past)
        for i in range(rows):
            logits, alone[i] = run(step[i:i + 1], alone[i])
            worst = max(worst, float(np.abs(logits - batch_logits[i:i + 1]).max()))
    return worst
