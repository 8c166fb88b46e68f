#!/usr/bin/env bash
# compare_stage_outputs.sh OLD_S2CROP NEW_S2CROP [WORKDIR]: runs the five block stages (composite with COG and
# quicklook exports, classify with probabilities and COGs, ndvi predict, segment predict, mosaic) with both binaries
# on the same synthetic region and models, and compares every output dataset for dataset (HDF5: every dataset and
# attribute, except the creation time and the run fingerprint; GeoTIFF/PNG: pixels, georeference and band names).
# For refactorings of the block-stage engine, whose outputs must not change. Exit 0 when everything is identical.
set -euo pipefail
OLD="$(realpath "$1")" NEW="$(realpath "$2")"
W="${3:-$(mktemp -d /tmp/s2crop-compare.XXXXXX)}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mpi() { local bin="$1" n="$2"; shift 2; mpirun -np "$n" --oversubscribe "$bin" "$@"; }
mkdir -p "$W"
cd "$W"
log() { echo "== $*"; }

# Shared inputs, made once with the new binary: region, composites for training, models.
log "inputs in $W"
"$NEW" synth --out region --tiles 33UVP,32TQT --size 96 --days 365 --seed 7 > synth.log 2>&1
mpi "$NEW" 2 composite --input region/stac --output train_comp.h5 > train_comp.log 2>&1
"$PY" "$ROOT/tests/make_training_set.py" set.h5 --samples 1500 > /dev/null
mpi "$NEW" 1 train --samples set.h5 --output classifier.h5 --hidden 16 --epochs 1 --threads 1 > train.log 2>&1
mpi "$NEW" 1 ndvi train --task gapfill --samples set.h5 --assume-clear --output ndvi.h5 --hidden 8 --epochs 1 \
  --threads 1 > ndvi_train.log 2>&1
mpi "$NEW" 2 extract --composites train_comp.h5 --labels region/parcels.gpkg --patches 32 --patch-stride 16 \
  --output patches.h5 > extract.log 2>&1
mpi "$NEW" 1 segment train --patches patches.h5 --output unet.h5 --head multiclass --epochs 1 --batch-size 8 \
  --width 8 --threads 1 > unet.log 2>&1

for side in old new; do
  bin=$OLD
  [ "$side" = new ] && bin=$NEW
  log "stages with the $side binary"
  mkdir -p "$side"
  (
    cd "$side"
    mpi "$bin" 2 composite --input ../region/stac --output out/comp.h5 --block-size 40 --cog cog --quicklook ql
    mpi "$bin" 2 classify --composites out/comp.h5 --model ../classifier.h5 --output out/map.h5 --block-size 40 \
      --probabilities --cog map_cog --quicklook map_ql --threads 1
    mpi "$bin" 2 ndvi predict --composites out/comp.h5 --model ../ndvi.h5 --output out/ndvi.h5 --block-size 40 \
      --threads 1
    mpi "$bin" 2 segment predict --composites out/comp.h5 --model ../unet.h5 --output out/seg.h5 --block-size 40 \
      --threads 1
    mpi "$bin" 2 mosaic --maps out/map.h5 --output out/mosaic.tif --confidence-output out/confidence.tif \
      --block-size 64
  ) > "$side.log" 2>&1 || { tail -30 "$side.log"; echo "the $side binary failed"; exit 1; }
done

log "comparing"
status=0
for f in comp map ndvi seg; do
  "$PY" "$ROOT/tests/h5_compare.py" --ignore-attr run_fingerprint "old/out/$f.h5" "new/out/$f.h5" || status=1
done
"$PY" - <<'PY' || status=1
import glob, os, sys
from osgeo import gdal
gdal.UseExceptions()
bad = 0
def rasters(side):
    return sorted(p[len(side) + 1:] for p in glob.glob(side + "/**/*", recursive=True) if p.endswith((".tif", ".png")))
files, new_files = rasters("old"), rasters("new")
if files != new_files:
    print("DIFFERENT file lists:", set(files) ^ set(new_files)); bad += 1
for rel in files:
    if rel not in new_files:
        continue
    a, b = gdal.Open("old/" + rel), gdal.Open("new/" + rel)
    same = (a.RasterXSize, a.RasterYSize, a.RasterCount, a.GetGeoTransform(), a.GetProjection()) == \
           (b.RasterXSize, b.RasterYSize, b.RasterCount, b.GetGeoTransform(), b.GetProjection())
    for i in range(1, a.RasterCount + 1):
        ba, bb = a.GetRasterBand(i), b.GetRasterBand(i)
        same = same and ba.ReadRaster() == bb.ReadRaster() and ba.GetDescription() == bb.GetDescription() \
            and ba.GetNoDataValue() == bb.GetNoDataValue()
    print(("identical: " if same else "DIFFERENT: ") + rel)
    bad += not same
print(f"{len(files)} rasters compared")
sys.exit(1 if bad else 0)
PY
[ $status = 0 ] && log "every output identical" || log "outputs differ"
exit $status
