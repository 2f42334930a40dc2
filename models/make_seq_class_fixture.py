#!/usr/bin/env python3
"""Make fixtures/tiny-seq-classification/: a random-init GPT2ForSequenceClassification (2 layers,
4 heads, n_embd 32, 3 labels, pad_token_id 50256, seed 0) exported with optimum's
`text-classification` task (opset 18: inputs input_ids + attention_mask, output logits
[batch, num_labels]), plus reference.json: transformers' logits for a few texts, each run alone.
gptrt detects such a graph by its rank-2 `logits` and runs it with tasks::SequenceClassifier.

    /root/venv-models/bin/python models/make_seq_class_fixture.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FIXTURES_DIR, WORK_DIR  # noqa: E402

OUT = FIXTURES_DIR / "tiny-seq-classification"
TEXTS = ["Hello world", "The quick brown fox jumps over the lazy dog.", "a", "What a lovely day it is"]


def main() -> None:
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2TokenizerFast

    os.environ["HF_HUB_OFFLINE"] = "1"
    ckpt = WORK_DIR / "tiny-seq-classification-checkpoint"
    torch.manual_seed(0)
    labels = ["negative", "neutral", "positive"]
    config = GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=128, num_labels=3, pad_token_id=50256,
                        bos_token_id=50256, eos_token_id=50256,
                        id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    model = GPT2ForSequenceClassification(config).eval()
    if ckpt.exists():
        shutil.rmtree(ckpt)
    model.save_pretrained(ckpt)
    export = WORK_DIR / "tiny-seq-classification-export"
    if export.exists():
        shutil.rmtree(export)
    optimum = Path(sys.executable).parent / "optimum-cli"
    subprocess.run([str(optimum), "export", "onnx", "--model", str(ckpt), "--task", "text-classification",
                    "--opset", "18", str(export)], check=True)
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(export / "model.onnx", OUT / "model.onnx")
    shutil.copyfile(export / "config.json", OUT / "config.json")
    link = OUT / "tokenizer.json"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to("../tiny-random-gpt2/tokenizer.json")
    tokenizer = GPT2TokenizerFast(tokenizer_file=str(FIXTURES_DIR / "tiny-random-gpt2/tokenizer.json"))
    cases = []
    with torch.no_grad():
        for text in TEXTS:
            ids = tokenizer(text)["input_ids"]
            logits = model(torch.tensor([ids])).logits[0].numpy()
            cases.append({"text": text, "ids": ids, "logits": [round(float(x), 7) for x in logits]})
    (OUT / "reference.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"{OUT}: model.onnx, config.json, tokenizer.json -> tiny-random-gpt2, {len(cases)} reference cases")


if __name__ == "__main__":
    main()
