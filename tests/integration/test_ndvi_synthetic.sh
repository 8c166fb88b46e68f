#!/usr/bin/env bash
# NDVI prediction learns on the synthetic region: synth (2 tiles) -> composite -> extract (with per-month clear
# flags) -> ndvi train on 32TQT -> ndvi evaluate on the held-out tile 33UVP. The forecast model must beat persistence
# and per-class climatology, the gap-fill model linear interpolation, persistence and per-class climatology (RMSE
# on observed months only). Bad input: a model asked for another horizon or task, a series without any clear
# month. The forecast model then predicts the whole held-out tile (ndvi predict) and must beat persistence there too.
# About 2 minutes on 2 cores.
source "$(dirname "$0")/../lib.sh"
synth_region "$WORK/region" --size 240
mpi 2 composite --input "$WORK/region/stac" --output "$WORK/c.h5" > "$WORK/c.log" 2>&1 || { cat "$WORK/c.log"; fail composite; }
mpi 2 extract --composites "$WORK/c.h5" --labels "$WORK/region/parcels.gpkg" --per-class 400 --output "$WORK/s.h5" \
  > "$WORK/e.log" 2>&1 || { cat "$WORK/e.log"; fail extract; }
"$PY" -c "import h5py, sys; f = h5py.File(sys.argv[1]); assert f['clear'].shape == (f['x'].shape[0], 12)" "$WORK/s.h5" \
  || fail "extract wrote no per-month clear flags"
train() {  # train TASK OUTPUT options...
  local task="$1" out="$2"; shift 2
  mpi 2 ndvi train --task "$task" --samples "$WORK/s.h5" --tiles 32TQT --output "$out" --batch-size 32 --threads 1 \
    --patience 0 "$@" > "$out.log" 2>&1 || { cat "$out.log"; fail "ndvi train $task"; }
}
train forecast "$WORK/f.h5" --horizon 2 --t-min 3 --t-max 9 --hidden 32 --epochs 15
train gapfill "$WORK/g.h5" --hidden 64 --epochs 30
for m in f g; do
  mpi 2 ndvi evaluate --model "$WORK/$m.h5" --samples "$WORK/s.h5" --tiles 33UVP --output "$WORK/$m.json" \
    --plot "$WORK/$m.png" > "$WORK/$m-eval.log" 2>&1 || { cat "$WORK/$m-eval.log"; fail "ndvi evaluate $m"; }
done
"$PY" "$TESTS_DIR/check_ndvi_metrics.py" "$WORK/f.json" "$WORK/g.json" || fail "the NDVI model does not beat the baselines"
"$PY" -c "import sys; assert open(sys.argv[1], 'rb').read(8) == b'\x89PNG\r\n\x1a\n'" "$WORK/g.png" || fail "no PNG plot"

# The forecast model over the whole held-out tile (ndvi predict, months 1..9 -> 10..11): it must beat persistence on
# every pixel observed in a forecast month, not only on the extracted samples.
mpi 2 ndvi predict --composites "$WORK/c.h5" --model "$WORK/f.h5" --tiles 33UVP --output "$WORK/tile.h5" \
  > "$WORK/predict.log" 2>&1 || { cat "$WORK/predict.log"; fail "ndvi predict"; }
"$PY" "$TESTS_DIR/check_ndvi_tile_forecast.py" "$WORK/tile.h5" "$WORK/c.h5" 33UVP --must-beat-persistence \
  || fail "the forecast over the held-out tile does not beat persistence"

# Bad input: clear errors.
expect_failure horizon "trained for a forecast horizon of 2 month(s), not 3" -- \
  mpi 2 ndvi evaluate --model "$WORK/f.h5" --samples "$WORK/s.h5" --tiles 33UVP --horizon 3 --output "$WORK/x.json"
expect_failure task "model was trained for task forecast, not gapfill" -- \
  mpi 2 ndvi evaluate --model "$WORK/f.h5" --samples "$WORK/s.h5" --tiles 33UVP --task gapfill --output "$WORK/x.json"
cp "$WORK/s.h5" "$WORK/cloudy.h5"
"$PY" -c "import h5py, sys; f = h5py.File(sys.argv[1], 'a'); c = f['clear']; c[5] = 0" "$WORK/cloudy.h5"
expect_failure no_clear "has no clear observation in any month" -- \
  mpi 2 ndvi evaluate --model "$WORK/g.h5" --samples "$WORK/cloudy.h5" --output "$WORK/x.json"
"$PY" -c "import h5py, sys; f = h5py.File(sys.argv[1], 'a'); del f['clear']" "$WORK/cloudy.h5"
expect_failure no_clear_flags "has no per-month clear flags" -- \
  mpi 2 ndvi train --task gapfill --samples "$WORK/cloudy.h5" --output "$WORK/x.h5"
expect_failure classifier_as_ndvi "is an NDVI model, not a crop-type classifier" -- \
  mpi 1 classify --composites "$WORK/c.h5" --model "$WORK/f.h5" --output "$WORK/map.h5"
