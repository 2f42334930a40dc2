"""Static activation scales for a dynamic int8 graph: calibrated once, so no run computes them.

onnxruntime's quantize_dynamic quantizes each MatMul's activations with DynamicQuantizeLinear: one
scale and zero point computed from the whole tensor on every run. That is fast (ONNX Runtime fuses
it into DynamicQuantizeMatMul) but a row's numbers depend on its batch mates. rowwise_int8.py fixes
that with per-row scales in plain ONNX ops, whose element-wise passes cost more than the integer
GEMM on small models. Here each activation instead gets ONE constant scale and zero point, measured
on calibration text through the fp32 source graph (the tensor's minimum and maximum, widened to
include 0), and every

    DynamicQuantizeLinear(x) -> MatMulInteger -> Cast -> Mul(Mul(x_scale, w_scale))

becomes

    QuantizeLinear(x, scale, zero_point) -> MatMulIntegerToFloat(a_scale = scale, b_scale = w_scale)

a single element-wise pass before an integer GEMM that writes floats. Every op then works row by row
with constants, so a row gives bit-identical results in any batch, as fast as int8-dynamic or
faster. Values outside the calibrated range saturate: calibrate on text like what the model will
see. Graphs whose MatMuls sit inside If branches (optimum's merged layout) are refused: their
activations cannot be read out of the branches.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MAX_TEXTS = 512


def calibration_texts(path: Path) -> list[str]:
    """A .jsonl file's `text` fields, or a text file's paragraphs (separated by blank lines)."""
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        texts = []
        for number, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row.get("text"), str):
                    raise SystemExit(f"error: {path}:{number}: no string `text` field")
                texts.append(row["text"])
    else:
        texts = [p.strip() for p in raw.split("\n\n")]
    texts = [t for t in texts if t][:MAX_TEXTS]
    if not texts:
        raise SystemExit(f"error: {path}: no calibration text in it")
    return texts


def _feed(session, ids: list[int], cfg: dict) -> dict:
    """One unpadded row for any of the single layouts (plain, --shared-kv, no-past)."""
    n = len(ids)
    heads, dim = cfg["n_head"], cfg["n_embd"] // cfg["n_head"]
    names = {i.name for i in session.get_inputs()}
    shared = "past_sequence_length" in names
    feed = {"input_ids": np.array([ids], np.int64), "attention_mask": np.ones((1, n), np.int64)}
    if "position_ids" in names:
        feed["position_ids"] = np.arange(n, dtype=np.int64)[None]
    for name in names:
        if name.startswith("past_key_values"):
            feed[name] = np.zeros((1, heads, n if shared else 0, dim), np.float32)
    if shared:
        feed["past_sequence_length"] = np.array([0], np.int32)
    if "logits_to_keep" in names:
        feed["logits_to_keep"] = np.array(0, np.int64)
    if "use_cache_branch" in names:
        feed["use_cache_branch"] = np.array([False])
    return feed


def calibrate(src: Path, tensors: list[str], texts: list[str], threads: int = 2) -> dict[str, tuple[float, float]]:
    """Each tensor's (min, max) over `texts` run one by one through the fp32 graph `src`."""
    import tempfile

    import onnxruntime as ort
    from tokenizers import Tokenizer

    folder = src.parent
    cfg = json.loads((folder / "config.json").read_text())
    model = onnx.load(str(src))
    produced = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    missing = [t for t in tensors if t not in produced]
    if missing:
        raise SystemExit(f"error: {src}: int8-static reads each MatMul's input out of the top-level graph, and "
                         f"{missing[0]} is not there (an If branch?): export with export_fused.py or the single layout")
    for t in tensors:
        model.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    with tempfile.TemporaryDirectory() as td:
        probe = Path(td) / "calibrate.onnx"
        onnx.save(model, str(probe), save_as_external_data=True, location="calibrate.onnx.data")
        session = ort.InferenceSession(str(probe), so, providers=["CPUExecutionProvider"])
    if not (folder / "tokenizer.json").is_file():
        raise SystemExit(f"error: int8-static tokenizes its calibration text with {folder / 'tokenizer.json'}, "
                         "which is missing")
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    lo = {t: 0.0 for t in tensors}
    hi = {t: 0.0 for t in tensors}
    for text in texts:
        ids = tokenizer.encode(text).ids[: cfg["n_positions"]]
        if not ids:
            continue
        for t, value in zip(tensors, session.run(tensors, _feed(session, ids, cfg))):
            lo[t] = min(lo[t], float(value.min()))
            hi[t] = max(hi[t], float(value.max()))
    return {t: (lo[t], hi[t]) for t in tensors}


def to_static(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]) -> int:
    """Rewrites the top-level graph's DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul chains (see the
    module doc); returns how many MatMuls now use a static scale."""
    g = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    producers = {o: n for n in g.node for o in n.output}
    replaced: dict[int, onnx.NodeProto | None] = {}  # id(node) -> its replacement (None: dropped)
    for n in g.node:
        if n.op_type != "DynamicQuantizeLinear":
            continue
        lo, hi = ranges[n.input[0]]
        scale = max((hi - lo) / 255.0, 1e-8)
        zero_point = int(np.clip(round(-lo / scale), 0, 255))
        x_q, x_scale, x_zero_point = n.output
        g.initializer.extend([numpy_helper.from_array(np.array(scale, np.float32), x_scale),
                              numpy_helper.from_array(np.array(zero_point, np.uint8), x_zero_point)])
        replaced[id(n)] = helper.make_node("QuantizeLinear", [n.input[0], x_scale, x_zero_point], [x_q],
                                           name=f"{n.name}/static")
    count = 0
    for n in g.node:
        if n.op_type != "MatMulInteger" or producers.get(n.input[0], n).op_type != "DynamicQuantizeLinear":
            continue
        (cast,) = consumers[n.output[0]]
        (mul,) = consumers[cast.output[0]]
        scales = producers[next(i for i in mul.input if i != cast.output[0])]
        if cast.op_type != "Cast" or mul.op_type != "Mul" or scales.op_type != "Mul":
            raise SystemExit(f"error: {n.name}: not quantize_dynamic's MatMulInteger -> Cast -> Mul chain")
        x_scale, w_scale = scales.input
        replaced[id(n)] = helper.make_node(
            "MatMulIntegerToFloat", [n.input[0], n.input[1], x_scale, w_scale, n.input[2], n.input[3]],
            [mul.output[0]], name=f"{n.name}/static", domain="com.microsoft")
        for gone in (cast, mul, scales):
            replaced[id(gone)] = None
        count += 1
    nodes = [replaced.get(id(n), n) for n in g.node]
    del g.node[:]
    g.node.extend(n for n in nodes if n is not None)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return count
