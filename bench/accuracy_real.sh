#!/usr/bin/env bash
# Accuracy on real labelled Sentinel-2 series: every model a user can pick, on tile-disjoint splits, 5 seeds each.
#
#   bash bench/accuracy_real.sh            (S2CROP=build/s2crop, SEEDS="1 2 3 4 5", THREADS=1, OUT=/tmp/...)
#
# Sets (what ../shared/data holds that has both real L2A series and crop labels):
#   worldcereal  ESA WorldCereal public extractions: 500 points, 12 monthly composites from 2016-12, 9 tiles in South
#                Sudan / Uganda; train on 7 tiles, test on 36NWL + 36NXF (the README's suggestion), 6 classes
#                (scripts/worldcereal_training_set.py). A second split holds out the largest tile, 36NXJ.
# Models (the default command line of each, nothing tuned per set):
#   lstm         s2crop train                (today's default: on small sets an ensemble of 5, series augmentation,
#                                             no class weights: --ensemble/--augment/--class-weights auto)
#   lstm-single  s2crop train --ensemble 1 --augment false --class-weights sqrt   (the default before issue 16)
#   rf           s2crop train --model rf              (500 trees, OpenCV RTrees)
# Prints per model the mean OA / macro-F1 / kappa over the seeds with their range, and writes
# $OUT/<set>/compare.md: the seed-1 models through assess --compare (95 % bootstrap intervals, paired).
# Skips (exit 0, saying so) when ../shared/data is absent.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
S2CROP="${S2CROP:-$ROOT/build/s2crop}"
DATA="${SHARED_DATA:-$ROOT/../shared/data}"
SEEDS="${SEEDS:-1 2 3 4 5}"
THREADS="${THREADS:-1}"
OUT="${OUT:-$(mktemp -d /tmp/s2crop-accuracy.XXXXXX)}"
mkdir -p "$OUT"
PY=/usr/bin/python3
WC_CSV="$DATA/worldcereal_public_extractions/worldcereal_public_extractions.csv"
if [ ! -f "$WC_CSV" ]; then
  echo "accuracy_real: SKIP: no real labelled set found ($WC_CSV missing; ../shared/data lives beside the clone)"
  exit 0
fi
[ -x "$S2CROP" ] || { echo "accuracy_real: $S2CROP not built" >&2; exit 1; }

declare -A MODEL_ARGS=(
  [lstm]=""
  [lstm-single]="--ensemble 1 --augment false --class-weights sqrt"
  [rf]="--model rf"
)
MODELS="lstm lstm-single rf"

run_set() {  # name set.h5 train_tiles test_tiles
  local name=$1 set=$2 train=$3 test=$4 dir="$OUT/$1"
  mkdir -p "$dir"
  echo "== $name: train on $train, test on $test; seeds $SEEDS; $(date -u +%FT%TZ)"
  for model in $MODELS; do
    for seed in $SEEDS; do
      local m="$dir/$model-$seed.h5"
      # shellcheck disable=SC2086
      "$S2CROP" train --samples "$set" --tiles "$train" --seed "$seed" --threads "$THREADS" --overwrite \
        ${MODEL_ARGS[$model]} --output "$m" > "$dir/$model-$seed.train.log" 2>&1 \
        || { tail -20 "$dir/$model-$seed.train.log"; exit 1; }
      "$S2CROP" assess --model "$m" --samples "$set" --tiles "$test" --output-dir "$dir/$model-$seed" \
        > "$dir/$model-$seed.assess.log" 2>&1 || { cat "$dir/$model-$seed.assess.log"; exit 1; }
    done
  done
  "$PY" - "$dir" "$SEEDS" $MODELS <<'PY'
import json, sys
import numpy as np
d, seeds, models = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
print(f"| model | OA mean (range) | macro-F1 mean (range) | kappa mean | seeds |")
print("|---|---|---|---|---|")
for m in models:
    r = [json.load(open(f"{d}/{m}-{s}/accuracy.json")) for s in seeds]
    oa = np.array([x["overall_accuracy"] for x in r]); f1 = np.array([x["macro_f1"] for x in r])
    ka = np.array([x["kappa"] for x in r])
    print(f"| {m} | {oa.mean():.3f} ({oa.min():.3f}-{oa.max():.3f}) | {f1.mean():.3f} ({f1.min():.3f}-{f1.max():.3f}) "
          f"| {ka.mean():.3f} | {len(seeds)} |")
PY
  local first=${SEEDS%% *} list=""
  for model in $MODELS; do list="$list${list:+,}$dir/$model-$first.h5"; done
  "$S2CROP" assess --compare "$list" --samples "$set" --tiles "$test" --output-dir "$dir" > "$dir/compare.log" 2>&1 \
    || { cat "$dir/compare.log"; exit 1; }
  grep "minus" "$dir/compare.log" | sed 's/^.*assess: /  seed '"$first"': /'
  echo "  (intervals: $dir/compare.md)"
}

"$PY" "$ROOT/scripts/worldcereal_training_set.py" "$WC_CSV" "$OUT/worldcereal.h5"
run_set worldcereal "$OUT/worldcereal.h5" 36NWH,36NWJ,36NWK,36NXH,36NXJ,36NXK,36NXL 36NWL,36NXF
# A second tile-disjoint split: the largest tile (146 points) held out, the rest trained on.
run_set worldcereal-36NXJ "$OUT/worldcereal.h5" 36NWH,36NWJ,36NWK,36NWL,36NXF,36NXH,36NXK,36NXL 36NXJ
echo "accuracy_real: done ($OUT)"
