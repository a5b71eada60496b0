#!/usr/bin/python3
"""Writes a GGUF file (v3, architecture llama) of random weights in a given shape, its
weight matrices quantized (Q8_0 by default), optionally carrying the vocabulary of another
GGUF file (its tokenizer.* keys, copied byte for byte; the vocabulary size becomes the
model's). Used to check import, generation and memory on models of published shapes
without their weights, e.g. SmolLM2-135M:

    scripts/random_gguf.py --preset smollm2-135m \\
        --vocab ../shared/vocab/ggml-vocab-gpt-2.gguf smollm2-shape.gguf

Weights are N(0, 0.02) (residual projections scaled by 1/sqrt(2L)), norms 1; the
classifier is tied (no output.weight). Needs numpy only."""
import argparse
import struct
import sys

import numpy as np

PRESETS = {
    # SmolLM2-135M's published config (Llama architecture, tied embeddings)
    "smollm2-135m": dict(d_model=576, n_layer=30, n_head=9, n_kv_head=3, d_ff=1536,
                         vocab=49152, ctx=8192, theta=100000.0, eps=1e-5),
    # a small model of the same kind, for CI
    "smollm2-tiny": dict(d_model=64, n_layer=2, n_head=4, n_kv_head=2, d_ff=128,
                         vocab=49152, ctx=256, theta=100000.0, eps=1e-5),
}

GGML = {"F32": 0, "Q8_0": 8}
KV_STRING, KV_ARRAY, KV_U32, KV_F32 = 8, 9, 4, 6
SCALAR_SIZE = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def read_vocab_keys(path):
    """(raw bytes of every tokenizer.* key-value, number of tokens)."""
    data = open(path, "rb").read()
    if data[:4] != b"GGUF":
        sys.exit(f"{path}: not a GGUF file")
    _, n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    off = 24

    def skip(off, t):
        if t == KV_STRING:
            (n,) = struct.unpack_from("<Q", data, off)
            return off + 8 + n
        if t == KV_ARRAY:
            et, n = struct.unpack_from("<IQ", data, off)
            off += 12
            if et in SCALAR_SIZE:
                return off + n * SCALAR_SIZE[et]
            for _ in range(n):
                off = skip(off, et)
            return off
        return off + SCALAR_SIZE[t]

    raw, n_tokens = [], None
    for _ in range(n_kv):
        start = off
        (klen,) = struct.unpack_from("<Q", data, off)
        key = data[off + 8:off + 8 + klen].decode()
        off += 8 + klen
        (t,) = struct.unpack_from("<I", data, off)
        off = skip(off + 4, t)
        if key.startswith("tokenizer."):
            raw.append(data[start:off])
            if key == "tokenizer.ggml.tokens":
                n_tokens = struct.unpack_from("<Q", data, start + 8 + klen + 8)[0]
    if n_tokens is None:
        sys.exit(f"{path}: no tokenizer.ggml.tokens")
    return raw, n_tokens


def quantize_q8_0(x):
    """ggml's reference Q8_0: per 32 values, d = max|x| / 127 (stored as f16), q = round(x / d)."""
    b = x.reshape(-1, 32).astype(np.float32)
    d = np.abs(b).max(axis=1) / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0).astype(np.float32)
    q = np.rint(b * inv[:, None]).astype(np.int8)  # round half to even; ggml rounds half away
    out = np.empty((b.shape[0], 34), np.uint8)
    out[:, :2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="smollm2-135m")
    ap.add_argument("--vocab", help="GGUF file whose tokenizer.* keys (and size) to carry")
    ap.add_argument("--type", choices=sorted(GGML), default="Q8_0",
                    help="type of the weight matrices (norms stay F32)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    p = dict(PRESETS[a.preset])
    vocab_raw = []
    if a.vocab:
        vocab_raw, p["vocab"] = read_vocab_keys(a.vocab)
    C, L, H, Hkv, F, V = p["d_model"], p["n_layer"], p["n_head"], p["n_kv_head"], p["d_ff"], p["vocab"]
    hs = C // H
    rng = np.random.default_rng(a.seed)
    resid_std = 0.02 / np.sqrt(2 * L)

    tensors = []  # (name, shape (ne0, ne1...), type, generator of values)

    def mat(name, rows, cols, std=0.02):
        tensors.append((name, (cols, rows), a.type, lambda: rng.normal(0, std, (rows, cols))))

    def norm(name, n):
        tensors.append((name, (n,), "F32", lambda: np.ones(n)))

    mat("token_embd.weight", V, C)
    norm("output_norm.weight", C)
    for l in range(L):
        norm(f"blk.{l}.attn_norm.weight", C)
        mat(f"blk.{l}.attn_q.weight", C, C)
        mat(f"blk.{l}.attn_k.weight", Hkv * hs, C)
        mat(f"blk.{l}.attn_v.weight", Hkv * hs, C)
        mat(f"blk.{l}.attn_output.weight", C, C, resid_std)
        norm(f"blk.{l}.ffn_norm.weight", C)
        mat(f"blk.{l}.ffn_gate.weight", F, C)
        mat(f"blk.{l}.ffn_up.weight", F, C)
        mat(f"blk.{l}.ffn_down.weight", C, F, resid_std)

    kvs = [gguf_string("general.architecture") + struct.pack("<I", KV_STRING) + gguf_string("llama"),
           gguf_string("general.name") + struct.pack("<I", KV_STRING) +
           gguf_string(f"random {a.preset} ({a.type})")]
    for key, val in [("context_length", p["ctx"]), ("embedding_length", C), ("block_count", L),
                     ("feed_forward_length", F), ("attention.head_count", H),
                     ("attention.head_count_kv", Hkv), ("rope.dimension_count", hs),
                     ("vocab_size", V)]:
        kvs.append(gguf_string("llama." + key) + struct.pack("<II", KV_U32, val))
    for key, val in [("attention.layer_norm_rms_epsilon", p["eps"]), ("rope.freq_base", p["theta"])]:
        kvs.append(gguf_string("llama." + key) + struct.pack("<If", KV_F32, val))
    kvs += vocab_raw

    def nbytes(shape, t):
        n = int(np.prod(shape))
        return n * 4 if t == "F32" else n // 32 * 34

    align, offs, off = 32, [], 0
    for name, shape, t, _ in tensors:
        offs.append(off)
        off += (nbytes(shape, t) + align - 1) // align * align
    with open(a.out, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))
        for kv in kvs:
            f.write(kv)
        for (name, shape, t, _), o in zip(tensors, offs):
            f.write(gguf_string(name) + struct.pack("<I", len(shape)))
            f.write(struct.pack(f"<{len(shape)}Q", *shape) + struct.pack("<IQ", GGML[t], o))
        f.write(b"\0" * ((-f.tell()) % align))
        base = f.tell()
        for (name, shape, t, gen), o in zip(tensors, offs):
            f.write(b"\0" * (base + o - f.tell()))
            x = gen().astype(np.float32)
            f.write(x.tobytes() if t == "F32" else quantize_q8_0(x))
    n_params = sum(int(np.prod(s)) for _, s, _, _ in tensors)
    print(f"{a.out}: {a.preset} shape, vocabulary {V}, {n_params} parameters, {a.type} matrices")


if __name__ == "__main__":
    main()
