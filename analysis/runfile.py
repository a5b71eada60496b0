#!/usr/bin/python3
"""runfile.py: reads an autodidact run file (docs/RUNFILE.md, format "autodidact-run",
version 1) into plain numpy arrays and dicts for the plotting and table scripts.
It only reads (the writer replaces the file atomically, so no SWMR), and it does not
repair damaged files: a missing object is an error that names it.

    import runfile
    run = runfile.load("runs/copy.h5")
    run.summary["eval_accuracy"]     # (R, E) float64
    run.rounds[1].scores["majority"] # (n) float32, NaN where not applicable
"""

import json
import os

import h5py
import numpy as np

FORMAT = "autodidact-run"
VERSION = 1

SUMMARY_COLUMNS = (
    "round", "length_lo", "length_hi", "n_prompts", "n_candidates", "n_selected",
    "acceptance", "label_accuracy", "candidate_accuracy", "train_examples", "train_steps",
    "train_loss", "eval_accuracy", "eval_loss", "frontier_90", "time_generate", "time_score",
    "time_train", "time_eval", "time_total", "gen_tokens_per_s", "train_tokens_per_s")
# columns added after version 1 first shipped (absent from older files): preference pairs, write time
LATER_SUMMARY_COLUMNS = ("n_pairs", "pairs_dropped", "pair_accuracy", "time_write")
# TRL DPOTrainer metric names, stored as paths under /rounds/NNN/preference/
PREFERENCE_METRICS = ("step", "loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
                      "rewards/accuracies", "logps/chosen", "logps/rejected")
# grpo rounds: TRL GRPOTrainer metric names under /rounds/NNN/grpo/ (curve: one value an
# update; round: one value a round) and the samples under /rounds/NNN/rl/
RL_CURVE_METRICS = ("step", "loss", "kl", "entropy", "ratio", "clip_ratio/low_mean",
                    "clip_ratio/high_mean", "clip_ratio/region_mean")
RL_ROUND_METRICS = ("reward", "reward_std", "frac_reward_zero_std", "accuracy",
                    "completions/mean_length")
RL_COLUMNS = ("reward", "advantage", "old_logp", "tokens")
PAIR_COLUMNS = ("chosen_score", "rejected_score", "chosen_correct", "rejected_correct",
                "ref_logp_chosen", "ref_logp_rejected", "chosen_tokens", "rejected_tokens")
CANDIDATE_COLUMNS = ("prompt_length", "candidate_prompt", "candidate_sample",
                     "candidate_ended", "selected", "correct")
TRAIN_COLUMNS = ("step", "loss", "lr", "grad_norm", "tokens_per_s")
EVAL_COLUMNS = ("length", "accuracy", "loss", "n")


class RunFileError(Exception):
    """The file is missing, is not a run file, or lacks an object docs/RUNFILE.md promises."""


class Round:
    """One /rounds/NNN group. Candidate arrays have length n (0 in round 0), prompt arrays
    length p; selected is bool, correct int8 (1 right, 0 wrong, -1 unknown)."""

    def __init__(self):
        self.attrs = {}          # round, length_lo, length_hi, teacher, timings, ...
        self.prompts = []        # (p) str; empty unless loaded with candidates=True
        self.candidates = []     # (n) str; empty unless loaded with candidates=True
        self.prompt_length = self.candidate_prompt = self.candidate_sample = None
        self.candidate_ended = self.selected = self.correct = None
        self.scores = {}         # scorer name -> (n) float32
        self.train = {}          # step, loss, lr, grad_norm, tokens_per_s: (steps)
        self.eval = {}           # length, accuracy, loss, n: (E)
        self.preference = {}     # preference rounds: TRL metric name -> (steps); else empty
        self.grpo = {}           # grpo rounds: RL_CURVE_METRICS -> (updates), RL_ROUND_METRICS
                                 # -> float; else empty
        self.rl = {}             # grpo rounds: RL_COLUMNS -> (n)
        self.pairs = {}          # preference rounds: PAIR_COLUMNS -> (q), and with
                                 # candidates=True "prompt", "chosen", "rejected" (q) str


class Run:
    """A whole run file. summary columns have rounds_complete rows."""

    def __init__(self, path):
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        self.attrs = {}
        self.config = {}            # the resolved config, parsed
        self.config_original = ""
        self.eval_lengths = None    # (E) int64
        self.rounds_complete = 0
        self.summary = {}           # column -> (R) or (R, E) array
        self.rounds = []            # Round per finished round

    def train_range(self):
        """(lo, hi): the ground-truth lengths of round 0."""
        return int(self.summary["length_lo"][0]), int(self.summary["length_hi"][0])

    def has_pairs(self):
        """True when some round trained on preference pairs."""
        return any(r.preference for r in self.rounds)

    def has_rl(self):
        """True when some round was a grpo round."""
        return any(r.grpo for r in self.rounds)

    def flat_config(self):
        """The resolved config as {"dotted.key": value}."""
        return flatten(self.config)


def flatten(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, prefix + key + "."))
        else:
            out[prefix + key] = value
    return out


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _attrs(obj):
    out = {}
    for key, value in obj.attrs.items():
        value = _text(value)
        out[key] = value.item() if isinstance(value, np.generic) else value
    return out


def _get(group, name, path):
    if name not in group:
        where = (group.name.rstrip("/") + "/" + name)
        raise RunFileError(f"{path}: {where} is missing (the file does not follow "
                           f"docs/RUNFILE.md version {VERSION})")
    return group[name]


def _strings(dataset, path):
    try:
        value = dataset.asstr()[()]
    except TypeError:
        raise RunFileError(f"{path}: {dataset.name} should hold strings, "
                           f"holds {dataset.dtype}") from None
    return value if isinstance(value, str) else [str(v) for v in value]


def _check_format(f, path):
    if "format" not in f.attrs:
        raise RunFileError(f"{path}: an HDF5 file but not an autodidact run file "
                           f"(no 'format' attribute at the root)")
    fmt = _text(f.attrs["format"])
    if fmt != FORMAT:
        hint = (" (a model checkpoint: pass the run's .h5 file, not a file from its .ckpt "
                "directory)" if fmt == "autodidact-checkpoint" else "")
        raise RunFileError(f"{path}: not an autodidact run file: format is '{fmt}', "
                           f"expected '{FORMAT}'{hint}")
    version = f.attrs.get("format_version")
    if version is None or np.ndim(version) != 0 or not np.issubdtype(np.asarray(version).dtype,
                                                                       np.integer):
        raise RunFileError(f"{path}: format_version is missing or not an integer")
    version = int(version)
    if version > VERSION:
        writer = _text(f.attrs.get("program_version", "unknown"))
        raise RunFileError(f"{path}: format_version {version} is newer than this reader "
                           f"understands ({VERSION}); the file was written by autodidact "
                           f"{writer}: use the analysis/ scripts of that version")
    if version < 1:
        raise RunFileError(f"{path}: invalid format_version {version}")


def _load_round(group, path, with_candidates):
    r = Round()
    r.attrs = _attrs(group)
    for col in CANDIDATE_COLUMNS:
        setattr(r, col, _get(group, col, path)[()])
    r.selected = r.selected.astype(bool)
    if with_candidates:
        r.prompts = _strings(_get(group, "prompts", path), path)
        r.candidates = _strings(_get(group, "candidates", path), path)
    scores = _get(group, "scores", path)
    r.scores = {name: scores[name][()] for name in scores}
    train, ev = _get(group, "train", path), _get(group, "eval", path)
    r.train = {col: _get(train, col, path)[()] for col in TRAIN_COLUMNS}
    r.eval = {col: _get(ev, col, path)[()] for col in EVAL_COLUMNS}
    if "grpo" in group:
        g, rl = group["grpo"], _get(group, "rl", path)
        r.grpo = {col: _get(g, col, path)[()] for col in RL_CURVE_METRICS}
        r.grpo.update({col: float(_get(g, col, path)[0]) for col in RL_ROUND_METRICS})
        r.rl = {col: _get(rl, col, path)[()] for col in RL_COLUMNS}
    if "preference" in group:
        pref = group["preference"]
        r.preference = {col: _get(pref, col, path)[()] for col in PREFERENCE_METRICS}
        pairs = _get(group, "pairs", path)
        r.pairs = {col: _get(pairs, col, path)[()] for col in PAIR_COLUMNS}
        if with_candidates:
            for col in ("prompt", "chosen", "rejected"):
                r.pairs[col] = _strings(_get(pairs, col, path), path)
    return r


def load(path, candidates=True):
    """Reads the run file at path. candidates=False skips the prompt and answer strings
    (the largest part of a long run). Raises RunFileError with a message naming the file."""
    if not os.path.exists(path):
        raise RunFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise RunFileError(f"{path}: is a directory, not a run file")
    if not h5py.is_hdf5(path):
        raise RunFileError(f"{path}: not an HDF5 file (a run file is the .h5 that "
                           f"'autodidact run' writes, e.g. runs/<name>.h5)")
    run = Run(path)
    try:
        with h5py.File(path, "r") as f:
            _check_format(f, path)
            run.attrs = _attrs(f)
            R = run.rounds_complete = int(run.attrs.get("rounds_complete", 0))
            try:
                run.config = json.loads(_strings(_get(f, "config", path), path))
            except json.JSONDecodeError as e:
                raise RunFileError(f"{path}: /config is not valid JSON: {e}") from None
            run.config_original = _strings(_get(f, "config_original", path), path)
            run.eval_lengths = _get(f, "eval_lengths", path)[()]
            summary = _get(f, "summary", path)
            for col in SUMMARY_COLUMNS:
                data = _get(summary, col, path)
                if data.shape[0] < R:
                    raise RunFileError(f"{path}: /summary/{col} has {data.shape[0]} rows, "
                                       f"rounds_complete is {R}")
                run.summary[col] = data[:R]
            for col in LATER_SUMMARY_COLUMNS:  # optional: absent from older files
                if col in summary:
                    run.summary[col] = summary[col][:R]
            E = len(run.eval_lengths)
            if run.summary["eval_accuracy"].shape[1:] != (E,):
                raise RunFileError(f"{path}: /summary/eval_accuracy has shape "
                                   f"{run.summary['eval_accuracy'].shape}, expected ({R}, {E})")
            rounds = _get(f, "rounds", path)
            run.rounds = [_load_round(_get(rounds, f"{i:03d}", path), path, candidates)
                          for i in range(R)]
    except OSError as e:
        raise RunFileError(f"{path}: cannot read: {e}") from None
    return run


def load_finished(path, candidates=False):
    """load(), and an error when no round has finished yet (nothing to plot)."""
    run = load(path, candidates)
    if run.rounds_complete < 1:
        raise RunFileError(f"{path}: no finished round yet")
    return run
