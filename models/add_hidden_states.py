#!/usr/bin/env python3
"""Expose a GPT-2 graph's final hidden state (the output of ln_f) as the graph output `last_hidden_state`.

    /root/venv-models/bin/python models/add_hidden_states.py IN_DIR OUT_DIR

gptrt's features, trained classification heads and the `org.gptrt.hidden_states` plugin
capability read `last_hidden_state` [batch, sequence, n_embd] (float32, every position, after the
final layer norm: the input of the LM head). optimum's exports do not return it; this script adds it
to every `*.onnx` of IN_DIR (optimum's single, split, merged and no-past layouts,
models/export_fused.py graphs, quantized copies such as models/demo/) and copies the other files
(config, tokenizer, ...). OUT_DIR may be IN_DIR (rewritten in place); a graph that already has the
output is copied unchanged, so the script can run again on its own output.

How ln_f is found, without trusting node names: walking back from `logits`, the nearest layer
normalization (LayerNormalization, SkipLayerNormalization, SimplifiedLayerNormalization) is ln_f,
since the LM head is a (possibly quantized) MatMul on its output. Its output tensor is renamed to
`last_hidden_state` and declared a graph output: no node is added, so nothing is copied or
recomputed. In a merged graph the `If` node's two branches each get the output. Graphs with
external data (model.onnx.data) are written with external data again.

It also adds `logits_to_keep` (as export_fused.py has it: an int64 scalar overridable initializer,
default 0 = logits at every position, N = the last N) where the graph lacks it and the LM head's
input is found (not inside a merged graph's `If`): gptrt feeds 1 for features and generation's
prefill, so the LM head (for the demo model most of a 64-token pass) runs on one position.

gptrt does not fetch the output while it generates (it asks ONNX Runtime for logits and presents
only), so generation costs the same with or without it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections import deque
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HIDDEN = "last_hidden_state"
LOGITS_TO_KEEP = "logits_to_keep"
# Ops between ln_f and the LM head that keep the [batch, sequence, n_embd] rows as they are.
PASS_THROUGH = {"Reshape", "Identity", "Cast"}
LAYER_NORMS = {"LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization",
               "SkipSimplifiedLayerNormalization"}


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename tensor `old` to `new` everywhere in `graph` and the subgraphs that read it."""
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename(attr.g, old, new)
            for sub in attr.graphs:
                _rename(sub, old, new)
    for info in list(graph.value_info) + list(graph.output):
        if info.name == old:
            info.name = new


def _ln_f_output(graph: onnx.GraphProto, logits: str) -> str:
    """The output of the layer normalization nearest to `logits`, walking back through the graph."""
    producer = {out: node for node in graph.node for out in node.output}
    seen, queue = {logits}, deque([logits])
    while queue:
        name = queue.popleft()
        node = producer.get(name)
        if node is None:
            continue
        if node.op_type in LAYER_NORMS:
            return node.output[0]
        for parent in node.input:
            if parent and parent not in seen:
                seen.add(parent)
                queue.append(parent)
    raise ValueError(f"no layer normalization found before output `{logits}`")


def expose(graph: onnx.GraphProto, n_embd: int, logits: str = "logits", name: str = HIDDEN) -> None:
    """Add output `name` (ln_f's output) to `graph`; an `If` producing `logits` gets it in both branches."""
    producer = {out: node for node in graph.node for out in node.output}
    node = producer.get(logits)
    if node is None:
        raise ValueError(f"graph {graph.name!r} has no node producing `{logits}`")
    shape = ["batch_size", "sequence_length", n_embd]
    if node.op_type == "If":
        index = list(node.output).index(logits)
        for attr in node.attribute:
            if attr.name in ("then_branch", "else_branch"):
                branch_logits = attr.g.output[index].name
                expose(attr.g, n_embd, branch_logits, f"{attr.name}/{name}")
        node.output.append(name)
    else:
        hidden = _ln_f_output(graph, logits)
        _rename(graph, hidden, name)
        # a typed value_info of the old name would now duplicate the output's declaration
        kept = [info for info in graph.value_info if info.name != name]
        del graph.value_info[:]
        graph.value_info.extend(kept)
    graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))


def add_logits_to_keep(graph: onnx.GraphProto, hidden: str = HIDDEN) -> bool:
    """Give a graph without it the optional input `logits_to_keep` (an int64 scalar kept as an
    overridable initializer, default 0 = every position; N > 0 = the last N), as export_fused.py
    writes it: the LM head's input is sliced to the last N positions. gptrt feeds 1 when it only
    needs the last position (generation's prefill, features), which takes the LM head over every
    other position out of the pass: for a small model most of a features pass. Returns whether it
    was added (not for a graph that has it, or whose LM head input cannot be found)."""
    names = {i.name for i in graph.initializer} | {i.name for i in graph.input}
    if LOGITS_TO_KEEP in names:
        return False
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    # from ln_f's output forward through row-preserving ops: the LM head's input
    head_input = hidden
    while True:
        users = consumers.get(head_input, [])
        if len(users) == 1 and users[0].op_type in PASS_THROUGH and users[0].output[0] not in outputs:
            head_input = users[0].output[0]
        else:
            break
    users = [u for u in consumers.get(head_input, []) if u.op_type != "If"]
    if not users:
        return False
    kept = f"{head_input}/kept"
    const = lambda name, value: graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.int64), name))
    const("logits_to_keep/shape_1", [1])
    const("logits_to_keep/zero_1", [0])
    const("logits_to_keep/int64_max_1", [np.iinfo(np.int64).max])
    const("logits_to_keep/axis_1", [1])
    nodes = [
        helper.make_node("Shape", [head_input], ["logits_to_keep/seq_len"], "logits_to_keep/Shape", start=1, end=2),
        helper.make_node("Reshape", [LOGITS_TO_KEEP, "logits_to_keep/shape_1"], ["logits_to_keep/1d"],
                         "logits_to_keep/Reshape"),
        helper.make_node("Sub", ["logits_to_keep/seq_len", "logits_to_keep/1d"], ["logits_to_keep/from"],
                         "logits_to_keep/Sub"),
        helper.make_node("Max", ["logits_to_keep/from", "logits_to_keep/zero_1"], ["logits_to_keep/from_clipped"],
                         "logits_to_keep/Max"),
        helper.make_node("Equal", ["logits_to_keep/1d", "logits_to_keep/zero_1"], ["logits_to_keep/all"],
                         "logits_to_keep/Equal"),
        helper.make_node("Where", ["logits_to_keep/all", "logits_to_keep/zero_1", "logits_to_keep/from_clipped"],
                         ["logits_to_keep/start"], "logits_to_keep/Where"),
        helper.make_node("Slice", [head_input, "logits_to_keep/start", "logits_to_keep/int64_max_1",
                                   "logits_to_keep/axis_1"], [kept], "logits_to_keep/Slice"),
    ]
    for user in users:
        user.input[:] = [kept if name == head_input else name for name in user.input]
    # after the producer of head_input, so the node list stays topologically sorted
    producer = next(i for i, n in enumerate(graph.node) if head_input in n.output)
    for offset, node in enumerate(nodes):
        graph.node.insert(producer + 1 + offset, node)
    graph.initializer.append(numpy_helper.from_array(np.array(0, dtype=np.int64), LOGITS_TO_KEEP))
    graph.input.append(helper.make_tensor_value_info(LOGITS_TO_KEEP, TensorProto.INT64, []))
    for output in graph.output:
        if output.name == "logits":
            output.type.tensor_type.shape.dim[1].dim_param = "logits_sequence_length"
    return True


def has_hidden_states(model: onnx.ModelProto) -> bool:
    return any(output.name == HIDDEN for output in model.graph.output)


def _uses_external_data(model: onnx.ModelProto) -> bool:
    return any(init.data_location == TensorProto.EXTERNAL for init in model.graph.initializer)


def convert_file(src: Path, dst: Path, n_embd: int) -> str:
    external = _uses_external_data(onnx.load(str(src), load_external_data=False))
    model = onnx.load(str(src))
    added = []
    if not has_hidden_states(model):
        expose(model.graph, n_embd)
        added.append(HIDDEN)
    if add_logits_to_keep(model.graph):
        added.append(LOGITS_TO_KEEP)
    if added and not external:  # the checker needs the weights inline
        onnx.checker.check_model(model)
    status = f"added {' and '.join(added)}" if added else "unchanged (has last_hidden_state and logits_to_keep)"
    dst.parent.mkdir(parents=True, exist_ok=True)
    if external:
        data = dst.name + ".data"
        (dst.parent / data).unlink(missing_ok=True)
        onnx.save_model(model, str(dst), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data, size_threshold=1024)
    else:
        onnx.save_model(model, str(dst))
    return status


def convert_dir(in_dir: Path, out_dir: Path) -> None:
    config = json.loads((in_dir / "config.json").read_text())
    n_embd = int(config.get("n_embd") or config["hidden_size"])
    graphs = sorted(in_dir.glob("*.onnx"))
    if not graphs:
        sys.exit(f"error: no *.onnx in {in_dir}")
    in_place = in_dir.resolve() == out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if not in_place:
        for item in in_dir.iterdir():
            if item.suffix == ".onnx" or item.name.endswith(".onnx.data") or item.is_dir():
                continue
            target = out_dir / item.name
            if target.is_symlink() or target.exists():
                target.unlink()
            if item.is_symlink():
                os.symlink(os.readlink(item), target)  # keeps fixtures' ../tokenizer.json links
            else:
                shutil.copy2(item, target)
    for graph in graphs:
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            staged = Path(tmp) / graph.name
            status = convert_file(graph, staged, n_embd)
            for produced in Path(tmp).iterdir():
                os.chmod(produced, 0o644)  # tempfile made it private
                os.replace(produced, out_dir / produced.name)
        print(f"{graph} -> {out_dir / graph.name}: {status}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("in_dir", type=Path, help="a model folder (config.json + *.onnx)")
    ap.add_argument("out_dir", type=Path, help="where to write it (may be in_dir)")
    args = ap.parse_args()
    try:
        convert_dir(args.in_dir, args.out_dir)
    except (ValueError, KeyError, FileNotFoundError) as err:
        sys.exit(f"error: {args.in_dir}: {err}")


if __name__ == "__main__":
    main()
