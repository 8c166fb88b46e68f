#!/usr/bin/env bash
# Does self-supervised pre-training help where labels are scarce? The issue-6 experiment, side by side:
#   synthetic region, 3 tiles of 384 px -> monthly composites -> 432 patches of 32 px (12 months x 10 bands);
#   `s2crop pretrain` (dense: per-pixel VICReg + masked-month reconstruction) on every patch's images, no labels;
#   `segment train` with the labels of LABEL_FRACTION (5 %) of the training patches of tiles 32TQT and 33TUM, held-out
#   tile 33UVP for validation, once from random initialisation and once from the pre-trained encoder and decoder, per
#   seed (the seed also draws which patches keep their labels: both runs of a seed see the same labelled patches);
#   score: mean IoU on the held-out tile after the last epoch (no model selection on the held-out tile).
# Prints one line per seed, then the means, the paired gain with its standard error, and the wins. Results go to
# bench/RESULTS.md by hand.
#   bench/pretrain_gain.sh [WORK_DIR]
#   env: SEEDS (1..16) LABEL_FRACTION (0.05) PRE_EPOCHS (60) PRE_SEED (42) EPOCHS (150) ENCODER_LR (1) RANKS (1 per
#        fine-tuning run; global batch 8 whatever RANKS) JOBS (fine-tuning runs at a time, 2)
#        OBJECTIVE (pretrain --objective, dense) PRETRAIN_ARGS (more pretrain options, e.g. "--reconstruction 0")
#        ENCODER (a pre-trained file to use instead of pre-training one)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
S2CROP="${S2CROP:-$ROOT/build/s2crop}"
WORK="${1:-$(mktemp -d /tmp/s2crop-pretrain-gain.XXXXXX)}"
SEEDS="${SEEDS:-$(seq -s ' ' 1 16)}" LABEL_FRACTION="${LABEL_FRACTION:-0.05}" PRE_EPOCHS="${PRE_EPOCHS:-60}"
PRE_SEED="${PRE_SEED:-42}" EPOCHS="${EPOCHS:-150}" ENCODER_LR="${ENCODER_LR:-1}" RANKS="${RANKS:-1}"
JOBS="${JOBS:-2}" OBJECTIVE="${OBJECTIVE:-dense}" PRETRAIN_ARGS="${PRETRAIN_ARGS:-}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
run() { mpirun -np "$RANKS" "$S2CROP" "$@"; }
mkdir -p "$WORK"
cd "$WORK"

if [ ! -f patches.h5 ]; then
  mpirun -np 2 "$S2CROP" synth --out region --size 384 > synth.log 2>&1
  mpirun -np 2 "$S2CROP" composite --input region/stac --output comp.h5 > composite.log 2>&1
  mpirun -np 2 "$S2CROP" extract --composites comp.h5 --labels region/parcels.gpkg --output patches.h5 --patches 32 \
    --min-labelled 0 > extract.log 2>&1
fi
arch=(--depth 3 --width 16 --encoder plain --norm group)
if [ -z "${ENCODER:-}" ]; then
  name="encoder-$OBJECTIVE-e$PRE_EPOCHS-s$PRE_SEED$(echo "$PRETRAIN_ARGS" | tr -d ' -')"
  ENCODER="$WORK/$name.h5"
  if [ ! -f "$ENCODER" ]; then
    # shellcheck disable=SC2086
    mpirun -np 2 "$S2CROP" pretrain --patches patches.h5 "${arch[@]}" --objective "$OBJECTIVE" --epochs "$PRE_EPOCHS" \
      --batch-size 16 --lr 3e-3 --threads 1 --seed "$PRE_SEED" $PRETRAIN_ARGS --output "$ENCODER" > "$name.log" 2>&1 \
      || { tail -20 "$name.log"; exit 1; }
  fi
  grep -o "wrote .*" "$name.log" | tail -1 || true
fi
tag=$(basename "$ENCODER" .h5)-lr$ENCODER_LR-e$EPOCHS-lf$LABEL_FRACTION

# The final held-out mean IoU of a training log.
final_iou() { grep -o "val mean IoU [0-9.]*" "$1" | tail -1 | awk '{print $4}'; }
common=(segment train --patches patches.h5 "${arch[@]}" --val-tiles 33UVP --label-fraction "$LABEL_FRACTION"
        --epochs "$EPOCHS" --val-every 50 --batch-size $((8 / RANKS)) --patience 0 --threads 1)
# One fine-tuning run, unless an earlier call of the same settings finished it (random-init runs are shared by every
# pre-trained file compared).
finetune() {
  local name=$1; shift
  [ -f "$name.done" ] && return 0
  run "${common[@]}" "$@" --output "$name.h5" --overwrite > "$name.log" 2>&1 || { tail -20 "$name.log"; return 1; }
  touch "$name.done"
}
for seed in $SEEDS; do
  finetune "random-e$EPOCHS-lf$LABEL_FRACTION-r$RANKS-$seed" --seed "$seed" &
  while [ "$(jobs -r | wc -l)" -ge "$JOBS" ]; do wait -n; done
  finetune "$tag-r$RANKS-$seed" --seed "$seed" --init "$ENCODER" --encoder-lr "$ENCODER_LR" &
  while [ "$(jobs -r | wc -l)" -ge "$JOBS" ]; do wait -n; done
done
wait
echo "labels of ${LABEL_FRACTION} of the training patches, held-out tile 33UVP, $EPOCHS epochs, $RANKS rank(s) per run;" \
     "pre-trained $ENCODER fine-tuned at ${ENCODER_LR}x the learning rate"
printf "%-6s %-10s %-12s %-10s\n" seed random pretrained gain
: > "$tag.tsv"
for seed in $SEEDS; do
  r=$(final_iou "random-e$EPOCHS-lf$LABEL_FRACTION-r$RANKS-$seed.log") p=$(final_iou "$tag-r$RANKS-$seed.log")
  [ -n "$r" ] && [ -n "$p" ] || { echo "seed $seed: a run did not finish (see $WORK)"; exit 1; }
  printf "%s\t%s\t%s\n" "$seed" "$r" "$p" >> "$tag.tsv"
  printf "%-6s %-10s %-12s %+.4f\n" "$seed" "$r" "$p" "$(echo "$p - $r" | bc -l)"
done
awk -F'\t' '{r += $2; p += $3; d = $3 - $2; sd += d * d; if ($3 > $2) w++; n++}
  END {m = (p - r) / n; s = sqrt((sd - n * m * m) / (n - 1)); se = s / sqrt(n);
       printf "mean   %-10.4f %-12.4f %+.4f  (paired: sd %.4f, standard error %.4f, t %.2f; pre-trained better in %d of %d seeds)\n",
       r / n, p / n, m, s, se, m / se, w, n}' "$tag.tsv"
