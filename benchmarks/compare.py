#!/usr/bin/env python3
"""gptrt next to its peers, in ONE interleaved run, on the same 124M random-init GPT-2.

    python3 benchmarks/compare.py [--rounds 3] [--threads 2] [--out benchmarks/results]

Every measurement is one process started afresh. Each round runs every case once, interleaved:
A B C ... then ... C B A (ABBA), so slow drifts of the machine (other load, heat) and the position
of a case within a round favour no system; the tables report each case's median over the rounds.

Systems, each skipped with a reason when it is not installed:
  gptrt         target/release/gptrt bench (built here)
  bare-ort      target/release/examples/bare_ort_loop: a bare `ort` loop, the floor under the SDK
  python-ort    benchmarks/python_ort_loop.py: a plain Python onnxruntime loop
  transformers  benchmarks/transformers_generate.py: transformers' generate (fp32 only)
  llama.cpp     llama-bench / llama-batched-bench built by benchmarks/llama_cpp.sh (GGUF f32,
                q8_0, q4_0 of the same checkpoint)

Graphs (--graph): fused (default: models/export_fused.py of the checkpoint, gptrt's fast path) or
optimum (models/make_fixtures.py --preset small); with fused, gptrt and the Python loop also run
optimum's export single-stream (systems gptrt@optimum, python-ort@optimum).
Precisions: fp32, int8 and int4 (models/quantize.py).
Cases: single stream (prompt 4, 128 new tokens), prefill (prompt 512), batch 1/4/16 (aggregate
decode tokens/s), context length (decode 64 tokens after 16/256/768 tokens). The machine's memory
read bandwidth (examples/memory_bandwidth.rs) is measured in every round too: decode of a 124M fp32 model reads every weight
once per token, so bandwidth / weight bytes is the ceiling on single-stream fp32 decode.

Outputs in --out: compare.json (every sample), compare.md (the tables and the targets of issue 7),
compare.png (tokens/s vs batch size and vs context length).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "models" / "work"
LLAMA = ROOT / "benchmarks" / ".llama.cpp"
GGUF = {"fp32": "gpt2-124m-f32.gguf", "int8": "gpt2-124m-q8_0.gguf", "int4": "gpt2-124m-q4_0.gguf"}
# the graphs, per export and precision: models/export_fused.py (ONNX Runtime's fused ops, gptrt's
# fast path) and optimum's export (models/make_fixtures.py), each quantized by models/quantize.py
EXPORTS = {
    "fused": {"fp32": WORK / "fused-small" / "single", "int8": WORK / "fused-small-int8" / "single",
              "int4": WORK / "fused-small-int4" / "single"},
    "fused-shared": {"fp32": WORK / "fused-small-shared" / "single",
                     "int8": WORK / "fused-small-shared-int8" / "single",
                     "int4": WORK / "fused-small-shared-int4" / "single"},
    "optimum": {"fp32": WORK / "small-random-gpt2" / "single", "int8": WORK / "small-random-gpt2-int8" / "single",
                "int4": WORK / "small-random-gpt2-int4" / "single"},
}
# the systems that also run the other export (single stream and prefill), to show what the graph buys
ON_OPTIMUM = {"gptrt": "gptrt@optimum", "python-ort": "python-ort@optimum"}
# gptrt on export_fused.py --shared-kv (past and present one buffer, bound in place; only gptrt
# binds it): single stream, batches and contexts, next to gptrt on the plain fused graph
SHARED_KV = "gptrt@shared-kv"
# a target's side that is the memory-bandwidth ceiling (bandwidth / fp32 weight bytes) of the round
CEILING = "memory-bandwidth ceiling"
CHECKPOINT = WORK / "small-random-gpt2-checkpoint"
BATCHES = [1, 4, 16]
CONTEXTS = [16, 256, 768]
NEW_TOKENS = 128
CONTEXT_NEW_TOKENS = 64
PREFILL_TOKENS = 512


def log(msg: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def find_python() -> str:
    for cand in (os.environ.get("PYTHON"), "/root/venv-models/bin/python", str(ROOT / "models/.venv/bin/python")):
        if cand and Path(cand).exists():
            return cand
    return sys.executable


def has_modules(python: str, *modules: str) -> bool:
    code = "import " + ", ".join(modules)
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


def llama_tool(name: str) -> Path | None:
    found = sorted(LLAMA.glob(f"**/bin/{name}"))
    return found[0] if found else None


class Case:
    """One measurement: a command and how to read its output into {"decode": .., "prefill": ..}."""

    def __init__(self, key: tuple, cmd: list[str], parse):
        self.key, self.cmd, self.parse = key, cmd, parse


def gptrt_case(exe, model, precision, threads, prompt_tokens, new_tokens, batch, kind, param, system="gptrt"):
    cmd = [str(exe), "bench", "--model", str(model), "--runs", "1", "--threads", str(threads),
           "--json", "--prompt-tokens", str(prompt_tokens), "--new-tokens", str(new_tokens), "--batch", str(batch)]

    def parse(out):
        d = json.loads(out)
        return {"decode": d["decode_tokens_per_second_median"], "prefill": d["prompt_tokens_per_second_median"],
                "ttft_ms": d["time_to_first_token_ms_median"], "load_s": d["load_seconds"],
                "peak_rss_mb": (d["peak_rss_bytes"] or 0) / 1e6}
    return Case((kind, precision, system, param), cmd, parse)


def bare_case(exe, model, precision, threads, prompt_tokens, new_tokens, kind, param):
    cmd = [str(exe), str(model), str(prompt_tokens), str(new_tokens), str(threads), "1"]

    def parse(out):
        d = json.loads(out)
        return {"decode": d["decode_tokens_per_second_median"], "prefill": d["prompt_tokens_per_second_median"]}
    return Case((kind, precision, "bare-ort", param), cmd, parse)


def python_case(python, model, precision, threads, prompt_tokens, new_tokens, kind, param, system="python-ort"):
    cmd = [python, str(ROOT / "benchmarks/python_ort_loop.py"), "--model", str(model),
           "--prompt-tokens", str(prompt_tokens), "--new-tokens", str(new_tokens), "--threads", str(threads)]

    def parse(out):
        d = json.loads(out)
        return {"decode": d["decode_tokens_per_s"], "prefill": d["prompt_tokens_per_s"]}
    return Case((kind, precision, system, param), cmd, parse)


def transformers_case(python, threads, prompt_tokens, new_tokens, kind, param):
    cmd = [python, str(ROOT / "benchmarks/transformers_generate.py"), "--checkpoint", str(CHECKPOINT),
           "--prompt-tokens", str(prompt_tokens), "--new-tokens", str(new_tokens), "--threads", str(threads)]

    def parse(out):
        d = json.loads(out)
        return {"decode": d["decode_tokens_per_s"], "prefill": d["prompt_tokens_per_s"]}
    return Case((kind, "fp32", "transformers", param), cmd, parse)


def llama_bench_cases(exe, precision, threads):
    """One llama-bench run gives the single-stream decode (tg128), prefill (pp512) and the decode
    at each context depth."""
    gguf = str(LLAMA / "gguf" / GGUF[precision])
    single = [str(exe), "-m", gguf, "-t", str(threads), "-p", str(PREFILL_TOKENS), "-n", str(NEW_TOKENS),
              "-r", "1", "-o", "json"]

    def parse_single(out):
        rows = json.loads(out)
        tg = [r["avg_ts"] for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0]
        pp = [r["avg_ts"] for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0]
        return {"decode": tg[0], "prefill": pp[0]}
    cases = [Case(("single", precision, "llama.cpp", 4), single, parse_single)]
    if precision == "fp32":
        depth = [str(exe), "-m", gguf, "-t", str(threads), "-p", "0", "-n", str(CONTEXT_NEW_TOKENS),
                 "-d", ",".join(map(str, CONTEXTS)), "-r", "1", "-o", "json"]

        def parse_depth(out):
            return {f"decode@{r['n_depth']}": r["avg_ts"] for r in json.loads(out) if r["n_gen"] > 0}
        cases.append(Case(("context", precision, "llama.cpp", "all"), depth, parse_depth))
    return cases


def llama_batched_case(exe, precision, threads):
    gguf = str(LLAMA / "gguf" / GGUF[precision])
    cmd = [str(exe), "-m", gguf, "-t", str(threads), "-tb", str(threads), "-c", "4096", "-b", "2048",
           "-ub", "512", "-npp", "4", "-ntg", str(NEW_TOKENS), "-npl", ",".join(map(str, BATCHES)),
           "--output-format", "jsonl"]

    def parse(out):
        result = {}
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("{"):
                d = json.loads(line)
                result[f"decode@{d['pl']}"] = d["speed_tg"]
        if not result:
            raise ValueError("no jsonl rows in llama-batched-bench output")
        return result
    return Case(("batch", precision, "llama.cpp", "all"), cmd, parse)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def decode_weight_bytes(folder: Path, graph: str) -> int:
    """Bytes of weights one decode step reads: every matrix once, the position embedding only a row.
    optimum's export reads its tied wte whole as the LM head; the fused export keeps the tied
    embedding twice (wte for the token Gather, read a row a step, and wte^T for the LM head)."""
    cfg = json.loads((folder / "config.json").read_text())
    gathered = cfg["n_positions"] + (cfg["vocab_size"] if graph == "fused" else 0)
    on_disk = sum(f.stat().st_size for f in (folder / "model.onnx", folder / "model.onnx.data") if f.exists())
    return on_disk - 4 * cfg["n_embd"] * gathered


def memory_bandwidth(exe: Path, threads: int) -> float:
    """GB/s read by `threads` threads summing a 1 GiB buffer (examples/memory_bandwidth.rs)."""
    out = subprocess.run([str(exe), str(threads)], capture_output=True, text=True, check=True).stdout
    return float(json.loads(out)["gb_per_second"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--precisions", default="fp32,int8,int4")
    ap.add_argument("--graph", choices=sorted(EXPORTS), default="fused",
                    help="the export every system runs (default fused: models/export_fused.py); with fused, gptrt "
                         "and the Python loop also run optimum's export single-stream, side by side")
    ap.add_argument("--skip", default="", help="comma-separated systems to leave out")
    ap.add_argument("--render-only", action="store_true",
                    help="redraw compare.md and compare.png from --out/compare.json, measure nothing")
    ap.add_argument("--build-llama-cpp", action="store_true",
                    help="first run benchmarks/llama_cpp.sh (llama.cpp from PyPI's llama-cpp-python sdist, "
                         "into the git-ignored benchmarks/.llama.cpp/; ~13 min on 2 cores)")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    python = find_python()
    if args.render_only:
        result = json.loads((out_dir / "compare.json").read_text())
        shown = [p for p in args.precisions.split(",") if any(json.loads(k)[1] == p for k in result["medians"])]
        report = render(result, shown)
        (out_dir / "compare.md").write_text(report)
        print(report)
        chart(result, shown, out_dir / "compare.png", python)
        return
    skip = set(filter(None, args.skip.split(",")))
    skipped: dict[str, str] = {}

    onnx, optimum = EXPORTS[args.graph], EXPORTS["optimum"]
    if not (onnx["fp32"] / "model.onnx").exists():
        sys.exit(f"error: {onnx['fp32']} missing; make it as benchmarks/README.md says "
                 "(models/make_fixtures.py --preset small, models/export_fused.py, models/quantize.py)")
    precisions = []
    for p in args.precisions.split(","):
        if (onnx[p] / "model.onnx").exists():
            precisions.append(p)
        else:
            skipped[f"onnx {p}"] = f"{onnx[p]} missing (models/quantize.py makes it)"
    side_by_side = {p for p in precisions if args.graph != "optimum" and (optimum[p] / "model.onnx").exists()}
    shared = EXPORTS["fused-shared"]
    with_shared = {p for p in precisions if args.graph == "fused" and (shared[p] / "model.onnx").exists()}

    subprocess.run([str(ROOT / "scripts/setup.sh")], check=True, stdout=subprocess.DEVNULL)
    log("building gptrt and the bare ort loop (release)")
    for target in (["-p", "gptrt-cli"], ["-p", "gptrt", "--example", "bare_ort_loop", "--example", "memory_bandwidth"]):
        subprocess.run(["cargo", "build", "--release", "--quiet", *target], cwd=ROOT, check=True)
    gptrt = ROOT / "target/release/gptrt"
    bare = ROOT / "target/release/examples/bare_ort_loop"
    membw = ROOT / "target/release/examples/memory_bandwidth"

    systems = {"gptrt": True, "bare-ort": True}
    systems["python-ort"] = has_modules(python, "onnxruntime", "numpy", "tokenizers")
    if not systems["python-ort"]:
        skipped["python-ort"] = f"{python} lacks onnxruntime/numpy/tokenizers"
    systems["transformers"] = has_modules(python, "torch", "transformers") and CHECKPOINT.exists()
    if not systems["transformers"]:
        skipped["transformers"] = f"needs torch + transformers in {python} and {CHECKPOINT}"
    if args.build_llama_cpp:
        code = subprocess.run([str(ROOT / "benchmarks/llama_cpp.sh")], stdout=subprocess.DEVNULL).returncode
        if code not in (0, 3):  # 3: skipped, with the reason on stderr
            sys.exit(f"error: benchmarks/llama_cpp.sh failed (exit {code})")
    bench, batched = llama_tool("llama-bench"), llama_tool("llama-batched-bench")
    systems["llama.cpp"] = bool(bench and batched and all((LLAMA / "gguf" / GGUF[p]).exists() for p in precisions))
    if not systems["llama.cpp"]:
        skipped["llama.cpp"] = "not built: run benchmarks/llama_cpp.sh (or pass --build-llama-cpp)"
    for name in skip:
        systems[name] = False
        skipped[name] = "--skip"

    cases: list[Case] = []
    t = args.threads
    for p in precisions:
        m = onnx[p]
        for kind, prompt, new in [("single", 4, NEW_TOKENS), ("prefill", PREFILL_TOKENS, 2)]:
            param = 4 if kind == "single" else PREFILL_TOKENS
            cases.append(gptrt_case(gptrt, m, p, t, prompt, new, 1, kind, param))
            cases.append(bare_case(bare, m, p, t, prompt, new, kind, param))
            if systems["python-ort"]:
                cases.append(python_case(python, m, p, t, prompt, new, kind, param))
            if p in side_by_side:
                cases.append(gptrt_case(gptrt, optimum[p], p, t, prompt, new, 1, kind, param, ON_OPTIMUM["gptrt"]))
                if systems["python-ort"]:
                    cases.append(python_case(python, optimum[p], p, t, prompt, new, kind, param,
                                             ON_OPTIMUM["python-ort"]))
            if p == "fp32" and systems["transformers"]:
                cases.append(transformers_case(python, t, prompt, new, kind, param))
        if systems["llama.cpp"]:
            cases.extend(llama_bench_cases(bench, p, t))
        if p in with_shared:
            cases.append(gptrt_case(gptrt, shared[p], p, t, 4, NEW_TOKENS, 1, "single", 4, SHARED_KV))
        for b in BATCHES[1:]:
            cases.append(gptrt_case(gptrt, m, p, t, 4, NEW_TOKENS, b, "batch", b))
            if p in with_shared:
                cases.append(gptrt_case(gptrt, shared[p], p, t, 4, NEW_TOKENS, b, "batch", b, SHARED_KV))
        if systems["llama.cpp"]:
            cases.append(llama_batched_case(batched, p, t))
        if p == "fp32":
            for c in CONTEXTS:
                cases.append(gptrt_case(gptrt, m, p, t, c, CONTEXT_NEW_TOKENS, 1, "context", c))
                if p in with_shared:
                    cases.append(gptrt_case(gptrt, shared[p], p, t, c, CONTEXT_NEW_TOKENS, 1, "context", c,
                                            SHARED_KV))
                if systems["python-ort"]:
                    cases.append(python_case(python, m, p, t, c, CONTEXT_NEW_TOKENS, "context", c))

    samples: dict[str, list[dict]] = {}
    bandwidth = []
    failures: dict[str, str] = {}
    log(f"{len(cases)} cases x {args.rounds} rounds, {t} threads; skipped: {skipped or 'nothing'}")
    began = time.time()
    for r in range(args.rounds):
        log(f"round {r + 1}/{args.rounds}")
        # ABBA: odd rounds run the cases backwards, so a drift within a round, or the case that
        # always follows another, favours no system.
        for i, case in enumerate(cases if r % 2 == 0 else cases[::-1]):
            key = json.dumps(case.key)
            proc = subprocess.run(case.cmd, capture_output=True, text=True)
            try:
                if proc.returncode != 0:
                    raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else
                                       f"exit {proc.returncode}")
                result = case.parse(proc.stdout)
            except Exception as e:  # a failing peer is reported, not fatal
                failures[key] = f"{' '.join(case.cmd)}: {e}"
                log(f"  {case.key}: FAILED ({e})")
                continue
            samples.setdefault(key, []).append(result)
            log(f"  [{i + 1}/{len(cases)}] {case.key}: " +
                ", ".join(f"{k} {v:.1f}" for k, v in result.items() if isinstance(v, (int, float))))
        bandwidth.append(memory_bandwidth(membw, t))
        log(f"  memory read bandwidth {bandwidth[-1]:.1f} GB/s")
    log(f"done in {(time.time() - began) / 60:.1f} min")

    medians = {}
    for key, runs in samples.items():
        fields = {f for run in runs for f in run}
        medians[key] = {f: statistics.median(v) for f in fields
                         if (v := [run[f] for run in runs if run.get(f) is not None])}
    result = {
        "machine": {"cpus": os.cpu_count(), "processor": cpu_name(), "threads": t, "python": python},
        "rounds": args.rounds, "skipped": skipped, "failures": failures, "graph": args.graph,
        "memory_bandwidth_gb_s": bandwidth, "memory_bandwidth_gb_s_median": statistics.median(bandwidth),
        "fp32_weight_bytes": decode_weight_bytes(onnx["fp32"], args.graph),
        "samples": samples, "medians": medians,
    }
    (out_dir / "compare.json").write_text(json.dumps(result, indent=1) + "\n")
    report = render(result, precisions)
    (out_dir / "compare.md").write_text(report)
    print(report)
    chart(result, precisions, out_dir / "compare.png", python)


def get(result, kind, precision, system, param, field):
    m = result["medians"].get(json.dumps([kind, precision, system, param]))
    return None if m is None else m.get(field)


def spread(result, kind, precision, system, param, field):
    """min-max of a case's samples: how much the machine moved between rounds."""
    runs = result["samples"].get(json.dumps([kind, precision, system, param]), [])
    values = [r[field] for r in runs if r.get(field) is not None]
    return f"{min(values):.0f}-{max(values):.0f}" if values else "–"


def fmt(v, digits=1):
    return "–" if v is None else f"{v:.{digits}f}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def render(result, precisions) -> str:
    g = lambda *k: get(result, *k)  # noqa: E731
    bw = result["memory_bandwidth_gb_s_median"]
    ceiling = bw * 1e9 / result["fp32_weight_bytes"]
    graph = result.get("graph", "optimum")
    lines = [f"# gptrt vs peers: 124M random-init GPT-2, {result['machine']['threads']} threads, "
             f"{result['rounds']} interleaved rounds, medians", "",
             f"Machine: {result['machine']['processor']}, {result['machine']['cpus']} CPUs. ONNX graph: the {graph} "
             "export" + (" (models/export_fused.py); `@optimum` rows run optimum's export of the same checkpoint"
                         if graph == "fused" else "") + ".", ""]
    lines += ["## Single stream (prompt 4 tokens, 128 new tokens; prefill: 512-token prompt)", "",
              "| precision | system | decode tok/s | (min-max) | prefill tok/s | gptrt decode / this |",
              "|---|---|---:|---:|---:|---:|"]
    for p in precisions:
        ours = g("single", p, "gptrt", 4, "decode")
        for s in ["gptrt", SHARED_KV, "bare-ort", "python-ort", *ON_OPTIMUM.values(), "transformers", "llama.cpp"]:
            d = g("single", p, s, 4, "decode")
            pre = g("prefill", p, s, PREFILL_TOKENS, "prefill") if s != "llama.cpp" else g("single", p, s, 4, "prefill")
            if d is None and pre is None:
                continue
            lines.append(f"| {p} | {s} | {fmt(d)} | {spread(result, 'single', p, s, 4, 'decode')} | {fmt(pre)} | "
                         f"{fmt(ratio(ours, d), 2)}x |")
    lines += ["", "## Batched decode (aggregate tok/s over all sequences; prompt 4, 128 new tokens)", "",
              "| precision | batch | gptrt | gptrt shared-kv | llama.cpp | gptrt / llama.cpp | gptrt vs its batch 1 |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for p in precisions:
        one = g("single", p, "gptrt", 4, "decode")
        for b in BATCHES:
            ours = one if b == 1 else g("batch", p, "gptrt", b, "decode")
            kv = g("single", p, SHARED_KV, 4, "decode") if b == 1 else g("batch", p, SHARED_KV, b, "decode")
            theirs = g("batch", p, "llama.cpp", "all", f"decode@{b}")
            lines.append(f"| {p} | {b} | {fmt(ours)} | {fmt(kv)} | {fmt(theirs)} | {fmt(ratio(ours, theirs), 2)}x | "
                         f"{fmt(ratio(ours, one), 2)}x |")
    lines += ["", f"## Decode vs context length (fp32, {CONTEXT_NEW_TOKENS} new tokens after the context)", "",
              "| context | gptrt | gptrt shared-kv | python-ort | llama.cpp |", "|---:|---:|---:|---:|---:|"]
    for c in CONTEXTS:
        lines.append(f"| {c} | {fmt(g('context', 'fp32', 'gptrt', c, 'decode'))} | "
                     f"{fmt(g('context', 'fp32', SHARED_KV, c, 'decode'))} | "
                     f"{fmt(g('context', 'fp32', 'python-ort', c, 'decode'))} | "
                     f"{fmt(g('context', 'fp32', 'llama.cpp', 'all', f'decode@{c}'))} |")
    # each target: (name, numerator, denominator, goal); a side is a sample key plus field, or CEILING
    f32 = ("single", "fp32", "gptrt", 4, "decode")
    llama16 = lambda p: ("batch", p, "llama.cpp", "all", "decode@16")  # noqa: E731
    targets = [
        ("fp32 decode vs python onnxruntime loop (same graph)", f32, ("single", "fp32", "python-ort", 4, "decode"),
         1.05),
        # what a Python user gets from the standard export: the Python loop on optimum's graph
        ("fp32 decode vs python onnxruntime loop on optimum's export", f32,
         ("single", "fp32", ON_OPTIMUM["python-ort"], 4, "decode"), 1.05),
        ("fp32 decode vs transformers generate", f32, ("single", "fp32", "transformers", 4, "decode"), 1.1),
        ("fp32 decode vs memory-bandwidth ceiling", f32, CEILING, 0.90),
        ("fp32 decode vs bare ort loop (SDK overhead <= 3%)", f32, ("single", "fp32", "bare-ort", 4, "decode"), 0.97),
        ("int8 decode vs fp32", ("single", "int8", "gptrt", 4, "decode"), f32, 1.9),
        ("int8 prefill vs fp32", ("prefill", "int8", "gptrt", PREFILL_TOKENS, "prefill"),
         ("prefill", "fp32", "gptrt", PREFILL_TOKENS, "prefill"), 1.8),
        ("int4 decode vs fp32", ("single", "int4", "gptrt", 4, "decode"), f32, 2.4),
        ("fp32 batch 16 aggregate vs batch 1", ("batch", "fp32", "gptrt", 16, "decode"), f32, 5.0),
    ]
    for p in precisions:
        targets.append((f"{p} batch 16 aggregate vs llama.cpp 16 sequences", ("batch", p, "gptrt", 16, "decode"),
                        llama16(p), 1.5))
        if g("batch", p, SHARED_KV, 16, "decode") is not None:
            targets.append((f"{p} batch 16 aggregate, shared-kv graph, vs llama.cpp 16 sequences",
                            ("batch", p, SHARED_KV, 16, "decode"), llama16(p), 1.5))
    for p in precisions:
        targets.append((f"{p} decode: {graph} export vs optimum's (report only)", ("single", p, "gptrt", 4, "decode"),
                        ("single", p, ON_OPTIMUM["gptrt"], 4, "decode"), None))
    for p in precisions:
        targets.append((f"{p} single-stream decode vs llama.cpp (report only)", ("single", p, "gptrt", 4, "decode"),
                        ("single", p, "llama.cpp", 4, "decode"), None))

    def median_of(side):
        return ceiling if side == CEILING else g(*side)

    def rounds_of(side):
        if side == CEILING:
            return [b * 1e9 / result["fp32_weight_bytes"] for b in result["memory_bandwidth_gb_s"]]
        kind, p, system, param, field = side
        return [r.get(field) for r in result["samples"].get(json.dumps([kind, p, system, param]), [])]

    def per_round(a, b):
        """The ratio within each round (both sides ran in it, interleaved): median (min-max)."""
        ra, rb = rounds_of(a), rounds_of(b)
        if not ra or len(ra) != len(rb):  # a failed sample breaks the pairing
            return "–"
        rs = sorted(x / y for x, y in zip(ra, rb) if x is not None and y)
        return f"{statistics.median(rs):.2f} ({rs[0]:.2f}-{rs[-1]:.2f})" if rs else "–"

    lines += ["", "## Targets (issue 7)", "",
              "Measured: the ratio of the two medians (decides `met`); per round: the ratio within each round, "
              "where both ran minutes apart, which shows how far this machine's noise reaches.", "",
              "| target | measured | per round: median (min-max) | goal | met |", "|---|---:|---:|---:|---|"]
    for name, a, b, goal in targets:
        value = ratio(median_of(a), median_of(b))
        met = "–" if value is None or goal is None else ("yes" if value >= goal else "**no**")
        lines.append(f"| {name} | {fmt(value, 3)}x | {per_round(a, b)} | "
                     f"{'report' if goal is None else f'>= {goal}x'} | {met} |")
    rss = g("single", "fp32", "gptrt", 4, "peak_rss_mb")
    load = g("single", "fp32", "gptrt", 4, "load_s")
    ttft = g("single", "fp32", "gptrt", 4, "ttft_ms")
    lines += ["", f"Memory read bandwidth {bw:.1f} GB/s (median of the rounds) / {result['fp32_weight_bytes'] / 1e6:.0f} MB "
              f"of fp32 weights = ceiling {ceiling:.1f} tok/s single-stream fp32 decode.",
              f"gptrt fp32: peak RSS {fmt(rss, 0)} MB (goal <= 1100), load {fmt(load, 2)} s (goal <= 2), "
              f"time to first token {fmt(ttft, 1)} ms (prompt 4).", ""]
    if result["skipped"]:
        lines += ["Skipped: " + "; ".join(f"{k}: {v}" for k, v in result["skipped"].items()), ""]
    if result["failures"]:
        lines += ["Failed: " + "; ".join(result["failures"].values()), ""]
    return "\n".join(lines)


def chart(result, precisions, png: Path, python: str) -> None:
    try:
        import matplotlib
    except ImportError:
        # the orchestrating interpreter may lack matplotlib; the models' venv has it
        if python != sys.executable and has_modules(python, "matplotlib"):
            code = (f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import json, compare; "
                    f"compare.chart(json.load(open({str(png.with_suffix('.json'))!r})), {precisions!r}, "
                    f"__import__('pathlib').Path({str(png)!r}), sys.executable)")
            subprocess.run([python, "-c", code], check=True)
        else:
            log("no matplotlib: chart skipped")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = lambda *k: get(result, *k)  # noqa: E731
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=100)
    colours = {"fp32": "tab:blue", "int8": "tab:orange", "int4": "tab:green"}
    for p in precisions:
        ours = [g("single", p, "gptrt", 4, "decode") if b == 1 else g("batch", p, "gptrt", b, "decode") for b in BATCHES]
        left.plot(BATCHES, ours, "o-", color=colours[p], label=f"gptrt {p}")
        theirs = [g("batch", p, "llama.cpp", "all", f"decode@{b}") for b in BATCHES]
        if any(v is not None for v in theirs):
            left.plot(BATCHES, theirs, "s--", color=colours[p], alpha=0.7, label=f"llama.cpp {p}")
    left.set_xscale("log", base=2)
    left.set_xticks(BATCHES, [str(b) for b in BATCHES])
    left.set_xlabel("sequences decoded together (batch)")
    left.set_ylabel("aggregate decode tokens/s")
    left.set_title("decode throughput vs batch size")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    for system, style in [("gptrt", "o-"), (SHARED_KV, "D-"), ("python-ort", "^-"), ("llama.cpp", "s--")]:
        if system == "llama.cpp":
            ys = [g("context", "fp32", system, "all", f"decode@{c}") for c in CONTEXTS]
        else:
            ys = [g("context", "fp32", system, c, "decode") for c in CONTEXTS]
        if any(v is not None for v in ys):
            right.plot(CONTEXTS, ys, style, label=f"{system} fp32")
    right.set_xlabel("context length before decoding (tokens)")
    right.set_ylabel("decode tokens/s (batch 1)")
    right.set_title(f"decode vs context length ({CONTEXT_NEW_TOKENS} new tokens)")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(f"124M random-init GPT-2, {result['machine']['threads']} threads, medians of "
                 f"{result['rounds']} interleaved rounds")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


if __name__ == "__main__":
    main()
