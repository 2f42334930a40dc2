#!/usr/bin/env python3
"""Make fixtures/tiny-random-gpt2/hidden/: the tiny `single` export with `last_hidden_state` added
(add_hidden_states.py), plus `hidden_reference.json`: transformers' final hidden state (after ln_f,
`output_hidden_states[-1]`) of the same seed-0 checkpoint for a few texts, pooled `last` and `mean`,
which the Rust tests compare gptrt's features with.

    /root/venv-models/bin/python models/make_hidden_fixture.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FIXTURES_DIR, WORK_DIR  # noqa: E402
from add_hidden_states import convert_dir  # noqa: E402
from make_fixtures import make_checkpoint  # noqa: E402

TEXTS = ["Hello world", "The quick brown fox jumps over the lazy dog.", "a", "Once upon a time, there was"]


def main() -> None:
    import numpy as np
    import torch
    from transformers import GPT2TokenizerFast

    tiny = FIXTURES_DIR / "tiny-random-gpt2"
    out = tiny / "hidden"
    convert_dir(tiny / "single", out)
    model = make_checkpoint("tiny", 0, 0.5, WORK_DIR / "tiny-random-gpt2-checkpoint")
    tokenizer = GPT2TokenizerFast(tokenizer_file=str(tiny / "tokenizer.json"))
    cases = []
    with torch.no_grad():
        for text in TEXTS:
            ids = tokenizer(text)["input_ids"]
            hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0].numpy()
            cases.append({"text": text, "ids": ids,
                          "last": hidden[-1].astype(np.float64).round(6).tolist(),
                          "mean": hidden.mean(axis=0).astype(np.float64).round(6).tolist()})
    (out / "hidden_reference.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"{out}: {len(cases)} reference cases")


if __name__ == "__main__":
    main()
