#!/usr/bin/env python3
"""Labelled topic data for the classification benchmarks and tests: Debian's fortune files, one file
per topic (fortunes / fortunes-min 1:1.99.1-7.3, the same pinned packages models/demo_corpus.py
fetches; `apt-get download` + `dpkg-deb -x` into models/work/demo-corpus/, nothing installed).

    /root/venv-models/bin/python benchmarks/topic_data.py     # writes benchmarks/data/topics/

Six topics (computers, food, law, politics, science, work). Each fortune is flattened to one line
(whitespace runs -> one space), kept when it is 8 to 64 GPT-2 tokens, then ordered by the SHA-256 of
its text (a fixed, content-derived shuffle) and dealt out per topic: 60 train, 20 valid, 30 test.
Lines are {"text": ..., "label": ...}. The demo model saw these texts while pre-training (the fortunes
are part of its corpus), never their topic labels.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models"))

from demo_corpus import OUT, PACKAGES, fetch_packages, read_fortunes  # noqa: E402

TOPICS = ["computers", "food", "law", "politics", "science", "work"]
SPLITS = {"train": 60, "valid": 20, "test": 30}
OUT_DIR = ROOT / "benchmarks/data/topics"


def main() -> None:
    from tokenizers import Tokenizer

    # only the two fortune packages are needed here
    wanted = {k: v for k, v in PACKAGES.items() if k.startswith("fortunes")}
    PACKAGES.clear()
    PACKAGES.update(wanted)
    root = fetch_packages(OUT / "topics")
    tokenizer = Tokenizer.from_file(str(ROOT / "models/gpt2-tokenizer/tokenizer.json"))
    rows = {split: [] for split in SPLITS}
    for topic in TOPICS:
        texts = []
        for fortune in read_fortunes(root / "usr/share/games/fortunes" / topic):
            text = re.sub(r"\s+", " ", fortune).strip()
            if 8 <= len(tokenizer.encode(text).ids) <= 64 and text not in texts:
                texts.append(text)
        texts.sort(key=lambda t: hashlib.sha256(t.encode()).hexdigest())
        need = sum(SPLITS.values())
        if len(texts) < need:
            sys.exit(f"error: topic {topic} has {len(texts)} usable fortunes, {need} needed")
        start = 0
        for split, count in SPLITS.items():
            rows[split] += [{"text": t, "label": topic} for t in texts[start:start + count]]
            start += count
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for split, items in rows.items():
        # interleave topics so that any prefix of a file has every label
        items.sort(key=lambda r: hashlib.sha256((r["label"] + r["text"]).encode()).hexdigest())
        with open(OUT_DIR / f"{split}.jsonl", "w") as f:
            for item in items:
                f.write(json.dumps(item, ensure_ascii=False) + "\n")
        print(f"{OUT_DIR / f'{split}.jsonl'}: {len(items)} lines")


if __name__ == "__main__":
    main()
