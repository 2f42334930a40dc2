#!/usr/bin/env python3
"""Turn-formatted dialogue from the quoted speech in Jane Austen's novels, for finetune_dialogue.py.

    /root/venv-models/bin/python models/dialogue_corpus.py     # -> models/work/dialogue-corpus/ (~10 s)

Input: demo_corpus.py's docs.jsonl (its Austen chapters, paragraphs separated by a blank line).
A conversation is a run of consecutive paragraphs that hold quoted speech; a paragraph of narration
alone ends it unless it is short (at most BRIDGE_CHARS = 200 characters: "Mr. Bennet made no
answer."), which is skipped. Within a run the novel's own convention gives the turns: a new paragraph is a new
speaker, except that
  - a paragraph whose quote is left open (an odd number of `"`) continues into the next one (a long
    speech over several paragraphs), and
  - a paragraph attributed to the same speaker as the turn before ("said Elinor", "Elinor replied")
    is joined to that turn.
A turn's text is its quoted fragments joined with spaces (the narration between them, "said his
lady to him one day", dropped). Turns longer than MAX_TURN_TOKENS (letters, long speeches) end the
conversation there and are left out: a chat reply here is at most `max_new_tokens` = 60 tokens.

Turns alternate between the two speaker tags of `gptrt chat`'s defaults, the first one the user's:

    You are Elinor, talking with Marianne.
    User: What a pity it is, Elinor, that Edward should have no taste for drawing.
    Bot: No taste for drawing! why should you think so? He does not draw himself, ...
    User: ...
    User:

Every chunk ends with its last Bot turn and the user tag that would follow it (then
<|endoftext|> in the token streams), so a reply is always followed by the next speaker tag.
The first line is the persona, plain text: "You are B, talking with U." when the attribution
names both speakers, "You are B." when it names the replying one, otherwise "A conversation in
Jane Austen's TITLE.". A conversation longer than CHUNK_TOKENS is cut into chunks of whole
User/Bot pairs, each starting with the persona and a User turn, so every chunk fits the demo
model's 256 positions.

Split: the demo corpus' own (demo_corpus.py: chapter i of a source is validation when
i % 20 == 10), so the held-out dialogue comes from chapters the demo model never trained on,
models/demo/heldout.txt's chapter (Pride and Prejudice 1) among them.

Outputs in models/work/dialogue-corpus/:
  train.jsonl, heldout.jsonl  {"chapter", "persona", "turns": [{"role", "speaker", "text"}], "text"}
  train.u16, heldout.u16      GPT-2 BPE of the chunks' text, each followed by <|endoftext|>
  stats.json                  chunks, turns, tokens per split, turn length percentiles
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EOS_ID, TOKENIZER_DIR, WORK_DIR  # noqa: E402

USER_TAG = "User:"
BOT_TAG = "Bot:"
MAX_TURN_TOKENS = 100
CHUNK_TOKENS = 240
BRIDGE_CHARS = 200
TITLES = {
    "sensesensibility": "Sense and Sensibility", "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park", "emma": "Emma", "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
VERBS = (r"said|replied|cried|returned|continued|answered|added|observed|exclaimed|asked|rejoined|resumed|"
         r"began|whispered|repeated|interrupted")
NAME = r"(?:(?:Mr|Mrs|Dr)\.|Miss|Lady|Sir|Colonel|Captain|Admiral|General)?\s?[A-Z][a-z]+"
NOT_NAMES = {"He", "She", "I", "It", "They", "We", "You", "His", "Her", "The", "This", "That", "And", "But"}
ATTRIBUTION = [re.compile(rf"\b(?:{VERBS})\s+({NAME})"), re.compile(rf"({NAME})\s+(?:{VERBS})\b")]


def log(msg: str) -> None:
    print(f"[dialogue_corpus] {msg}", flush=True)


def speaker_of(narration: str) -> str | None:
    """The speaker an attribution in the narration names ("said Elinor", "Mrs. Bennet cried")."""
    for pat in ATTRIBUTION:
        m = pat.search(narration)
        if m:
            name = m.group(1).strip()
            if name not in NOT_NAMES:
                return name
    return None


def clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def paragraphs(chapter_text: str) -> list[str]:
    """The chapter's paragraphs with every quote closed inside its paragraph.

    A speech over several paragraphs leaves each but the last open and opens the next with `"`
    again: those are joined into one paragraph. A paragraph left open before one that does not
    open with `"` (a letter's signature, a typo) is closed at its end."""
    out: list[str] = []
    for para in (p.strip() for p in chapter_text.split("\n\n")):
        if not para:
            continue
        if out and out[-1].count('"') % 2 == 1:
            if para.startswith('"'):
                out[-1] += " " + para[1:]
                continue
            out[-1] += '"'
        out.append(para)
    if out and out[-1].count('"') % 2 == 1:
        out[-1] += '"'
    return out


def conversations(chapter_text: str) -> list[list[dict]]:
    """Runs of at least two turns [{"speaker", "text"}] from one chapter, in order."""
    runs: list[list[dict]] = []
    run: list[dict] = []
    for para in paragraphs(chapter_text):
        parts = para.split('"')
        quotes = [q.strip() for q in parts[1::2] if q.strip()]
        if not quotes:
            if len(para) <= BRIDGE_CHARS:
                # "Mr. Bennet made no answer.": a beat inside the conversation, not its end.
                continue
            if len(run) >= 2:
                runs.append(run)
            run = []
            continue
        speaker = speaker_of(" ".join(parts[0::2]))
        text = clean(" ".join(quotes))
        if run and speaker is not None and run[-1]["speaker"] == speaker:
            run[-1]["text"] += " " + text
        else:
            run.append({"speaker": speaker, "text": text})
    if len(run) >= 2:
        runs.append(run)
    return runs


def persona(turns: list[dict], title: str) -> str:
    def most_common(role: str) -> str | None:
        names = [t["speaker"] for t in turns if t["role"] == role and t["speaker"]]
        return max(sorted(set(names)), key=names.count) if names else None

    bot, user = most_common("bot"), most_common("user")
    if bot and user and bot != user:
        return f"You are {bot}, talking with {user}."
    if bot:
        return f"You are {bot}."
    return f"A conversation in Jane Austen's {title}."


def render(persona_line: str, turns: list[dict]) -> str:
    # The chunk ends where the user's next turn begins, not with <|endoftext|> right after a reply:
    # trained on the latter, the model learns to end its reply with "\n<|endoftext|>".
    lines = [persona_line] + [f"{USER_TAG if t['role'] == 'user' else BOT_TAG} {t['text']}" for t in turns]
    return "\n".join(lines) + f"\n{USER_TAG}"


def chunks_of(run: list[dict], title: str, n_tokens) -> list[dict]:
    """Chunks of whole User/Bot pairs that fit CHUNK_TOKENS, long turns left out (they split the run)."""
    pieces: list[list[dict]] = [[]]
    for t in run:
        if n_tokens(t["text"]) > MAX_TURN_TOKENS:
            pieces.append([])
        else:
            pieces[-1].append(dict(t))
    out = []
    for piece in pieces:
        for i, t in enumerate(piece):
            t["role"] = "user" if i % 2 == 0 else "bot"
        pairs = [piece[i:i + 2] for i in range(0, len(piece) - 1, 2)]
        cur: list[dict] = []
        for pair in pairs:
            trial = cur + pair
            if cur and n_tokens(render(persona(trial, title), trial)) > CHUNK_TOKENS:
                out.append(cur)
                cur = list(pair)
            else:
                cur = trial
        if cur:
            out.append(cur)
    result = []
    for turns in out:
        p = persona(turns, title)
        text = render(p, turns)
        if n_tokens(text) <= CHUNK_TOKENS:
            result.append({"persona": p, "turns": turns, "text": text})
    return result


def build(corpus: Path, out: Path) -> dict:
    import numpy as np
    from tokenizers import Tokenizer

    docs_path = corpus / "docs.jsonl"
    if not docs_path.exists():
        raise SystemExit(f"error: {docs_path} missing: run models/demo_corpus.py first")
    tok = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))

    def n_tokens(s: str) -> int:
        return len(tok.encode(s).ids)

    splits: dict[str, list[dict]] = {"train": [], "heldout": []}
    for line in docs_path.open(encoding="utf-8"):
        d = json.loads(line)
        if d["source"] != "austen":
            continue
        novel = d["name"].split("/")[0]
        split = "heldout" if d["split"] == "val" else "train"
        for run in conversations(d["text"]):
            for c in chunks_of(run, TITLES.get(novel, novel), n_tokens):
                c["chapter"] = d["name"]
                splits[split].append(c)

    out.mkdir(parents=True, exist_ok=True)
    stats: dict = {"user_tag": USER_TAG, "bot_tag": BOT_TAG, "max_turn_tokens": MAX_TURN_TOKENS,
                   "chunk_tokens": CHUNK_TOKENS}
    for split, chunks in splits.items():
        with (out / f"{split}.jsonl").open("w", encoding="utf-8") as f:
            for c in chunks:
                f.write(json.dumps({"chapter": c["chapter"], "persona": c["persona"], "turns": c["turns"],
                                    "text": c["text"]}, ensure_ascii=False) + "\n")
        ids: list[int] = []
        for enc in tok.encode_batch([c["text"] for c in chunks]):
            ids += enc.ids + [EOS_ID]
        np.array(ids, dtype="<u2").tofile(out / f"{split}.u16")
        turn_lens = sorted(n_tokens(t["text"]) for c in chunks for t in c["turns"] if t["role"] == "bot")
        stats[split] = {
            "chunks": len(chunks), "turns": sum(len(c["turns"]) for c in chunks), "tokens": len(ids),
            "chapters": len({c["chapter"] for c in chunks}),
            "personas_naming_bot": sum(c["persona"].startswith("You are") for c in chunks),
            "bot_turn_tokens_p50_p90_max": [turn_lens[len(turn_lens) // 2], turn_lens[len(turn_lens) * 9 // 10],
                                            turn_lens[-1]] if turn_lens else [],
        }
        log(f"{split}: {stats[split]}")
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(WORK_DIR / "demo-corpus"), help="demo_corpus.py's output folder")
    ap.add_argument("--out", default=str(WORK_DIR / "dialogue-corpus"))
    args = ap.parse_args()
    build(Path(args.corpus), Path(args.out))


if __name__ == "__main__":
    main()
