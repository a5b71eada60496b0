#!/usr/bin/python3
"""compare_runs.py: overlays several autodidact run files: the 90% frontier, the label
accuracy and the accuracy at one length, each by round. Runs are named by file name and
the config keys in which they differ (also printed). Plots of one run: plot_run.py.

    analysis/compare_runs.py runs/a.h5 runs/b.h5 [-o OUT.png] [--length L]
"""

import argparse
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

import runfile  # noqa: E402

IGNORED_KEYS = {"run_file"}  # differs between any two runs and says nothing about them
MAX_KEYS_IN_LEGEND = 4


def config_differences(runs):
    """Sorted config keys whose values are not the same in every run."""
    flat = [run.flat_config() for run in runs]
    keys = set().union(*flat) - IGNORED_KEYS
    return sorted(k for k in keys if len({repr(f.get(k, "-")) for f in flat}) > 1)


def short(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def labels(runs, keys):
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        names = [run.path for run in runs]
    out = []
    for name, run in zip(names, runs):
        flat = run.flat_config()
        diff = [f"{k}={short(flat.get(k, '-'))}" for k in keys[:MAX_KEYS_IN_LEGEND]]
        if len(keys) > MAX_KEYS_IN_LEGEND:
            diff.append("...")
        out.append(name + (": " + ", ".join(diff) if diff else ""))
    return out


def accuracy_at(run, length):
    """Accuracy by round at one evaluation length, or None when the grid lacks it."""
    col = np.flatnonzero(run.eval_lengths == length)
    return run.summary["eval_accuracy"][:, col[0]] if col.size else None


def main():
    ap = argparse.ArgumentParser(description="Overlay several autodidact run files.")
    ap.add_argument("runs", nargs="+", help="run files (.h5)")
    ap.add_argument("-o", "--out", help="output PNG (default: compare_runs.png beside the "
                                        "first run)")
    ap.add_argument("--length", type=int, help="length for the accuracy panel (default: the "
                                               "first length beyond the training range)")
    args = ap.parse_args()
    try:
        runs = [runfile.load_finished(path) for path in args.runs]
    except runfile.RunFileError as e:
        sys.exit(f"compare_runs.py: {e}")
    length = args.length
    if length is None:
        length = max(run.train_range()[1] for run in runs) + 1
    keys = config_differences(runs)
    names = labels(runs, keys)

    if keys:
        print("config keys that differ:")
        for key in keys:
            values = ", ".join(f"{run.name}={short(run.flat_config().get(key, '-'))}"
                               for run in runs)
            print(f"  {key}: {values}")
    else:
        print("the runs' configs are the same (apart from run_file)")

    legend_height = 0.25 * len(runs) + 0.3
    fig, (axes, below) = plt.subplots(2, 3, figsize=(15, 4.8 + legend_height),
                                      height_ratios=[4.8, legend_height], layout="constrained")
    for i, (run, name) in enumerate(zip(runs, names)):
        s = run.summary
        # earlier runs get bigger markers and wider lines so identical curves stay visible
        style = dict(marker="osD^v<>p"[i % 8], ms=4 + 2 * (len(runs) - 1 - i),
                     lw=1 + (len(runs) - 1 - i), color=f"C{i % 10}")
        axes[0].plot(s["round"], s["frontier_90"], label=name, **style)
        axes[1].plot(s["round"], s["label_accuracy"], **style)
        acc = accuracy_at(run, length)
        if acc is None:
            print(f"compare_runs.py: {run.path}: length {length} is not in its evaluation "
                  f"grid; left out of the accuracy panel", file=sys.stderr)
        else:
            axes[2].plot(s["round"], acc, **style)
    axes[0].set_ylabel("longest length with accuracy >= 90%\nat every length up to it")
    axes[0].set_title("90% frontier")
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_ylabel("share of selected candidates that are right")
    axes[1].set_title("label accuracy")
    axes[2].set_ylabel("exact-match accuracy")
    axes[2].set_title(f"accuracy at length {length}")
    last_round = max(run.rounds_complete for run in runs) - 1
    for ax in axes:
        ax.set_xlabel("round")
        ax.set_xlim(-0.3, max(last_round, 1) + 0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[1:]:
        ax.set_ylim(-0.03, 1.03)
    for ax in below[1:]:
        ax.remove()
    below[0].axis("off")
    below[0].legend(*axes[0].get_legend_handles_labels(), loc="upper left", fontsize=9,
                    frameon=False)
    out = args.out or os.path.join(os.path.dirname(args.runs[0]), "compare_runs.png")
    fig.savefig(out, dpi=110)
    print(f"accuracy panel: length {length}")
    print(out)


if __name__ == "__main__":
    main()
