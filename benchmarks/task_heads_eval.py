#!/usr/bin/env python3
"""Evaluate gptrt's task heads with the demo model and write benchmarks/results/task_heads.json.

    cargo build --release -p gptrt-cli
    cargo run --release -p gptrt --example classify_throughput > /tmp/classify_throughput.json
    /root/venv-models/bin/python benchmarks/task_heads_eval.py [--throughput /tmp/classify_throughput.json]

Classification (benchmarks/data/topics/, six fortune topics; train 360 / valid 120 / test 180), on
the test split: majority class, TF-IDF + logistic regression (scikit-learn; C chosen on valid),
the trained head (`gptrt train-head` on train with valid for early stopping, then
`gptrt classify --head`), zero-shot (`gptrt classify --labels`, with and without calibration);
the head trained twice must be byte-identical. QA (benchmarks/data/qa.jsonl, 24 hand-made contexts
with answer spans): exact match and token F1 (SQuAD's normalisation) of `gptrt qa` extractive and
generative. Throughput: transformers' text-classification pipeline (GPT2ForSequenceClassification
on /work/artifacts/demo-checkpoint, a random 5-label head, batch 32, 2 threads) on the same
64-token texts as benchmarks/classify_throughput.rs, whose output --throughput reads.
"""

from __future__ import annotations

import argparse
import collections
import filecmp
import json
import re
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks/data/topics"


def read(split: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / f"{split}.jsonl").read_text().splitlines() if line.strip()]


def scores(truth: list[str], predicted: list[str], labels: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, f1_score
    return {"accuracy": accuracy_score(truth, predicted),
            "macro_f1": f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)}


def gptrt(binary: str, *args: str) -> str:
    out = subprocess.run([binary, *args], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"gptrt {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def classification(binary: str, model: str) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train, valid, test = read("train"), read("valid"), read("test")
    labels = sorted({r["label"] for r in train})
    truth = [r["label"] for r in test]
    result = {"labels": labels, "sizes": {"train": len(train), "valid": len(valid), "test": len(test)}}
    majority = collections.Counter(r["label"] for r in train).most_common(1)[0][0]
    result["majority_class"] = scores(truth, [majority] * len(test), labels)

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    x_train = vectorizer.fit_transform([r["text"] for r in train])
    best = None
    for c in [0.1, 1.0, 10.0, 100.0]:
        clf = LogisticRegression(C=c, max_iter=2000).fit(x_train, [r["label"] for r in train])
        acc = clf.score(vectorizer.transform([r["text"] for r in valid]), [r["label"] for r in valid])
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    predicted = best[2].predict(vectorizer.transform([r["text"] for r in test]))
    result["tfidf_logreg"] = {**scores(truth, list(predicted), labels), "C": best[1]}

    with tempfile.TemporaryDirectory() as tmp:
        heads = [Path(tmp) / "head-a", Path(tmp) / "head-b"]
        started = time.perf_counter()
        train_report = json.loads(gptrt(binary, "train-head", "--model", model, "--data", str(DATA / "train.jsonl"),
                                        "--valid", str(DATA / "valid.jsonl"), "--out", str(heads[0]), "--json"))
        train_seconds = time.perf_counter() - started
        gptrt(binary, "train-head", "--model", model, "--data", str(DATA / "train.jsonl"),
              "--valid", str(DATA / "valid.jsonl"), "--out", str(heads[1]), "--json")
        identical = all(filecmp.cmp(heads[0] / f, heads[1] / f, shallow=False)
                        for f in ["head.safetensors", "labels.json"])
        lines = gptrt(binary, "classify", "--model", model, "--head", str(heads[0]),
                      "--input-file", str(DATA / "test.jsonl"), "--json").splitlines()
        predicted = [json.loads(line)["label"] for line in lines]
        result["trained_head"] = {**scores(truth, predicted, labels), "valid": {
            k: train_report[k] for k in ["accuracy", "macro_f1", "valid_loss", "iterations", "pooling", "l2"]},
            "train_seconds_with_features": train_seconds, "byte_identical_when_retrained": identical}
    for calibrate in [False, True]:
        args = ["classify", "--model", model, "--labels", ",".join(labels), "--input-file", str(DATA / "test.jsonl"), "--json"]
        lines = gptrt(binary, *args, *(["--calibrate"] if calibrate else [])).splitlines()
        predicted = [json.loads(line)["label"] for line in lines]
        result["zero_shot_calibrated" if calibrate else "zero_shot"] = scores(truth, predicted, labels)
    return result


def normalize(text: str) -> str:
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1(prediction: str, answer: str) -> float:
    p, a = normalize(prediction).split(), normalize(answer).split()
    common = sum((collections.Counter(p) & collections.Counter(a)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(a)
    return 2 * precision * recall / (precision + recall)


def qa(binary: str, model: str) -> dict:
    items = [json.loads(line) for line in (ROOT / "benchmarks/data/qa.jsonl").read_text().splitlines() if line.strip()]
    result = {"examples": len(items)}
    for mode in ["extractive", "generative"]:
        em, f1s, offsets_ok, samples = [], [], True, []
        for item in items:
            args = ["qa", "--model", model, "--context", item["context"], "--question", item["question"], "--json"]
            out = json.loads(gptrt(binary, *args, *(["--extractive"] if mode == "extractive" else [])))
            if mode == "extractive":
                offsets_ok &= item["context"][out["start"]:out["end"]] == out["answer"]
            em.append(float(normalize(out["answer"]) == normalize(item["answer"])))
            f1s.append(f1(out["answer"], item["answer"]))
            samples.append({"question": item["question"], "expected": item["answer"], "got": out["answer"]})
        result[mode] = {"exact_match": sum(em) / len(em), "f1": sum(f1s) / len(f1s), "samples": samples[:6]}
        if mode == "extractive":
            result[mode]["offsets_match_context"] = offsets_ok
    return result


def transformers_throughput(texts_count: int = 320, checkpoint: str = "/work/artifacts/demo-checkpoint") -> dict:
    import torch
    from transformers import AutoTokenizer, GPT2ForSequenceClassification, pipeline

    torch.set_num_threads(2)
    # the demo's tokenizer files: the 124M checkpoint folder holds weights and config only
    tokenizer = AutoTokenizer.from_pretrained("/work/artifacts/demo-checkpoint")
    tokenizer.pad_token = tokenizer.eos_token
    model = GPT2ForSequenceClassification.from_pretrained(checkpoint, num_labels=5).eval()
    model.config.pad_token_id = tokenizer.eos_token_id
    stream = []
    for row in read("train"):
        stream += tokenizer(row["text"])["input_ids"]
    windows = [stream[i:i + 64] for i in range(0, len(stream) - 63, 64)]
    texts = [tokenizer.decode(w) for w in (windows * (texts_count // len(windows) + 1))[:texts_count]]
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
    classify(texts[:32], batch_size=32, truncation=True, max_length=64)  # warm-up
    started = time.perf_counter()
    with torch.inference_mode():
        classify(texts, batch_size=32, truncation=True, max_length=64)
    seconds = time.perf_counter() - started
    return {"checkpoint": checkpoint, "texts": len(texts), "batch": 32, "threads": 2,
            "texts_per_second": len(texts) / seconds, "torch": torch.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gptrt", default=str(ROOT / "target/release/gptrt"))
    ap.add_argument("--model", default="models/demo")
    ap.add_argument("--throughput", help="benchmarks/classify_throughput.rs's JSON output")
    ap.add_argument("--skip", nargs="*", default=[], choices=["classification", "qa", "transformers"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/task_heads.json"))
    args = ap.parse_args()
    report = {"model": args.model, "machine": "2 shared cores (Xeon, AVX-512 VNNI)"}
    if "classification" not in args.skip:
        report["classification"] = classification(args.gptrt, args.model)
    if "qa" not in args.skip:
        report["qa"] = qa(args.gptrt, args.model)
    if "transformers" not in args.skip:
        report["transformers_pipeline"] = transformers_throughput()
    if args.throughput:
        report["gptrt_throughput"] = json.loads(Path(args.throughput).read_text())
        if "transformers_pipeline" in report:
            report["head_speedup_vs_transformers"] = (report["gptrt_throughput"]["head_texts_per_second"]
                                                      / report["transformers_pipeline"]["texts_per_second"])
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
