#!/bin/bash
# analysis_check.sh: checks the analysis/ scripts on synthetic run files built with h5py
# exactly as docs/RUNFILE.md describes (3 rounds, eval lengths 1..12, NaN scores, training
# curves). Prints "N passed, M failed" and exits non-zero on any failure.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ANALYSIS="$HERE/analysis"
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/analysis_check.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export MPLCONFIGDIR="$TMP/mpl" PYTHONDONTWRITEBYTECODE=1
passed=0
failed=0

ok()   { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/     /' <<<"$2"; }
check() { # check NAME COMMAND...: passes when the command succeeds
    local name=$1; shift
    if out=$("$@" 2>&1); then ok "$name"; else fail "$name" "$out"; fi
}

# ---- synthetic run files ----
cat >"$TMP/make_run.py" <<'EOF'
import json, sys
import h5py, numpy as np

path, variant = sys.argv[1], sys.argv[2]
S = h5py.string_dtype("utf-8")
E = np.arange(1, 13, dtype=np.int64)
ACC = np.array([  # (R, E): accuracy per round and length; training lengths 1..6
    [1.0, 1.0, 1.0, 1.0, 0.98, 0.95, 0.625, 0.3, 0.1, 0.02, 0.0, 0.0],
    [1.0, 1.0, 1.0, 1.0, 0.99, 0.97, 0.93, 0.55, 0.2, 0.05, 0.01, 0.0],
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.98, 0.96, 0.913, 0.6, 0.25, 0.05, 0.0]])
if variant == "oracle":
    ACC = np.minimum(ACC + 0.02, 1.0)
FRONTIER = [6, 7, 8]
config = {"seed": 1 if variant == "base" else 2, "run_file": path,
          "task": {"name": "copy", "train_min_len": 1, "train_max_len": 6,
                   "eval_min_len": 1, "eval_max_len": 12},
          "select": {"policy": "all" if variant == "base" else "oracle", "scorer": "majority"},
          "train": {"lr": 0.002}}

with h5py.File(path, "w") as f:
    f.attrs["format"] = "autodidact-run"
    f.attrs["format_version"] = np.int64(1)
    for k, v in [("program_version", "0.1.0"), ("git_commit", "abc123"),
                 ("start_time", "2025-01-01T00:00:00Z"), ("blas", "OpenBLAS 0.3.21"),
                 ("cpu", "test cpu")]:
        f.attrs[k] = v
    f.attrs["seed"] = np.uint64(config["seed"])
    f.attrs["threads"] = np.int64(2)
    f.create_dataset("config", data=json.dumps(config, indent=2), dtype=S)
    f.create_dataset("config_original", data=json.dumps(config), dtype=S)
    f.create_dataset("eval_lengths", data=E)
    summ, rounds = f.create_group("summary"), f.create_group("rounds")
    cols = {c: [] for c in ["round", "length_lo", "length_hi", "n_prompts", "n_candidates",
                            "n_selected", "acceptance", "label_accuracy", "candidate_accuracy",
                            "train_examples", "train_steps", "train_loss", "frontier_90",
                            "time_generate", "time_score", "time_train", "time_eval",
                            "time_total", "gen_tokens_per_s", "train_tokens_per_s"]}
    for r in range(3):
        g = rounds.create_group(f"{r:03d}")
        lo = hi = 0
        if r == 0:
            lo, hi, p, n = 1, 6, 0, 0
            correct = np.zeros(0, np.int8)
            selected = np.zeros(0, np.uint8)
            cprompt = np.zeros(0, np.int64)
            plen = np.zeros(0, np.int64)
        else:
            lo = hi = 6 + r
            p, samples = 4, 3
            n = p * samples
            plen = np.full(p, lo, np.int64)
            cprompt = np.repeat(np.arange(p), samples).astype(np.int64)
            # round 1: 6 of 12 selected, 3 of them right; round 2: 9 selected, 8 right
            correct = np.array([1, 1, 0, 1, 0, 0, 1, 1, 1, 0, -1, 0] if r == 1 else
                               [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0], np.int8)
            selected = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0] if r == 1 else
                                [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], np.uint8)
        g.create_dataset("prompts", data=[f"prompt {i}" for i in range(p)], dtype=S)
        g.create_dataset("prompt_length", data=plen)
        g.create_dataset("candidates", data=[f"answer {i}" for i in range(n)], dtype=S)
        g.create_dataset("candidate_prompt", data=cprompt)
        g.create_dataset("candidate_sample", data=np.arange(n, dtype=np.int64) % 3)
        g.create_dataset("candidate_ended", data=np.ones(n, np.uint8))
        sc = g.create_group("scores")
        if n:
            maj = np.where(np.arange(n) % 3 == 2, np.nan, 2 / 3).astype(np.float32)
            sc.create_dataset("majority", data=maj)
            sc.create_dataset("length", data=np.ones(n, np.float32))
        g.create_dataset("selected", data=selected)
        g.create_dataset("correct", data=correct)
        steps = 50 if r == 0 else 20
        t = g.create_group("train")
        step = np.arange(steps, dtype=np.int64)
        loss = 2.0 * np.exp(-step / (10.0 + 5 * r)) + 0.01
        t.create_dataset("step", data=step)
        t.create_dataset("loss", data=loss)
        t.create_dataset("lr", data=np.full(steps, 0.002))
        t.create_dataset("grad_norm", data=np.ones(steps))
        t.create_dataset("tokens_per_s", data=np.full(steps, 1000.0))
        ev = g.create_group("eval")
        ev.create_dataset("length", data=E)
        ev.create_dataset("accuracy", data=ACC[r])
        ev.create_dataset("loss", data=1.0 - ACC[r])
        ev.create_dataset("n", data=np.full(12, 200, np.int64))
        nsel = int(selected.sum())
        sel_right = int(((correct == 1) & (selected == 1)).sum())
        row = dict(round=r, length_lo=lo, length_hi=hi, n_prompts=p, n_candidates=n,
                   n_selected=nsel, acceptance=nsel / n if n else np.nan,
                   label_accuracy=sel_right / nsel if nsel else np.nan,
                   candidate_accuracy=(correct == 1).sum() / n if n else np.nan,
                   train_examples=1000 + nsel, train_steps=steps, train_loss=loss[-1],
                   frontier_90=FRONTIER[r], time_generate=1.0, time_score=0.5, time_train=10.0,
                   time_eval=2.0, time_total=13.5, gen_tokens_per_s=500.0,
                   train_tokens_per_s=1000.0)
        for c in cols:
            cols[c].append(row[c])
        g.attrs["round"] = np.int64(r)
        g.attrs["length_lo"], g.attrs["length_hi"] = np.int64(lo), np.int64(hi)
        g.attrs["teacher"] = "self"
        g.attrs["n_selected"] = np.int64(nsel)
        g.attrs["label_accuracy"] = row["label_accuracy"]
        for c in ["time_generate", "time_score", "time_train", "time_eval", "time_total"]:
            g.attrs[c] = row[c]
    for c, v in cols.items():
        ints = c in ("round", "length_lo", "length_hi", "n_prompts", "n_candidates",
                     "n_selected", "train_examples", "train_steps", "frontier_90")
        summ.create_dataset(c, data=np.array(v, np.int64 if ints else np.float64))
    summ.create_dataset("eval_accuracy", data=ACC)
    summ.create_dataset("eval_loss", data=1.0 - ACC)
    f.attrs["rounds_complete"] = np.int64(3)
EOF
RUN="$TMP/base.h5"
RUN2="$TMP/oracle.h5"
check "make synthetic run files" bash -c \
    "$PY '$TMP/make_run.py' '$RUN' base && $PY '$TMP/make_run.py' '$RUN2' oracle"

# ---- runfile.py ----
check "runfile.load reads every part" "$PY" - "$ANALYSIS" "$RUN" <<'EOF'
import sys, math
sys.path.insert(0, sys.argv[1])
import runfile
run = runfile.load(sys.argv[2])
assert run.rounds_complete == 3 and len(run.rounds) == 3
assert list(run.eval_lengths) == list(range(1, 13))
assert run.summary["eval_accuracy"].shape == (3, 12)
assert run.summary["eval_accuracy"][2, 7] == 0.913
assert list(run.summary["frontier_90"]) == [6, 7, 8]
assert run.config["select"]["policy"] == "all" and run.flat_config()["task.train_max_len"] == 6
assert run.train_range() == (1, 6)
r0, r1 = run.rounds[0], run.rounds[1]
assert len(r0.candidates) == 0 and r0.scores == {} and len(r0.train["loss"]) == 50
assert r1.candidates[3] == "answer 3" and r1.prompts == ["prompt 0", "prompt 1", "prompt 2", "prompt 3"]
assert int(r1.selected.sum()) == 6 and r1.selected.dtype == bool
assert int((r1.correct == -1).sum()) == 1
assert sum(math.isnan(x) for x in r1.scores["majority"]) == 4
assert math.isnan(run.summary["label_accuracy"][0])
assert run.summary["label_accuracy"][1] == 0.5
assert abs(run.summary["label_accuracy"][2] - 8 / 9) < 1e-12
assert run.attrs["format"] == "autodidact-run" and run.attrs["seed"] == 1
EOF

# ---- plot_run.py ----
OUT="$TMP/plots"
if out=$("$PY" "$ANALYSIS/plot_run.py" "$RUN" -o "$OUT" 2>"$TMP/plot.err"); then
    ok "plot_run.py exits 0"
else
    fail "plot_run.py exits 0" "$(cat "$TMP/plot.err")"
fi
[ -s "$TMP/plot.err" ] && fail "plot_run.py prints no warnings" "$(cat "$TMP/plot.err")" \
    || ok "plot_run.py prints no warnings"
for name in accuracy_heatmap accuracy_by_length training_loss selection frontier; do
    png="$OUT/$name.png"
    if [ -s "$png" ] && [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] \
        && grep -qxF "$png" <<<"$out"; then
        ok "plot_run.py wrote and printed $name.png"
    else
        fail "plot_run.py wrote and printed $name.png" "$out"
    fi
done
check "plot_run.py refuses an output directory that is a file, before plotting" \
    bash -c "touch '$TMP/plots_file' && ! '$PY' '$ANALYSIS/plot_run.py' '$RUN' -o '$TMP/plots_file' \
             2>'$TMP/pf.err' && grep -q 'exists and is not a directory' '$TMP/pf.err'"
check "plot_run.py default directory is <run>_plots/" \
    bash -c "'$PY' '$ANALYSIS/plot_run.py' '$RUN' >/dev/null && [ -s '$TMP/base_plots/frontier.png' ]"

# ---- compare_runs.py ----
CMP="$TMP/cmp.png"
if out=$("$PY" "$ANALYSIS/compare_runs.py" "$RUN" "$RUN2" -o "$CMP" 2>&1) && [ -s "$CMP" ]; then
    ok "compare_runs.py writes the figure"
else
    fail "compare_runs.py writes the figure" "$out"
fi
if grep -q "select.policy" <<<"$out" && grep -q "oracle" <<<"$out" && grep -q "seed" <<<"$out" \
    && ! grep -q "run_file" <<<"$out" && ! grep -q "train.lr" <<<"$out"; then
    ok "compare_runs.py names the config keys that differ (and only those)"
else
    fail "compare_runs.py names the config keys that differ (and only those)" "$out"
fi
grep -q "length 7" <<<"$out" && ok "compare_runs.py default length is 7 (first beyond 1-6)" \
    || fail "compare_runs.py default length is 7 (first beyond 1-6)" "$out"
check "compare_runs.py --length 9" \
    "$PY" "$ANALYSIS/compare_runs.py" "$RUN" "$RUN2" --length 9 -o "$TMP/cmp9.png"

# ---- summary_table.py ----
# Expected cells (percent, one decimal) come from the ACC matrix written above.
row_has() { # row_has TEXT ROUND CELL...: the table row of ROUND has every CELL
    local text=$1 round=$2; shift 2
    local line
    line=$(grep -E "^\|? *$round( |\|)" <<<"$text" | head -1)
    [ -n "$line" ] || return 1
    for cell in "$@"; do grep -qE "(^|[ |])$cell( |\||$)" <<<"$line" || return 1; done
}
if md=$("$PY" "$ANALYSIS/summary_table.py" "$RUN" --markdown 2>&1); then
    ok "summary_table.py --markdown exits 0"
else
    fail "summary_table.py --markdown exits 0" "$md"
fi
row_has "$md" 0 "62.5" "30.0" "98.0" "100.0" && ok "markdown row 0 has its accuracies" \
    || fail "markdown row 0 has its accuracies" "$md"
row_has "$md" 2 "91.3" "60.0" "25.0" "5.0" && ok "markdown row 2 has its accuracies" \
    || fail "markdown row 2 has its accuracies" "$md"
[ "$(grep -c '^|' <<<"$md")" -eq 5 ] && grep -qE '^\|( *-+:? *\|)+$' <<<"$md" \
    && ok "markdown table has a header, a rule and 3 rows" \
    || fail "markdown table has a header, a rule and 3 rows" "$md"
if txt=$("$PY" "$ANALYSIS/summary_table.py" "$RUN" 2>&1) \
    && row_has "$txt" 1 "93.0" "55.0" "20.0" && ! grep -q '|' <<<"$txt"; then
    ok "plain table row 1 has its accuracies"
else
    fail "plain table row 1 has its accuracies" "$txt"
fi
row_has "$txt" 1 "7" "50.0" && row_has "$txt" 2 "8" "88.9" && row_has "$txt" 0 "1-6" "-" \
    && ok "plain table shows lengths and label accuracy (50.0, 88.9)" \
    || fail "plain table shows lengths and label accuracy (50.0, 88.9)" "$txt"

# who labelled the rounds follows rounds.teacher
grep -q "later rounds: self-labelled" <<<"$txt" && ok "plain table says the rounds are self-labelled" \
    || fail "plain table says the rounds are self-labelled" "$txt"
cp "$RUN" "$TMP/teacher_run.h5"
"$PY" - "$TMP/teacher_run.h5" <<'EOF'
import json, sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    config = json.loads(f["config"][()])
    config["rounds"] = {"teacher": "checkpoint", "teacher_path": "runs/stories260K.h5"}
    del f["config"]
    f.create_dataset("config", data=json.dumps(config), dtype=h5py.string_dtype("utf-8"))
EOF
if ttxt=$("$PY" "$ANALYSIS/summary_table.py" "$TMP/teacher_run.h5" 2>&1) \
    && grep -q "labelled by the teacher checkpoint runs/stories260K.h5" <<<"$ttxt" \
    && ! grep -q "self-labelled" <<<"$ttxt"; then
    ok "plain table names a checkpoint teacher"
else
    fail "plain table names a checkpoint teacher" "$ttxt"
fi

# ---- preference rounds: pairs/ and preference/ groups and the pair columns ----
PREF="$TMP/pref.h5"
cp "$RUN" "$PREF"
"$PY" - "$PREF" <<'EOF'
import sys, h5py, numpy as np
S = h5py.string_dtype("utf-8")
with h5py.File(sys.argv[1], "r+") as f:
    s = f["summary"]
    s.create_dataset("n_pairs", data=np.array([0, 3, 4], np.int64))
    s.create_dataset("pairs_dropped", data=np.array([0, 1, 0], np.int64))
    s.create_dataset("pair_accuracy", data=np.array([np.nan, 2 / 3, 1.0]))
    for r, q in ((1, 3), (2, 4)):
        g = f[f"rounds/{r:03d}"]
        p = g.create_group("pairs")
        for col in ("prompt", "chosen", "rejected"):
            p.create_dataset(col, data=[f"{col} {i}" for i in range(q)], dtype=S)
        for col in ("chosen_score", "rejected_score", "ref_logp_chosen", "ref_logp_rejected"):
            p.create_dataset(col, data=-np.arange(q, dtype=np.float64))
        for col in ("chosen_correct", "rejected_correct", "chosen_tokens", "rejected_tokens"):
            p.create_dataset(col, data=np.ones(q, np.int64))
        m = g.create_group("preference")
        steps = np.arange(1, 21, dtype=np.int64)
        m.create_dataset("step", data=steps)
        m.create_dataset("loss", data=np.log(2) * np.exp(-steps / 10))
        for col in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                    "logps/chosen", "logps/rejected"):
            m.create_dataset(col, data=np.linspace(0, 1, 20))
EOF
check "runfile.load reads the preference groups and pair columns" "$PY" - "$ANALYSIS" "$PREF" "$RUN" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import runfile
run = runfile.load(sys.argv[2])
assert run.has_pairs() and list(run.summary["n_pairs"]) == [0, 3, 4]
r1 = run.rounds[1]
assert len(r1.preference["rewards/margins"]) == 20 and r1.pairs["chosen"][2] == "chosen 2"
assert run.rounds[0].preference == {}
old = runfile.load(sys.argv[3])
assert not old.has_pairs() and "n_pairs" not in old.summary
EOF
if out=$("$PY" "$ANALYSIS/plot_run.py" "$PREF" -o "$TMP/pref_plots" 2>&1) \
    && [ -s "$TMP/pref_plots/preference.png" ] && [ -s "$TMP/pref_plots/pairs.png" ]; then
    ok "plot_run.py plots the preference curve and the pairs"
else
    fail "plot_run.py plots the preference curve and the pairs" "$out"
fi
[ ! -e "$OUT/preference.png" ] && ok "plot_run.py makes no preference plot without pairs" \
    || fail "plot_run.py makes no preference plot without pairs"

# ---- grpo rounds: rl/ and grpo/ groups ----
GRPO="$TMP/grpo.h5"
cp "$RUN" "$GRPO"
"$PY" - "$GRPO" <<'EOF'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    for r in (1, 2):
        g = f[f"rounds/{r:03d}"]
        n = len(g["candidate_prompt"])
        rl = g.create_group("rl")
        for col in ("reward", "advantage", "old_logp"):
            rl.create_dataset(col, data=np.linspace(-1, 1, n))
        rl.create_dataset("tokens", data=np.ones(n, np.int64))
        m = g.create_group("grpo")
        steps = np.arange(1, 11, dtype=np.int64)
        m.create_dataset("step", data=steps)
        for col in ("loss", "kl", "entropy", "ratio", "clip_ratio/low_mean", "clip_ratio/high_mean",
                    "clip_ratio/region_mean"):
            m.create_dataset(col, data=np.linspace(0, 0.1 * r, 10))
        for col, v in (("reward", 0.25 * r), ("reward_std", 0.4), ("frac_reward_zero_std", 0.5),
                       ("accuracy", 0.25 * r), ("completions/mean_length", 6.0)):
            m.create_dataset(col, data=np.array([v]))
EOF
check "runfile.load reads the grpo and rl groups" "$PY" - "$ANALYSIS" "$GRPO" "$RUN" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import runfile
run = runfile.load(sys.argv[2])
assert run.has_rl() and run.rounds[0].grpo == {}
r2 = run.rounds[2]
assert len(r2.grpo["clip_ratio/region_mean"]) == 10 and r2.grpo["reward"] == 0.5
assert len(r2.rl["advantage"]) == len(r2.candidate_prompt)
assert not runfile.load(sys.argv[3]).has_rl()
EOF
if out=$("$PY" "$ANALYSIS/plot_run.py" "$GRPO" -o "$TMP/grpo_plots" 2>&1) \
    && [ -s "$TMP/grpo_plots/rl.png" ]; then
    ok "plot_run.py plots the grpo curve"
else
    fail "plot_run.py plots the grpo curve" "$out"
fi
[ ! -e "$OUT/rl.png" ] && ok "plot_run.py makes no rl plot without grpo rounds" \
    || fail "plot_run.py makes no rl plot without grpo rounds"

# ---- errors: clear message, non-zero exit ----
"$PY" - "$TMP" <<'EOF'
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(d + "/other.h5", "w") as f:
    f.create_dataset("x", data=np.arange(3))
with h5py.File(d + "/ckpt.h5", "w") as f:
    f.attrs["format"] = "autodidact-checkpoint"
    f.attrs["format_version"] = np.int64(1)
EOF
cp "$RUN" "$TMP/newer.h5"
"$PY" -c "import h5py,numpy as np,sys; h5py.File(sys.argv[1],'a').attrs['format_version']=np.int64(2)" \
    "$TMP/newer.h5"
echo "not hdf5" >"$TMP/text.h5"
expect_error() { # expect_error NAME FILE PATTERN: every script fails on FILE saying PATTERN
    local name=$1 file=$2 pattern=$3 script
    for script in plot_run.py summary_table.py compare_runs.py; do
        local args=("$file")
        [ "$script" = summary_table.py ] || args+=(-o "$TMP/err_out")
        out=$("$PY" "$ANALYSIS/$script" "${args[@]}" 2>&1)
        rc=$?
        if [ $rc -ne 0 ] && grep -q -- "$pattern" <<<"$out" && ! grep -q Traceback <<<"$out"; then
            ok "$script: $name"
        else
            fail "$script: $name (exit $rc)" "$out"
        fi
    done
}
expect_error "non-run HDF5 file" "$TMP/other.h5" "not an autodidact run file"
expect_error "checkpoint" "$TMP/ckpt.h5" "autodidact-checkpoint"
expect_error "newer format_version" "$TMP/newer.h5" "format_version 2 is newer"
expect_error "not HDF5" "$TMP/text.h5" "not an HDF5 file"
expect_error "missing file" "$TMP/absent.h5" "no such file"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
