#!/usr/bin/env bash
# Does self-supervised pre-training help where labels are scarce? The issue-6 experiment, side by side:
#   synthetic region, 3 tiles of 384 px -> monthly composites -> 432 patches of 32 px (12 months x 10 bands);
#   `s2crop pretrain` (SimSiam) on every patch's images, no labels;
#   `segment train` with the labels of LABEL_FRACTION (5 %) of the training patches of tiles 32TQT and 33TUM, held-out
#   tile 33UVP for validation, once from random initialisation and once from the pre-trained encoder, per seed (the
#   seed also draws which patches keep their labels: both runs of a seed see the same labelled patches);
#   score: mean IoU on the held-out tile after the last epoch (no model selection on the held-out tile).
# Prints one line per seed and the mean, paired difference and wins. Results go to bench/RESULTS.md by hand.
#   bench/pretrain_gain.sh [WORK_DIR]
#   env: SEEDS ("1 2 3 4 5") LABEL_FRACTION (0.05) PRE_EPOCHS (60) EPOCHS (150) ENCODER_LR (0.1) RANKS (2)
#        OBJECTIVE (pretrain --objective, dense) ENCODER (an encoder file to use instead of pre-training one)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
S2CROP="${S2CROP:-$ROOT/build/s2crop}"
WORK="${1:-$(mktemp -d /tmp/s2crop-pretrain-gain.XXXXXX)}"
SEEDS="${SEEDS:-1 2 3 4 5}" LABEL_FRACTION="${LABEL_FRACTION:-0.05}" PRE_EPOCHS="${PRE_EPOCHS:-60}"
EPOCHS="${EPOCHS:-150}" ENCODER_LR="${ENCODER_LR:-0.1}" RANKS="${RANKS:-2}" OBJECTIVE="${OBJECTIVE:-dense}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
run() { mpirun -np "$RANKS" "$S2CROP" "$@"; }
mkdir -p "$WORK"
cd "$WORK"

if [ ! -f patches.h5 ]; then
  run synth --out region --size 384 > synth.log 2>&1
  run composite --input region/stac --output comp.h5 > composite.log 2>&1
  run extract --composites comp.h5 --labels region/parcels.gpkg --output patches.h5 --patches 32 --min-labelled 0 \
    > extract.log 2>&1
fi
arch=(--depth 3 --width 16 --encoder plain --norm group)
if [ -z "${ENCODER:-}" ]; then
  ENCODER="$WORK/encoder-$OBJECTIVE.h5"
  if [ ! -f "$ENCODER" ]; then
    run pretrain --patches patches.h5 "${arch[@]}" --objective "$OBJECTIVE" --epochs "$PRE_EPOCHS" --batch-size 16 \
      --lr 3e-3 --threads 1 --output "$ENCODER" > "pretrain-$OBJECTIVE.log" 2>&1 || { tail -20 "pretrain-$OBJECTIVE.log"; exit 1; }
  fi
  grep -o "wrote .*" "pretrain-$OBJECTIVE.log" | tail -1 || true
fi
tag=$(basename "$ENCODER" .h5)-lr$ENCODER_LR

# The final held-out mean IoU of a training log.
final_iou() { grep -o "val mean IoU [0-9.]*" "$1" | tail -1 | awk '{print $4}'; }
common=(segment train --patches patches.h5 "${arch[@]}" --val-tiles 33UVP --label-fraction "$LABEL_FRACTION"
        --epochs "$EPOCHS" --val-every 25 --batch-size 4 --patience 0 --threads 1)
echo "labels of ${LABEL_FRACTION} of the training patches, held-out tile 33UVP, $EPOCHS epochs, $RANKS ranks;" \
     "pre-trained encoder $ENCODER fine-tuned at ${ENCODER_LR}x the learning rate"
printf "%-6s %-10s %-12s %-10s\n" seed random pretrained gain
: > "$tag.tsv"
for seed in $SEEDS; do
  # A random-init run of the same settings is kept from an earlier call (s2crop finds it already trained).
  run "${common[@]}" --seed "$seed" --output "random-$seed.h5" > "random-$seed.new.log" 2>&1 \
    || { tail -20 "random-$seed.new.log"; exit 1; }
  grep -q "nothing to do" "random-$seed.new.log" || mv "random-$seed.new.log" "random-$seed.log"
  run "${common[@]}" --seed "$seed" --init "$ENCODER" --encoder-lr "$ENCODER_LR" --output "$tag-$seed.h5" \
    --overwrite > "$tag-$seed.log" 2>&1 || { tail -20 "$tag-$seed.log"; exit 1; }
  r=$(final_iou "random-$seed.log") p=$(final_iou "$tag-$seed.log")
  printf "%s\t%s\t%s\n" "$seed" "$r" "$p" >> "$tag.tsv"
  printf "%-6s %-10s %-12s %+.4f\n" "$seed" "$r" "$p" "$(echo "$p - $r" | bc -l)"
done
awk -F'\t' '{r += $2; p += $3; d = $3 - $2; sd += d * d; if ($3 > $2) w++; n++}
  END {m = (p - r) / n; printf "mean   %-10.4f %-12.4f %+.4f  (pre-trained better in %d of %d seeds; sd of the gain %.4f)\n",
       r / n, p / n, m, w, n, sqrt(sd / n - m * m)}' "$tag.tsv"
