#!/usr/bin/python3
"""model_doc_check.py: a forward pass written in numpy from docs/MODEL.md and
docs/CHECKPOINT.md alone, run on a checkpoint, against the log-probabilities that
`autodidact eval --logprobs` wrote for the same tokens. Usage:

    model_doc_check.py CKPT.h5 LOGPROBS.jsonl

Exits non-zero (printing the worst difference) when any log-probability differs by more
than 2e-5 from the numpy one (float32 rounding: about 1e-6; leaving out RoPE scaling
moves them by 8e-4 on these tiny models, the window or the biases by 3e-2 and more)."""
import json
import sys

import h5py
import numpy as np


def load(path):
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "autodidact-checkpoint" and f.attrs["format_version"] <= 2
        cfg = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f["model"].attrs.items()}
        w = {name: ds[()].astype(np.float64) for name, ds in f["weights"].items()}
    return cfg, w


def rope_freqs(cfg, hs):
    """f_j = theta^(-2j/hs), Llama 3 scaled when rope_scaling = llama3 (MODEL.md), as float32."""
    j = np.arange(hs // 2)
    f = float(cfg["rope_theta"]) ** (-2.0 * j / hs)
    if cfg.get("rope_scaling", "none") == "llama3":
        k, lo, hi = cfg["rope_factor"], cfg["rope_low_freq_factor"], cfg["rope_high_freq_factor"]
        n0 = float(cfg["rope_original_max_pos"])
        w = 2 * np.pi / f
        s = (n0 / w - lo) / (hi - lo)
        f = np.where(w < n0 / hi, f, np.where(w > n0 / lo, f / k, (1 - s) * f / k + s * f))
    return f.astype(np.float32).astype(np.float64)


def norm(x, wt, b, cfg):
    eps = cfg["norm_eps"]
    if cfg["norm"] == "rmsnorm":
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * wt
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * wt + (b if b is not None else 0)


def forward(cfg, w, tok):
    """Logits (T, V) of one sequence, from MODEL.md's forward pass."""
    T, C, L = len(tok), int(cfg["d_model"]), int(cfg["n_layer"])
    H, Hkv = int(cfg["n_head"]), int(cfg["n_kv_head"])
    hs, F = C // H, int(cfg["d_ff"])
    W = int(cfg.get("sliding_window", 0))
    g = lambda name, l=None: (w[name][l] if l is not None else w[name]) if name in w else None
    x = w["wte"][tok].copy()
    if cfg["pos"] == "learned":
        x += w["wpe"][:T]
    if cfg["pos"] == "rope":
        ang = np.arange(T)[:, None] * rope_freqs(cfg, hs)[None, :]
        cs, sn = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    t = np.arange(T)
    mask = (t[None, :] <= t[:, None]) & ((W <= 0) | (t[None, :] > t[:, None] - W))
    for l in range(L):
        h = norm(x, g("ln1_w", l), g("ln1_b", l), cfg)
        qkv = h @ w["qkv_w"][l].T + (g("qkv_b", l) if "qkv_b" in w else 0)
        q = qkv[:, :H * hs].reshape(T, H, hs)
        k = qkv[:, H * hs:(H + Hkv) * hs].reshape(T, Hkv, hs)
        v = qkv[:, (H + Hkv) * hs:].reshape(T, Hkv, hs)
        if cfg["pos"] == "rope":
            def rot(u):
                a, b = u[..., 0::2].copy(), u[..., 1::2].copy()
                out = np.empty_like(u)
                out[..., 0::2] = a * cs[:, None, :] - b * sn[:, None, :]
                out[..., 1::2] = a * sn[:, None, :] + b * cs[:, None, :]
                return out
            q, k = rot(q), rot(k)
        y = np.empty((T, H, hs))
        for i in range(H):
            gi = i // (H // Hkv)
            s = q[:, i] @ k[:, gi].T / np.sqrt(hs)
            s = np.where(mask, s, -np.inf)
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            y[:, i] = p @ v[:, gi]
        x = x + y.reshape(T, C) @ w["attproj_w"][l].T + (g("attproj_b", l) if "attproj_b" in w else 0)
        h = norm(x, g("ln2_w", l), g("ln2_b", l), cfg)
        f = h @ w["fc_w"][l].T + (g("fc_b", l) if "fc_b" in w else 0)
        if cfg["mlp"] == "swiglu":
            a = f[:, :F] / (1 + np.exp(-f[:, :F])) * f[:, F:]
        else:
            a = 0.5 * f * (1 + np.tanh(np.sqrt(2 / np.pi) * (f + 0.044715 * f ** 3)))
        x = x + a @ w["fcproj_w"][l].T + (g("fcproj_b", l) if "fcproj_b" in w else 0)
    h = norm(x, w["lnf_w"], g("lnf_b"), cfg)
    return h @ (w["wte"] if int(cfg["tied"]) else w["lm_head"]).T


def main():
    cfg, w = load(sys.argv[1])
    worst, n = 0.0, 0
    for line in open(sys.argv[2]):
        r = json.loads(line)
        z = forward(cfg, w, np.array(r["tokens"]))
        lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
        for t, (y, lp) in enumerate(zip(r["targets"], r["logprobs"])):
            if lp is None:
                continue
            worst = max(worst, abs(z[t, y] - lse[t] - lp))
            n += 1
    switches = {k: cfg.get(k) for k in ("qkv_bias", "sliding_window", "rope_scaling")}
    print(f"numpy forward from docs/MODEL.md vs autodidact eval: {n} log-probs, "
          f"max |diff| {worst:.2e} ({switches})")
    if n == 0 or worst > 2e-5:
        sys.exit(1)


if __name__ == "__main__":
    main()
