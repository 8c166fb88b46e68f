#!/usr/bin/env bash
# NDVI prediction on real Sentinel-2 series: eo-learn's TestEOPatch (Slovenia, 68 irregular dates 2015-07..2017-12,
# its s2cloudless cloud mask CLM) turned into monthly series with per-month clear flags, one "tile" per year and the
# last year split by column into 2017w / 2017e. Training uses 2015, 2016 and 2017w; the held-out tile is 2017e: the
# last part of the series at pixels never trained on. Forecast (2 months ahead from 3..9 observed months) and
# gap-fill (a seeded random set of clear months hidden) are scored on observed months only, side by side with
# persistence, linear interpolation and per-class (LULC) climatology from the training tiles; the model must beat
# each of them. About 90 s on 2 cores.
# Skips (77) without ../shared/data.
source "$(dirname "$0")/../lib.sh"
PATCH="$SHARED_DATA/eolearn_TestEOPatch"
[ -f "$PATCH/data/NDVI.npy" ] && [ -f "$PATCH/mask/CLM.npy" ] || skip "no real data: $PATCH (../shared/data) is absent"
"$PY" "$TESTS_DIR/eolearn_ndvi_set.py" "$PATCH" "$WORK/eo.h5" --split-last-year || fail "converting the EOPatch"
train() {  # train TASK OUTPUT options...
  local task="$1" out="$2"; shift 2
  mpi 2 ndvi train --task "$task" --samples "$WORK/eo.h5" --tiles 2015,2016,2017w --output "$out" --batch-size 64 \
    --threads 1 --patience 0 "$@" > "$out.log" 2>&1 || { cat "$out.log"; fail "ndvi train $task"; }
}
train forecast "$WORK/f.h5" --horizon 2 --t-min 3 --t-max 9 --hidden 64 --epochs 30
train gapfill "$WORK/g.h5" --hidden 32 --epochs 12
for m in f g; do
  mpi 2 ndvi evaluate --model "$WORK/$m.h5" --samples "$WORK/eo.h5" --tiles 2017e --climatology-tiles 2015,2016,2017w \
    --output "$WORK/$m.json" --plot "$WORK/$m.png" > "$WORK/$m-eval.log" 2>&1 || { cat "$WORK/$m-eval.log"; fail "evaluate $m"; }
done
[ -n "${S2CROP_NDVI_RESULTS:-}" ] && cp "$WORK/f.json" "$WORK/g.json" "$WORK/f.png" "$WORK/g.png" "$S2CROP_NDVI_RESULTS/"
"$PY" "$TESTS_DIR/check_ndvi_metrics.py" "$WORK/g.json" || fail "gap-fill: the model does not beat every baseline"
"$PY" "$TESTS_DIR/check_ndvi_metrics.py" "$WORK/f.json" || fail "forecast: the model does not beat every baseline"
