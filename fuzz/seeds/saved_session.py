#!/usr/bin/env python3
"""Seeds for the `saved_session` fuzz target, from real states of the tiny fixture.

    gptrt chat --model models/fixtures/tiny-random-gpt2/single --threads 1 --script S \
        --max-new-tokens 3 --save kv.bin --save-kv          (S: one line, "Hi")
    python3 fuzz/seeds/saved_session.py kv.bin fuzz/corpus/saved_session

From that fp16 state it writes variants (fp16, fp32, no cache, empty, settings only), each
smaller than the fuzzer's 4096-byte inputs, twice: with mode byte 0 (restored as given) and 2
(the target repairs the header). See docs/saved-sessions.md for the format.
"""
import hashlib
import os
import struct
import sys

HEADER = 152


def u32(b, o):
    return struct.unpack_from("<I", b, o)[0], o + 4


def parse(state):
    flags = struct.unpack_from("<I", state, 12)[0]
    p = state[HEADER:]
    o = 0
    n, o = u32(p, o)
    tokens = p[o:o + 4 * n]; o += 4 * n
    seed = p[o:o + 8]; o += 8
    j, o = u32(p, o)
    config = p[o:o + j]; o += j
    h, o = u32(p, o)
    o += h
    u, o = u32(p, o)
    data = p[o:o + u]; o += u
    cache = None
    if flags:
        cached, o = u32(p, o)
        tensors, o = u32(p, o)
        heads, o = u32(p, o)
        dim, o = u32(p, o)
        width = 2 if flags == 2 else 4
        size = heads * cached * dim * width
        parts = [p[o + i * size:o + (i + 1) * size] for i in range(tensors)]
        cache = (cached, heads, dim, parts)
    return state[:112], n, tokens, seed, config, data, cache


def build(head, n, tokens, seed, config, data, cache, kv):
    payload = struct.pack("<I", n) + tokens + seed
    payload += struct.pack("<I", len(config)) + config + struct.pack("<I", 0)
    payload += struct.pack("<I", len(data)) + data
    flags = 0
    if cache is not None and kv:
        cached, heads, dim, parts = cache
        flags = 1 if kv == "f32" else 2
        payload += struct.pack("<IIII", cached, len(parts), heads, dim)
        for part in parts:
            # part: fp16 [heads, cached, dim]
            for hd in range(heads):
                for pos in range(cached):
                    start = (hd * cached + pos) * dim * 2
                    row = part[start:start + dim * 2]
                    if kv == "f32":
                        values = struct.unpack("<%de" % dim, row)
                        row = struct.pack("<%df" % dim, *values)
                    payload += row
    header = head[:12] + struct.pack("<I", flags) + head[16:112]
    header += struct.pack("<Q", len(payload)) + hashlib.sha256(payload).digest()
    return header + payload


def shorter(cache, keep):
    """The cache's first `keep` positions (a state may cache fewer positions than it has tokens)."""
    cached, heads, dim, parts = cache
    out = []
    for part in parts:
        rows = b""
        for hd in range(heads):
            start = hd * cached * dim * 2
            rows += part[start:start + keep * dim * 2]
        out.append(rows)
    return keep, heads, dim, out


def main():
    source, dest = sys.argv[1], sys.argv[2]
    head, n, tokens, seed, config, data, cache = parse(open(source, "rb").read())
    variants = {
        "fp16": build(head, n, tokens, seed, config, data, cache, "f16"),
        "fp32-4": build(head, n, tokens, seed, config, b"", shorter(cache, 4), "f32"),
        "tokens": build(head, n, tokens, seed, config, data, None, None),
        "settings": build(head, n, tokens, seed, config, b"", None, None),
        "empty": build(head, 0, b"", seed, b"", b"", None, None),
    }
    os.makedirs(dest, exist_ok=True)
    for name, state in variants.items():
        assert len(state) < 4096, (name, len(state))
        for mode in (0, 2):
            with open(os.path.join(dest, f"{name}-mode{mode}"), "wb") as f:
                f.write(bytes([mode]) + state)


main()
