#!/usr/bin/python3
"""summary_table.py: prints the accuracy-by-round-and-length table of an autodidact run
file, as aligned text or (--markdown) as a table to paste into a README. Accuracies are
percentages with one decimal; "-" marks a missing value. It draws nothing (plot_run.py does).

    analysis/summary_table.py runs/copy.h5 [--markdown]
"""

import argparse
import math
import sys

import runfile


def percent(x):
    return "-" if math.isnan(x) else f"{100 * x:.1f}"


def labeller(run):
    """Who labelled the later rounds' prompts, from rounds.teacher (default self)."""
    rounds = run.config.get("rounds", {})
    teacher = rounds.get("teacher", "self")
    if teacher == "checkpoint":
        return f"labelled by the teacher checkpoint {rounds.get('teacher_path', '?')}"
    if teacher == "snapshot":
        return "labelled by the student as it was at the start of the round"
    if teacher == "ema":
        return "labelled by an average (EMA) of the student's weights"
    return "self-labelled"


def table(run):
    """Header and rows (lists of strings) of the table."""
    s = run.summary
    header = ["round", "lengths", "label acc", "frontier"] + [str(x) for x in run.eval_lengths]
    rows = []
    for r in range(run.rounds_complete):
        lo, hi = s["length_lo"][r], s["length_hi"][r]
        rows.append([str(s["round"][r]), f"{lo}-{hi}" if lo != hi else str(lo),
                     percent(s["label_accuracy"][r]), str(s["frontier_90"][r])]
                    + [percent(x) for x in s["eval_accuracy"][r]])
    return header, rows


def main():
    ap = argparse.ArgumentParser(description="Print the accuracy by round and length.")
    ap.add_argument("run", help="run file (.h5)")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args()
    try:
        run = runfile.load_finished(args.run)
    except runfile.RunFileError as e:
        sys.exit(f"summary_table.py: {e}")
    lo, hi = run.train_range()
    print(f"{run.name}: exact-match accuracy (%) by round (rows) and length (columns).")
    print(f"lengths: the round's prompt lengths (round 0: ground truth {lo}-{hi}; later "
          f"rounds: {labeller(run)}); label acc: selected labels that are right (%); "
          f"frontier: longest length with >= 90% at every length up to it.")
    print()
    header, rows = table(run)
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" if i == 1 else "---:" for i in range(len(header))) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
        for row in [header] + rows:
            print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))


if __name__ == "__main__":
    main()
