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

import onnx
from onnx import TensorProto, helper

HIDDEN = "last_hidden_state"
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


def has_hidden_states(model: onnx.ModelProto) -> bool:
    return any(output.name == HIDDEN for output in model.graph.output)


def _uses_external_data(model: onnx.ModelProto) -> bool:
    return any(init.data_location == TensorProto.EXTERNAL for init in model.graph.initializer)


def convert_file(src: Path, dst: Path, n_embd: int) -> str:
    external = _uses_external_data(onnx.load(str(src), load_external_data=False))
    model = onnx.load(str(src))
    if has_hidden_states(model):
        status = "already has last_hidden_state"
    else:
        expose(model.graph, n_embd)
        if not external:  # the checker needs the weights inline
            onnx.checker.check_model(model)
        status = "added last_hidden_state"
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
