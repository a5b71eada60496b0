#!/bin/bash
# grpo_vs_expert_iteration.sh [BIN] [--set KEY=VALUE ...]: from one round 0 of reverse addition
# (experiments/grpo_vs_expert_iteration.json: 1..4 digits, so 5 is partly solved), four arms
# with the same budget of generated answers per round (rounds.prompts x generate.samples at
# 5..6 digits):
#   grpo     GRPO on the verifier's exact match (advantages / group std, mu 1, no KL)
#   rloo     RLOO: leave-one-out baseline, no std division
#   ei       expert iteration: SFT on the verified samples (train.steps updates)
#   self     self-labelling without a verifier: SFT on the majority answer (>= 60% of the
#            samples agree, right length, one per prompt)
# Round 0 runs once; the arms start from its checkpoint. Each arm prints its report and wall
# time. Writes runs/grpo_vs_ei_*.h5 and runs/grpo_vs_ei_compare.png. Extra --set arguments
# go to every run (e.g. a shorter smoke run: --set pretrain.steps=200 --set rounds.count=1).
set -eu
cd "$(dirname "$0")/.."
BIN=build/autodidact
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then BIN=$1; shift; fi
CFG=experiments/grpo_vs_expert_iteration.json
R0=runs/grpo_vs_ei_round0.h5
mkdir -p runs
timed() { # timed LABEL CMD...: runs CMD under nice, then prints its wall time
    local label=$1; shift
    local t0=$(date +%s.%N) rc=0
    nice -n 10 "$@" || rc=$?
    echo "$label: $(/usr/bin/python3 -c "print(f'{$(date +%s.%N) - $t0:.0f}')") s wall"
    return $rc
}
timed round0 "$BIN" run "$CFG" --quiet --overwrite --set run_file=$R0 --set rounds.count=0 "$@"
FROM=(--set model.init_from=$R0.ckpt/round_000.h5 --set pretrain.steps=0)
DONE=()
arm() { # arm NAME [--set ...]: an arm that fails (e.g. expert iteration with no verified
        # sample: "the example pool is empty") is reported and left out of the plot
    local name=$1; shift
    if timed "$name" "$BIN" run "$CFG" --quiet --overwrite --set run_file=runs/grpo_vs_ei_$name.h5 \
        "${FROM[@]}" "$@"; then DONE+=(runs/grpo_vs_ei_$name.h5); else echo "$name: failed"; fi
}
arm grpo "$@"
arm rloo --set rl.baseline=rloo --set rl.scale_rewards=false "$@"
arm ei --set train.objective=sft "$@"
arm self --set train.objective=sft --set select.policy=all --set select.scorer=majority \
    --set select.min_agreement=0.6 --set select.length_filter=true --set select.one_per_prompt=true "$@"
[ ${#DONE[@]} -gt 0 ] && /usr/bin/python3 analysis/compare_runs.py "${DONE[@]}" \
    -o runs/grpo_vs_ei_compare.png --length 5 >/dev/null
