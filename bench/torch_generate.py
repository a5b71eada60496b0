#!/usr/bin/python3
# torch_generate.py: the PyTorch reference for the generation benchmark. Runs the decoder of
# docs/MODEL.md (GPT-2 or Llama switches, grouped-query attention, tied or untied classifier,
# RoPE on interleaved pairs) with a preallocated KV cache, B sequences from one BOS token, one
# token per step for the whole batch, and reports tokens/s. The model is random with a given
# shape or read from a llama2.c checkpoint. It does not use the C side's weights or RNG.
import argparse, json, math, os, statistics, struct, sys, time
import numpy as np
import torch
import torch.nn.functional as F


class Decoder:
    """The weights of docs/MODEL.md as plain tensors (W stored (out, in)) and one decode step."""

    def __init__(self, cfg, p):
        self.cfg, self.p = cfg, p
        C, H = cfg.d_model, cfg.n_head
        self.hs = C // H
        if cfg.pos == "rope":  # angle t * theta^(-2j/hs) for pair j at position t: (maxT, hs/2)
            ang = torch.outer(torch.arange(cfg.max_seq_len).double(),
                              cfg.rope_theta ** (-torch.arange(0, self.hs, 2).double() / self.hs))
            self.cos, self.sin = ang.cos().float(), ang.sin().float()

    def norm(self, x, w, b):
        if self.cfg.family == "llama":
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg.norm_eps) * w
        return F.layer_norm(x, x.shape[-1:], w, b, self.cfg.norm_eps)

    def rope(self, x, t):
        """Rotates the interleaved pairs (2j, 2j+1) of x (B, heads, hs) at position t."""
        cos, sin = self.cos[t], self.sin[t]
        a, b = x.unflatten(-1, (-1, 2)).unbind(-1)
        return torch.stack((a * cos - b * sin, a * sin + b * cos), -1).flatten(-2)

    def new_cache(self, B):
        """Key and value caches per layer, each (B, Hkv, maxT, hs), filled in place."""
        c = self.cfg
        shape = (B, c.n_kv_head, c.max_seq_len, self.hs)
        return [(torch.zeros(shape), torch.zeros(shape)) for _ in range(c.n_layer)]

    def step(self, tok, t, cache):
        """Feeds tok (B,) at position t of every sequence; returns logits (B, V)."""
        c, p, hs = self.cfg, self.p, self.hs
        B, H, Hkv = tok.shape[0], c.n_head, c.n_kv_head
        G = H // Hkv
        x = p["wte"][tok]
        if c.pos == "learned":
            x = x + p["wpe"][t]
        for l, (kc, vc) in enumerate(cache):
            h = self.norm(x, p["ln1_w"][l], p["ln1_b"][l])
            q, k, v = F.linear(h, p["qkv_w"][l], p["qkv_b"][l]).split([H * hs, Hkv * hs, Hkv * hs], -1)
            q, k, v = q.view(B, H, hs), k.view(B, Hkv, hs), v.view(B, Hkv, hs)
            if c.pos == "rope":
                q, k = self.rope(q, t), self.rope(k, t)
            kc[:, :, t] = k
            vc[:, :, t] = v
            # query head i reads key/value head i / G: group the G query heads of each kv head
            q = q.view(B, Hkv, G, hs)
            att = torch.matmul(q, kc[:, :, :t + 1].transpose(-1, -2)) * (1.0 / math.sqrt(hs))
            y = torch.matmul(att.softmax(-1), vc[:, :, :t + 1])           # (B, Hkv, G, hs)
            x = x + F.linear(y.reshape(B, H * hs), p["attproj_w"][l], p["attproj_b"][l])
            f = F.linear(self.norm(x, p["ln2_w"][l], p["ln2_b"][l]), p["fc_w"][l], p["fc_b"][l])
            if c.family == "llama":
                gate, up = f.chunk(2, -1)
                a = F.silu(gate) * up
            else:
                a = F.gelu(f, approximate="tanh")
            x = x + F.linear(a, p["fcproj_w"][l], p["fcproj_b"][l])
        x = self.norm(x, p["lnf_w"], p["lnf_b"])
        return F.linear(x, p["wte"] if c.tied else p["lm_head"])

    def generate(self, B, n_new, bos, greedy, cache, gen):
        """B sequences of n_new tokens each from a lone BOS; returns tokens (B, n_new)."""
        out = torch.empty(B, n_new, dtype=torch.long)
        tok = torch.full((B,), bos, dtype=torch.long)
        for t in range(n_new):
            logits = self.step(tok, t, cache)
            if greedy:
                tok = logits.argmax(-1)
            else:
                tok = torch.multinomial(logits.softmax(-1), 1, generator=gen).view(B)
            out[:, t] = tok
        return out


def per_layer(L, v):
    return [v] * L if v is None else v


def random_params(cfg, gen):
    """GPT-2 style init: N(0, 0.02) matrices, residual projections / sqrt(2L), norms 1, biases 0."""
    C, L, V, F_ = cfg.d_model, cfg.n_layer, cfg.vocab, cfg.d_ff
    hs = C // cfg.n_head
    QKV, FC = (cfg.n_head + 2 * cfg.n_kv_head) * hs, F_ * (2 if cfg.family == "llama" else 1)
    llama = cfg.family == "llama"
    std_proj = 0.02 / math.sqrt(2 * L)
    rnd = lambda *s, std=0.02: torch.randn(*s, generator=gen) * std
    zeros = lambda *s: torch.zeros(*s) if cfg.bias else None
    p = {"wte": rnd(V, C), "ln1_w": torch.ones(L, C), "qkv_w": rnd(L, QKV, C),
         "attproj_w": rnd(L, C, C, std=std_proj), "ln2_w": torch.ones(L, C), "fc_w": rnd(L, FC, C),
         "fcproj_w": rnd(L, C, F_, std=std_proj), "lnf_w": torch.ones(C)}
    p["wpe"] = rnd(cfg.max_seq_len, C) if cfg.pos == "learned" else None
    norm_b = (lambda *s: torch.zeros(*s)) if cfg.bias and not llama else (lambda *s: None)
    p["ln1_b"], p["ln2_b"], p["lnf_b"] = per_layer(L, norm_b(L, C)), per_layer(L, norm_b(L, C)), norm_b(C)
    p["qkv_b"], p["attproj_b"] = per_layer(L, zeros(L, QKV)), per_layer(L, zeros(L, C))
    p["fc_b"], p["fcproj_b"] = per_layer(L, zeros(L, FC)), per_layer(L, zeros(L, C))
    p["lm_head"] = None if cfg.tied else rnd(V, C)
    return p


def load_llama2c(path, cfg):
    """Reads a llama2.c legacy checkpoint (run.c's layout) into the tensors of docs/MODEL.md."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        dim, hidden, L, H, Hkv, vocab, seq_len = struct.unpack("<7i", f.read(28))
        data = np.fromfile(f, dtype="<f4")
    shared, vocab = vocab > 0, abs(vocab)
    if min(dim, hidden, L, H, Hkv, vocab, seq_len) <= 0 or dim % H or H % Hkv:
        sys.exit(f"{path}: implausible llama2.c header {dim, hidden, L, H, Hkv, vocab, seq_len}")
    hs = dim // H
    kv = Hkv * hs
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        if off + n > data.size:
            sys.exit(f"{path}: file of {size} bytes ends inside the weights")
        t = torch.from_numpy(data[off:off + n].copy()).view(*shape)
        off += n
        return t

    wte = take(vocab, dim)
    rms_att = take(L, dim)
    wq, wk, wv = take(L, dim, dim), take(L, kv, dim), take(L, kv, dim)
    wo = take(L, dim, dim)
    rms_ffn = take(L, dim)
    w1, w2, w3 = take(L, hidden, dim), take(L, dim, hidden), take(L, hidden, dim)
    rms_final = take(dim)
    off += seq_len * hs  # freq_cis_real and freq_cis_imag, (seq_len, hs/2) each: unused
    lm_head = None if shared else take(vocab, dim)
    cfg.family, cfg.pos, cfg.bias, cfg.tied = "llama", "rope", 0, int(shared)
    cfg.vocab, cfg.d_model, cfg.n_layer, cfg.n_head, cfg.n_kv_head = vocab, dim, L, H, Hkv
    cfg.d_ff, cfg.max_seq_len = hidden, seq_len
    none = [None] * L
    return {"wte": wte, "wpe": None, "ln1_w": rms_att, "ln1_b": none,
            "qkv_w": torch.cat((wq, wk, wv), 1).contiguous(), "qkv_b": none,
            "attproj_w": wo, "attproj_b": none, "ln2_w": rms_ffn, "ln2_b": none,
            "fc_w": torch.cat((w1, w3), 1).contiguous(), "fc_b": none,
            "fcproj_w": w2, "fcproj_b": none, "lnf_w": rms_final, "lnf_b": None,
            "lm_head": lm_head}


def load_tokenizer(path, vocab):
    """llama2.c tokenizer: int32 max_len, then per token float score, int32 len, bytes."""
    pieces = []
    with open(path, "rb") as f:
        f.read(4)
        for _ in range(vocab):
            _score, n = struct.unpack("<fi", f.read(8))
            pieces.append(f.read(n))
    return pieces


def decode(pieces, ids, bos):
    """As llama2.c's decode(): a piece after BOS loses its leading space; <0xNN> is byte NN."""
    out, prev = bytearray(), bos
    for i in ids:
        s = pieces[i]
        if prev == bos and s.startswith(b" "):
            s = s[1:]
        if len(s) == 6 and s.startswith(b"<0x") and s.endswith(b">"):
            s = bytes([int(s[3:5], 16)])
        if i not in (0, 1, 2):
            out += s
        prev = i
    return out.decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser(description="PyTorch KV-cache generation throughput reference")
    ap.add_argument("--family", choices=["gpt2", "llama"], default="gpt2")
    ap.add_argument("--pos", choices=["learned", "rope", "none"], help="default: family preset")
    ap.add_argument("--untied", action="store_true", help="gpt2 with a separate lm_head")
    for name, val in [("vocab", 512), ("d-model", 128), ("n-layer", 4), ("n-head", 4),
                      ("n-kv-head", 0), ("d-ff", 0), ("seq-len", 128), ("batch", 64),
                      ("new", 100), ("threads", 2), ("repeats", 3), ("seed", 1337), ("bos", 1)]:
        ap.add_argument("--" + name, type=int, default=val)
    ap.add_argument("--llama2c", metavar="PATH", help="load a llama2.c checkpoint instead")
    ap.add_argument("--tokenizer", metavar="PATH", help="llama2.c tokenizer to print the text")
    ap.add_argument("--greedy", action="store_true", help="argmax instead of sampling")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    cfg = ap.parse_args()

    torch.set_num_threads(cfg.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    cfg.norm_eps, cfg.rope_theta = 1e-5, 10000.0
    if cfg.llama2c:
        params = load_llama2c(cfg.llama2c, cfg)
    else:
        llama = cfg.family == "llama"
        cfg.pos = cfg.pos or ("rope" if llama else "learned")
        cfg.bias, cfg.tied = int(not llama), int(not llama and not cfg.untied)
        cfg.n_kv_head = cfg.n_kv_head or cfg.n_head
        cfg.d_ff = cfg.d_ff or ((2 * 4 * cfg.d_model // 3 + 31) // 32 * 32 if llama else 4 * cfg.d_model)
        cfg.max_seq_len = cfg.seq_len
        assert cfg.d_model % cfg.n_head == 0 and cfg.n_head % cfg.n_kv_head == 0
        params = random_params(cfg, gen)
    if cfg.new > cfg.max_seq_len:
        sys.exit(f"--new {cfg.new} exceeds the context of {cfg.max_seq_len} positions")
    model = Decoder(cfg, params)
    B, N = cfg.batch, cfg.new
    n_params = sum(v.numel() for v in params.values() if isinstance(v, torch.Tensor))

    with torch.inference_mode():
        cache = model.new_cache(B)
        if cfg.greedy or cfg.tokenizer:
            out = model.generate(B, N, cfg.bos, cfg.greedy, cache, gen)
            if cfg.tokenizer:
                pieces = load_tokenizer(cfg.tokenizer, cfg.vocab)
                for b in range(min(B, 4)):
                    print(decode(pieces, out[b].tolist(), cfg.bos))
            else:
                print(out[:4].tolist())
            if not cfg.json:
                return
        model.generate(B, N, cfg.bos, cfg.greedy, cache, gen)  # warmup
        rates, util = [], []  # util: CPU seconds per wall second per thread
        for _ in range(cfg.repeats):
            t0, c0 = time.perf_counter(), os.times()
            model.generate(B, N, cfg.bos, cfg.greedy, cache, gen)
            wall, c1 = time.perf_counter() - t0, os.times()
            rates.append(B * N / wall)
            util.append(round((c1.user + c1.system - c0.user - c0.system) / (wall * cfg.threads), 3))
    res = {"impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
           "model": cfg.llama2c or "random", "family": cfg.family, "pos": cfg.pos,
           "tied": cfg.tied, "vocab": cfg.vocab, "d_model": cfg.d_model, "n_layer": cfg.n_layer,
           "n_head": cfg.n_head, "n_kv_head": cfg.n_kv_head, "d_ff": cfg.d_ff,
           "max_seq_len": cfg.max_seq_len, "n_params": n_params, "batch": B, "new": N,
           "greedy": cfg.greedy, "tokens_per_s": statistics.median(rates),
           "tokens_per_s_repeats": rates, "cpu_util_repeats": util}
    if cfg.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:22s} {v}")


if __name__ == "__main__":
    main()
