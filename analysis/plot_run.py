#!/usr/bin/python3
"""plot_run.py: the plots of one autodidact run file (accuracy heatmap and curves by
length, training curves, selection quality, the 90% frontier), as PNGs in <run>_plots/.
Reads the file through runfile.py; it does not compare runs (compare_runs.py does).

    analysis/plot_run.py runs/copy.h5 [-o OUTDIR]
"""

import argparse
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

import runfile  # noqa: E402

TRAIN_COLOUR = "tab:red"    # ground-truth training lengths (round 0)
LABEL_COLOUR = "tab:orange"  # self-labelled lengths of rounds >= 1


def round_colours(n):
    return plt.cm.viridis(np.linspace(0.0, 0.9, n))


def legend_right(ax, run):
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              ncol=2 if run.rounds_complete > 16 else 1)


def mark_train_range(ax, run):
    lo, hi = run.train_range()
    ax.axvspan(lo - 0.5, hi + 0.5, color="0.9", zorder=0, label=f"training lengths {lo}-{hi}")


def integer_rounds(ax, run):
    ax.set_xlabel("round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(-0.3, max(run.rounds_complete - 1, 1) + 0.3)


def heatmap(run, ax):
    acc = 100 * run.summary["eval_accuracy"]
    lengths, R, E = run.eval_lengths, acc.shape[0], acc.shape[1]
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("0.85")  # a length without an evaluation
    im = ax.imshow(np.ma.masked_invalid(acc), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    ax.figure.colorbar(im, ax=ax, label="exact-match accuracy (%)")
    size = 9 if E <= 16 else 7
    for r in range(R):
        for e in range(E):
            v = acc[r, e]
            ax.text(e, r, "-" if np.isnan(v) else f"{v:.0f}", ha="center", va="center",
                    fontsize=size, color="white" if v < 60 else "black")
        lo, hi = run.summary["length_lo"][r], run.summary["length_hi"][r]
        cols = np.flatnonzero((lengths >= lo) & (lengths <= hi))
        if cols.size:
            ax.add_patch(Rectangle((cols[0] - 0.5, r - 0.5), cols[-1] - cols[0] + 1, 1,
                                   fill=False, lw=2.5,
                                   edgecolor=TRAIN_COLOUR if r == 0 else LABEL_COLOUR))
    ax.set_xticks(range(E), [str(x) for x in lengths])
    ax.set_yticks(range(R), [str(x) for x in run.summary["round"]])
    ax.set_xlabel("length")
    ax.set_ylabel("round")
    ax.set_title(f"{run.name}: accuracy (%) by round and length", pad=24)
    lo, hi = run.train_range()
    ax.legend(handles=[Patch(fill=False, edgecolor=TRAIN_COLOUR, lw=2,
                             label=f"round 0 ground-truth lengths ({lo}-{hi})"),
                       Patch(fill=False, edgecolor=LABEL_COLOUR, lw=2,
                             label="lengths the round labelled itself")],
              loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8,
              frameon=False)


def accuracy_curves(run, ax):
    mark_train_range(ax, run)
    for r, colour in enumerate(round_colours(run.rounds_complete)):
        ax.plot(run.eval_lengths, run.summary["eval_accuracy"][r], "o-", ms=3, color=colour,
                label=f"round {run.summary['round'][r]}")
    ax.set_xlabel("length")
    ax.set_ylabel("exact-match accuracy")
    ax.set_ylim(-0.03, 1.03)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{run.name}: accuracy by length after each round")
    legend_right(ax, run)
    ax.grid(alpha=0.3)


def training_curves(run, ax):
    for r, colour in zip(run.rounds, round_colours(run.rounds_complete)):
        step, loss = r.train["step"], r.train["loss"]
        keep = loss > 0
        if keep.any():
            ax.plot(step[keep], loss[keep], color=colour, label=f"round {r.attrs['round']}")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (log scale)")
    ax.set_title(f"{run.name}: training loss in each round")
    legend_right(ax, run)
    ax.grid(alpha=0.3, which="both")


def selection(run, ax):
    rounds, s = run.summary["round"], run.summary
    ax.plot(rounds, s["acceptance"], "s-", ms=8, label="acceptance (selected / candidates)")
    ax.plot(rounds, s["label_accuracy"], "o-", label="label accuracy (selected that are right)")
    ax.plot(rounds, s["candidate_accuracy"], "^--", label="candidate accuracy (all candidates)")
    if s["n_candidates"][0] == 0:
        ax.text(rounds[0], 0.5, "ground truth,\nno selection", ha="center", fontsize=8,
                color="0.4")
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("share")
    integer_rounds(ax, run)
    ax.set_title(f"{run.name}: selection by round")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def preference(run, ax):
    """TRL's reward margins (solid) and reward accuracies (dashed) over the updates of each
    preference round, one after another on a shared step axis."""
    offset = 0
    for r, colour in zip(run.rounds, round_colours(run.rounds_complete)):
        p = r.preference
        if not p or len(p["step"]) == 0:
            continue
        x = offset + p["step"]
        ax.plot(x, p["rewards/margins"], color=colour, label=f"round {r.attrs['round']} margin")
        ax.plot(x, p["rewards/accuracies"], "--", color=colour, alpha=0.7)
        offset = x[-1]
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("preference update (rounds one after another)")
    ax.set_ylabel("rewards/margins (solid), rewards/accuracies (dashed)")
    ax.set_title(f"{run.name}: preference training")
    legend_right(ax, run)
    ax.grid(alpha=0.3)


def rl(run, ax):
    """grpo rounds: TRL's kl (solid) and clip_ratio/region_mean (dashed) over the updates of
    each round, one after another on a shared step axis; the legend gives each round's mean
    reward and share of groups with zero advantage."""
    offset = 0
    for r, colour in zip(run.rounds, round_colours(run.rounds_complete)):
        g = r.grpo
        if not g or len(g["step"]) == 0:
            continue
        x = offset + g["step"]
        ax.plot(x, g["kl"], color=colour, label=f"round {r.attrs['round']}: reward "
                f"{g['reward']:.2f}, {100 * g['frac_reward_zero_std']:.0f}% flat groups")
        ax.plot(x, g["clip_ratio/region_mean"], "--", color=colour, alpha=0.7)
        offset = x[-1]
    ax.set_xlabel("RL update (rounds one after another)")
    ax.set_ylabel("kl (solid), clip_ratio/region_mean (dashed)")
    ax.set_title(f"{run.name}: RL training")
    legend_right(ax, run)
    ax.grid(alpha=0.3)


def pairs(run, ax):
    s, rounds = run.summary, run.summary["round"]
    ax.bar(rounds - 0.2, s["n_pairs"], width=0.4, label="pairs")
    ax.bar(rounds + 0.2, s["pairs_dropped"], width=0.4, label="prompts dropped (no usable pair)")
    ax.set_ylabel("count")
    integer_rounds(ax, run)
    acc = ax.twinx()
    acc.plot(rounds, s["pair_accuracy"], "ko-", label="pair accuracy (chosen right, rejected wrong)")
    acc.set_ylim(-0.03, 1.03)
    acc.set_ylabel("pair accuracy")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = acc.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8)
    ax.set_title(f"{run.name}: preference pairs by round")
    ax.grid(alpha=0.3)


def frontier(run, ax):
    ax.plot(run.summary["round"], run.summary["frontier_90"], "o-", label="frontier_90")
    hi = run.train_range()[1]
    ax.axhline(hi, color="0.5", ls="--", label=f"longest training length ({hi})")
    ax.set_ylabel("longest length with accuracy >= 90%\nat every length up to it")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    integer_rounds(ax, run)
    ax.set_title(f"{run.name}: 90% frontier by round")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def check_outdir(outdir):
    """Why outdir cannot receive the plots (None if it can): checked before any work."""
    if os.path.exists(outdir):
        if not os.path.isdir(outdir):
            return f"{outdir} exists and is not a directory"
        return None if os.access(outdir, os.W_OK | os.X_OK) else f"{outdir} is not writable"
    parent = os.path.dirname(os.path.abspath(outdir))
    while not os.path.exists(parent):  # os.makedirs creates the missing ones
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"cannot create {outdir}: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {outdir}: {parent} is not writable"
    return None


def main():
    ap = argparse.ArgumentParser(description="Plot one autodidact run file.")
    ap.add_argument("run", help="run file (.h5)")
    ap.add_argument("-o", "--outdir", help="output directory (default: <run>_plots/)")
    args = ap.parse_args()
    outdir = args.outdir or os.path.splitext(args.run)[0] + "_plots"
    why = check_outdir(outdir)
    if why:
        sys.exit(f"plot_run.py: {why}")
    try:
        run = runfile.load_finished(args.run)
    except runfile.RunFileError as e:
        sys.exit(f"plot_run.py: {e}")
    os.makedirs(outdir, exist_ok=True)
    R, E = run.summary["eval_accuracy"].shape
    plots = [("accuracy_heatmap", heatmap, (max(6, 0.55 * E + 2.5), max(3, 0.45 * R + 2.2))),
             ("accuracy_by_length", accuracy_curves, (7, 4.5)),
             ("training_loss", training_curves, (7, 4.5)),
             ("selection", selection, (7, 4.5)),
             ("frontier", frontier, (7, 4.5))]
    if run.has_pairs():
        plots += [("preference", preference, (8, 4.5)), ("pairs", pairs, (7, 4.5))]
    if run.has_rl():
        plots += [("rl", rl, (8, 4.5))]
    for name, draw, size in plots:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
        draw(run, ax)
        path = os.path.join(outdir, name + ".png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        print(path)


if __name__ == "__main__":
    main()
