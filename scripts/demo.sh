#!/usr/bin/env bash
# The main job on the bundled demo region, the whole chain on 2 MPI ranks:
#   synth     a synthetic Sentinel-2 L2A region: 3 tiles in UTM zones 32 and 33, one season at 5-day revisit
#   composite 12 monthly cloud-masked, gap-filled composites per tile (HDF5 + COGs + quicklooks)
#   extract   labelled pixel samples of the parcels (GeoPackage) from the composites
#   train     the LSTM crop-type classifier on two tiles (validation on held-out parcels)
#   classify  the third tile, never seen in training
#   assess    the map of that tile against its reference labels: OA, kappa, macro-F1, area-adjusted accuracy
# and prints OA / macro-F1 on the held-out tile next to a nearest-centroid baseline.
#   scripts/demo.sh [OUT_DIR]      (default: ./demo-out)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/demo-out}"
RANKS="${RANKS:-2}"
TRAIN_TILES=32TQT,33TUM
TEST_TILE=33UVP

"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh"
S2CROP="$ROOT/build/s2crop"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
run() { mpirun -np "$RANKS" "$S2CROP" "$@"; }

mkdir -p "$OUT"
start=$(date +%s)
if [ ! -f "$OUT/region/region.json" ]; then
  echo "== synth: demo region -> $OUT/region"
  run synth --config "$ROOT/configs/synth.ini" --out "$OUT/region"
fi
echo "== composite on $RANKS ranks -> $OUT/composites.h5"
run composite --config "$ROOT/configs/composite.ini" \
  --input "$OUT/region/stac" --output "$OUT/composites.h5" --cog "$OUT/cog" --quicklook "$OUT/quicklooks"
echo "== extract: samples of all tiles -> $OUT/samples.h5"
run extract --config "$ROOT/configs/extract.ini" --composites "$OUT/composites.h5" \
  --labels "$OUT/region/parcels.gpkg" --output "$OUT/samples.h5" --overwrite
echo "== train on $TRAIN_TILES -> $OUT/model.h5"
run train --config "$ROOT/configs/demo-train.ini" --samples "$OUT/samples.h5" --tiles "$TRAIN_TILES" \
  --output "$OUT/model.h5" --overwrite
echo "== classify the held-out tile $TEST_TILE -> $OUT/map.h5"
run classify --config "$ROOT/configs/classify.ini" --composites "$OUT/composites.h5" --model "$OUT/model.h5" \
  --tiles "$TEST_TILE" --output "$OUT/map.h5" --cog "$OUT/map-cog" --quicklook "$OUT/map-quicklooks" --overwrite
echo "== assess the map of $TEST_TILE against its reference labels -> $OUT/accuracy/"
run assess --map "$OUT/map.h5" --reference "$OUT/region/labels" --tiles "$TEST_TILE" --output-dir "$OUT/accuracy" \
  | tee "$OUT/assess.log"
/usr/bin/python3 "$ROOT/scripts/centroid_baseline.py" "$OUT/samples.h5" --train-tiles "$TRAIN_TILES" \
  --test-tiles "$TEST_TILE" --json "$OUT/baseline.json" | tee "$OUT/baseline.log"

echo
echo "Demo finished in $(( $(date +%s) - start )) s."
/usr/bin/python3 - "$OUT/accuracy/accuracy.json" "$OUT/baseline.json" "$TEST_TILE" <<'PY'
import json, sys
acc, base = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(f"  held-out tile {sys.argv[3]}: LSTM OA {acc['overall_accuracy']:.3f}, macro-F1 {acc['macro_f1']:.3f}   "
      f"(nearest-centroid baseline: OA {base['oa']:.3f}, macro-F1 {base['macro_f1']:.3f})")
PY
echo "  composites (HDF5): $OUT/composites.h5, COGs in $OUT/cog, quicklooks in $OUT/quicklooks"
echo "  model:             $OUT/model.h5 (h5ls -r: architecture, normalisation, classes, weights)"
echo "  map:               $OUT/map.h5, $OUT/map-cog/, $OUT/map-quicklooks/"
echo "  accuracy report:   $OUT/accuracy/accuracy.md (+ accuracy.json, confusion.png)"
