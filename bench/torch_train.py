#!/usr/bin/python3
# torch_train.py: the PyTorch reference for the training benchmark. Trains the model of
# docs/MODEL.md (GPT-2 or Llama switches) on random tokens with AdamW and reports tokens/s,
# or with --check-loss prints the loss per step on a fixed pattern. It does not read
# checkpoints or configs and does not try to match the C side's initial weights.
import argparse, json, math, os, resource, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Norm(nn.Module):
    """LayerNorm (weight, optional bias) or RMSNorm (weight only), biased variance."""
    def __init__(self, cfg):
        super().__init__()
        self.rms, self.eps = cfg.family == "llama", cfg.norm_eps
        self.weight = nn.Parameter(torch.ones(cfg.d_model))
        self.bias = nn.Parameter(torch.zeros(cfg.d_model)) if cfg.bias and not self.rms else None

    def forward(self, x):
        if self.rms:
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


def rope(x, cos, sin):
    """Rotates interleaved pairs (2j, 2j+1) of x (B, T, heads, hs); cos, sin are (T, 1, hs/2)."""
    a, b = x.unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack((a * cos - b * sin, a * sin + b * cos), -1).flatten(-2)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, H, Hkv = cfg.d_model, cfg.n_head, cfg.n_kv_head
        self.H, self.Hkv, self.hs, self.swiglu = H, Hkv, C // H, cfg.family == "llama"
        self.norm1, self.norm2 = Norm(cfg), Norm(cfg)
        self.qkv = nn.Linear(C, (H + 2 * Hkv) * self.hs, bias=cfg.bias)
        self.attproj = nn.Linear(C, C, bias=cfg.bias)
        self.fc = nn.Linear(C, cfg.d_ff * (2 if self.swiglu else 1), bias=cfg.bias)
        self.fcproj = nn.Linear(cfg.d_ff, C, bias=cfg.bias)

    def attention(self, h, mask, rot):
        B, T, C = h.shape
        H, Hkv, hs = self.H, self.Hkv, self.hs
        q, k, v = self.qkv(h).split([H * hs, Hkv * hs, Hkv * hs], dim=-1)
        q, k, v = q.view(B, T, H, hs), k.view(B, T, Hkv, hs), v.view(B, T, Hkv, hs)
        if rot is not None:
            q, k = rope(q, *rot), rope(k, *rot)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, hs)
        if Hkv != H:  # query head i reads key/value head i / (H / Hkv)
            k, v = k.repeat_interleave(H // Hkv, dim=1), v.repeat_interleave(H // Hkv, dim=1)
        q, k, v = (t.reshape(B * H, T, hs) for t in (q, k, v))
        # scale, causal mask (additive -inf above the diagonal) and q k^T in one call
        att = torch.baddbmm(mask[:T, :T], q, k.transpose(1, 2), beta=1.0, alpha=1.0 / math.sqrt(hs))
        y = torch.bmm(att.softmax(dim=-1), v)
        return self.attproj(y.view(B, H, T, hs).transpose(1, 2).reshape(B, T, C))

    def forward(self, x, mask, rot):
        x = x + self.attention(self.norm1(x), mask, rot)
        f = self.fc(self.norm2(x))
        if self.swiglu:
            gate, up = f.chunk(2, dim=-1)
            a = F.silu(gate) * up
        else:
            a = F.gelu(f, approximate="tanh")
        return x + self.fcproj(a)


class Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, T = cfg.d_model, cfg.max_seq_len
        self.wte = nn.Embedding(cfg.vocab, C)
        self.wpe = nn.Embedding(T, C) if cfg.pos == "learned" else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.normf = Norm(cfg)
        self.lm_head = None if cfg.tied else nn.Linear(C, cfg.vocab, bias=False)
        self.register_buffer("mask", torch.full((T, T), float("-inf")).triu(1), persistent=False)
        self.rope = cfg.pos == "rope"
        if self.rope:  # angle t * theta^(-2j/hs) for pair j at position t, shaped (T, 1, hs/2)
            hs = C // cfg.n_head
            ang = torch.outer(torch.arange(T).double(),
                              cfg.rope_theta ** (-torch.arange(0, hs, 2).double() / hs))
            self.register_buffer("rope_cos", ang.cos().float()[:, None, :], persistent=False)
            self.register_buffer("rope_sin", ang.sin().float()[:, None, :], persistent=False)
        for name, p in self.named_parameters():  # GPT-2 init as ad_model_init_weights
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * cfg.n_layer) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def logits(self, idx):
        B, T = idx.shape
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe.weight[:T]
        rot = (self.rope_cos[:T], self.rope_sin[:T]) if self.rope else None
        for blk in self.blocks:
            x = blk(x, self.mask, rot)
        x = self.normf(x)
        return F.linear(x, self.wte.weight if self.lm_head is None else self.lm_head.weight)

    def forward(self, idx, targets):
        logits = self.logits(idx)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)


def main():
    ap = argparse.ArgumentParser(description="PyTorch training throughput reference")
    ap.add_argument("--family", choices=["gpt2", "llama"], default="gpt2")
    ap.add_argument("--pos", choices=["learned", "rope", "none"], help="default: family preset")
    for name, val in [("vocab", 512), ("d-model", 128), ("n-layer", 4), ("n-head", 4),
                      ("n-kv-head", 0), ("d-ff", 0), ("seq-len", 128), ("max-seq-len", 0),
                      ("batch", 16), ("threads", 2), ("steps", 30), ("warmup", 5),
                      ("repeats", 3), ("seed", 1337)]:
        ap.add_argument("--" + name, type=int, default=val)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--check-loss", action="store_true", help="print the loss per step on a fixed pattern")
    cfg = ap.parse_args()
    llama = cfg.family == "llama"
    cfg.pos = cfg.pos or ("rope" if llama else "learned")
    cfg.bias, cfg.tied = int(not llama), int(not llama)
    cfg.n_kv_head = cfg.n_kv_head or cfg.n_head
    cfg.d_ff = cfg.d_ff or 4 * cfg.d_model
    cfg.max_seq_len = cfg.max_seq_len or cfg.seq_len
    cfg.norm_eps, cfg.rope_theta = 1e-5, 10000.0
    assert cfg.d_model % cfg.n_head == 0 and cfg.n_head % cfg.n_kv_head == 0
    assert cfg.seq_len <= cfg.max_seq_len

    torch.set_num_threads(cfg.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(cfg.seed)
    model = Model(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    groups = [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    B, T, V = cfg.batch, cfg.seq_len, cfg.vocab

    def step(data):
        loss = model(data[:, :-1], data[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    if cfg.check_loss:  # row b, position i holds (7 i + b) mod V
        data = (torch.arange(T + 1)[None, :] * 7 + torch.arange(B)[:, None]) % V
        for s in range(cfg.steps):
            print(f"step {s} loss {step(data):.6f}")
        return

    gen = torch.Generator().manual_seed(cfg.seed)
    def batch():
        return torch.randint(V, (B, T + 1), generator=gen)
    for _ in range(cfg.warmup):
        step(batch())
    rates, util = [], []  # util: CPU seconds per wall second per thread; well below 1 = disturbed
    for _ in range(cfg.repeats):
        t0, c0 = time.perf_counter(), os.times()
        for _ in range(cfg.steps):
            step(batch())
        wall, c1 = time.perf_counter() - t0, os.times()
        rates.append(B * T * cfg.steps / wall)
        util.append(round((c1.user + c1.system - c0.user - c0.system) / (wall * cfg.threads), 3))
    res = {"impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
           "family": cfg.family, "pos": cfg.pos, "vocab": V, "d_model": cfg.d_model,
           "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_kv_head": cfg.n_kv_head,
           "d_ff": cfg.d_ff, "seq_len": T, "batch": B, "steps": cfg.steps,
           "n_params": n_params, "tokens_per_s": statistics.median(rates),
           "tokens_per_s_repeats": rates, "cpu_util_repeats": util,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if cfg.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:22s} {v}")


if __name__ == "__main__":
    main()
