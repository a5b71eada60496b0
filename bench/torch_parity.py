#!/usr/bin/python3
# torch_parity.py: replays an autodidact training run in PyTorch and compares the loss at
# every step. The C side writes its starting weights and every micro-batch it used
# (`autodidact train CONFIG --dump-batches DIR`); this script loads both, trains the same
# architecture (bench/torch_train.py's Model, docs/MODEL.md) with the same AdamW (decay on
# the tensors autodidact decays), schedule, clipping and loss averaging, and prints the
# worst relative loss difference. Needs Debian's python3-torch and python3-h5py; no test
# or main command depends on it.
#
#   bench/torch_parity.py                 # the built-in table of configurations
#   bench/torch_parity.py --only gpt2     # configurations whose name contains "gpt2"
#   bench/torch_parity.py --dir D --log D/train_log.jsonl   # compare one existing dump
import argparse, json, math, os, subprocess, sys, tempfile, types
import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import Model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name, model keys, train keys: every variant the engine has a switch for
BASE_TRAIN = {"steps": 200, "batch_size": 16, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 20,
              "log_every": 0, "eval_every": 0, "ckpt_every": 0}
CONFIGS = [
    ("gpt2 learned, tied, biases", {"family": "gpt2"}, {}),
    ("gpt2 NoPE, untied, no biases", {"family": "gpt2", "pos": "none", "tied": False, "bias": False}, {}),
    ("gpt2 NoPE, torch init, accumulation 2", {"family": "gpt2", "pos": "none", "init": "torch"},
     {"grad_accum": 2, "beta2": 0.98, "weight_decay": 0.01}),
    ("llama GQA 4/2, rope, untied", {"family": "llama", "n_kv_head": 2}, {}),
    ("llama NoPE, tied, wsd", {"family": "llama", "pos": "none", "tied": True},
     {"schedule": "wsd", "decay_steps": 50}),
]


def schedule_lr(t, step):
    """ad_schedule_lr (src/optim.c) for update number `step` (0-based), in float32 as C."""
    lr_max, lr_min, w, total = t["lr"], t["min_lr"], t["warmup_steps"], t["steps"]
    if w > 0 and step < w:
        return float(np.float32(np.float32(lr_max) * np.float32(step + 1) / np.float32(w)))
    kind = t["schedule"]
    if kind == "constant":
        return float(np.float32(lr_max))
    if kind in ("cosine", "linear"):
        if total <= w:
            return float(np.float32(lr_max))
        frac = (step - w) / (total - w)
    else:  # wsd
        d = max(t["decay_steps"], 0)
        start = max(total - d, w)
        if step < start or total <= start:
            return float(np.float32(lr_max))
        frac = (step - start) / (total - start)
    frac = min(max(frac, 0.0), 1.0)
    k = 0.5 * (1.0 + math.cos(math.pi * frac)) if kind == "cosine" else 1.0 - frac
    lmin, lmax = float(np.float32(lr_min)), float(np.float32(lr_max))
    return float(np.float32(lmin + k * (lmax - lmin)))


def read_batches(path):
    """Yields (step, [(tokens (B, T), targets (B, T)), ...]) from a batches.bin dump."""
    raw = np.fromfile(path, dtype="<i4")
    i, cur, cur_step = 0, [], None
    while i < raw.size:
        step, a, A, B, T = (int(x) for x in raw[i:i + 5])
        i += 5
        tok = raw[i:i + B * T].reshape(B, T)
        tgt = raw[i + B * T:i + 2 * B * T].reshape(B, T)
        i += 2 * B * T
        if a == 0 and cur:
            yield cur_step, cur
            cur = []
        cur_step = step
        cur.append((torch.from_numpy(tok.astype(np.int64)), torch.from_numpy(tgt.astype(np.int64))))
        if a == A - 1:
            yield cur_step, cur
            cur = []


def load_model(path):
    """Builds torch_train.Model from an autodidact checkpoint and loads its weights."""
    with h5py.File(path, "r") as f:
        a = dict(f["model"].attrs)
        w = {k: torch.from_numpy(f["weights"][k][()]) for k in f["weights"]}
    norm, mlp = a["norm"], a["mlp"]
    if (norm == "rmsnorm") != (mlp == "swiglu"):
        raise SystemExit(f"{path}: norm {norm} with mlp {mlp} has no PyTorch twin here")
    cfg = types.SimpleNamespace(
        family="llama" if norm == "rmsnorm" else "gpt2", vocab=int(a["vocab_size"]),
        max_seq_len=int(a["max_seq_len"]), n_layer=int(a["n_layer"]), n_head=int(a["n_head"]),
        n_kv_head=int(a["n_kv_head"]), d_model=int(a["d_model"]), d_ff=int(a["d_ff"]),
        pos=a["pos"], bias=int(a["bias"]), tied=int(a["tied"]), norm_eps=float(a["norm_eps"]),
        rope_theta=float(a["rope_theta"]))
    model = Model(cfg)
    L = cfg.n_layer
    # (torch parameter, checkpoint tensor, decayed by autodidact)
    pairs = [(model.wte.weight, w["wte"], True), (model.normf.weight, w["lnf_w"], False)]
    if model.wpe is not None:
        pairs.append((model.wpe.weight, w["wpe"], True))
    if model.normf.bias is not None:
        pairs.append((model.normf.bias, w["lnf_b"], False))
    if model.lm_head is not None:
        pairs.append((model.lm_head.weight, w["lm_head"], True))
    for l, blk in enumerate(model.blocks):
        for mod, name in [(blk.qkv, "qkv"), (blk.attproj, "attproj"), (blk.fc, "fc"), (blk.fcproj, "fcproj")]:
            pairs.append((mod.weight, w[name + "_w"][l], True))
            if mod.bias is not None:
                pairs.append((mod.bias, w[name + "_b"][l], False))
        for nm, name in [(blk.norm1, "ln1"), (blk.norm2, "ln2")]:
            pairs.append((nm.weight, w[name + "_w"][l], False))
            if nm.bias is not None:
                pairs.append((nm.bias, w[name + "_b"][l], False))
    n = 0
    with torch.no_grad():
        for p, t, _ in pairs:
            assert p.shape == t.shape, (p.shape, t.shape)
            p.copy_(t)
            n += p.numel()
    total = sum(p.numel() for p in model.parameters())
    assert n == total == int(a["n_params"]), (n, total, int(a["n_params"]))
    return model, pairs, L


def replay(dump_dir, train_cfg, threads):
    """Trains in PyTorch on the dumped batches; returns the loss per step."""
    torch.set_num_threads(threads)
    model, pairs, _ = load_model(os.path.join(dump_dir, "init.h5"))
    t = train_cfg
    params = [p for p, _, _ in pairs]
    groups = [{"params": [p for p, _, d in pairs if d], "weight_decay": t["weight_decay"]},
              {"params": [p for p, _, d in pairs if not d], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=t["lr"], betas=(t["beta1"], t["beta2"]), eps=t["eps"])
    losses = []
    for step, micro in read_batches(os.path.join(dump_dir, "batches.bin")):
        count = sum(int((tg >= 0).sum()) for _, tg in micro)
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for tok, tg in micro:  # loss summed over the accumulated batch, divided by its targets
            lg = model.logits(tok)
            loss = F.cross_entropy(lg.view(-1, lg.size(-1)), tg.reshape(-1), ignore_index=-1,
                                   reduction="sum") / count
            loss.backward()
            total += loss.item()
        losses.append(total)
        # global-norm clipping as ad_grad_clip: k = max / (norm + 1e-6) when norm > max
        norm = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in params))
        if t["grad_clip"] > 0 and norm > t["grad_clip"]:
            k = t["grad_clip"] / (norm + 1e-6)
            for p in params:
                p.grad.mul_(k)
        lr = schedule_lr(t, step - 1)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
    return losses


def c_losses(log_path):
    with open(log_path) as f:
        return [json.loads(line)["loss"] for line in f if line.strip()]


def compare(name, c, p):
    n = min(len(c), len(p))
    if n == 0 or len(c) != len(p):
        raise SystemExit(f"{name}: {len(c)} C steps against {len(p)} PyTorch steps")
    rel = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(c, p)]
    worst = max(range(n), key=lambda i: rel[i])
    first = rel[0]
    return {"name": name, "steps": n, "loss_first": c[0], "loss_last": c[-1],
            "rel_first": first, "rel_worst": rel[worst], "worst_step": worst + 1,
            "rel_last": rel[-1]}


def run_config(binary, name, model_keys, train_keys, steps, threads, workdir):
    d = os.path.join(workdir, "".join(ch if ch.isalnum() else "_" for ch in name))
    cfg = {"model": dict({"d_model": 64, "n_layer": 2, "n_head": 4, "max_seq_len": 32}, **model_keys),
           "data": {"source": "task", "task": "radd", "min_len": 1, "max_len": 6},
           "train": dict(BASE_TRAIN, steps=steps, **train_keys),
           "seed": 1337, "threads": threads, "out_dir": d}
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "config.in.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    subprocess.run([binary, "train", path, "--quiet", "--dump-batches", d], check=True)
    with open(os.path.join(d, "config.json")) as f:
        resolved = json.load(f)
    c = c_losses(os.path.join(d, "train_log.jsonl"))
    p = replay(d, resolved["train"], threads)
    return compare(name, c, p)


def main():
    ap = argparse.ArgumentParser(description="autodidact vs PyTorch: loss at every training step")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "autodidact"))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="run configurations whose name contains this")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="worst relative difference allowed")
    ap.add_argument("--dir", help="compare an existing dump (with --log and --config)")
    ap.add_argument("--log", help="train_log.jsonl of the dumped run")
    ap.add_argument("--config", help="resolved config.json of the dumped run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.dir:
        with open(args.config or os.path.join(args.dir, "config.json")) as f:
            resolved = json.load(f)
        rows = [compare(args.dir, c_losses(args.log or os.path.join(args.dir, "train_log.jsonl")),
                        replay(args.dir, resolved["train"], args.threads))]
    else:
        if not os.access(args.binary, os.X_OK):
            raise SystemExit(f"{args.binary} not found: build first (cmake -S . -B build && cmake --build build)")
        with tempfile.TemporaryDirectory(prefix="ad_parity_") as work:
            rows = [run_config(args.binary, n, mk, tk, args.steps, args.threads, work)
                    for n, mk, tk in CONFIGS if args.only in n]
    ok = all(r["rel_worst"] <= args.tolerance for r in rows)
    if args.json:
        print(json.dumps({"rows": rows, "tolerance": args.tolerance, "ok": ok,
                          "torch": torch.__version__}))
    else:
        print(f"| configuration | steps | loss step 1 | loss step {rows[0]['steps']} | "
              "worst rel. diff (step) | rel. diff at end |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['name']} | {r['steps']} | {r['loss_first']:.4f} | {r['loss_last']:.4f} | "
                  f"{r['rel_worst']:.1e} ({r['worst_step']}) | {r['rel_last']:.1e} |")
        print(f"PyTorch {torch.__version__}; tolerance {args.tolerance:g}: {'pass' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
