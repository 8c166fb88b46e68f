#!/usr/bin/env bash
# The U-Net on real monthly composites: ESA WorldCereal's 12-month L2A composites (Belgium, 100 x 100 px, 9 bands,
# no B8A). Unlabelled patches of the real composites (extract with a label raster that labels nothing) pre-train the
# encoder (dense, 2 ranks); a U-Net of the same 9 bands is fine-tuned from it on a small synthetic labelled set and
# segment predict maps the real tile (seasons from November, as the WorldCereal composites): identical on 1 and 2
# ranks (blocks of 48 px), a class on every pixel with data and none elsewhere, more than one class. (The classes
# are not meant to be right: no real labels here; this checks that real data flows through pretrain, --init and
# segment predict.)
source "$(dirname "$0")/../lib.sh"
NC="$SHARED_DATA/worldcereal_preprocessed_inputs/worldcereal_preprocessed_inputs.nc"
[ -f "$NC" ] || skip "real sample data not found ($NC); it lives in ../shared/data beside the clone"
BANDS=B02,B03,B04,B05,B06,B07,B08,B11,B12
"$PY" "$TESTS_DIR/netcdf_to_composite.py" "$NC" "$WORK/real.h5" --tile 31UFS > /dev/null || fail "conversion failed"
"$PY" - "$WORK/real.h5" "$WORK/nolabels.tif" <<'PY' || fail "could not write the empty label raster"
import sys, h5py, numpy as np
from osgeo import gdal, osr
g = h5py.File(sys.argv[1], "r")["tiles/31UFS"]
ds = gdal.GetDriverByName("GTiff").Create(sys.argv[2], g["reflectance"].shape[-1], g["reflectance"].shape[-2], 1, gdal.GDT_Byte)
ds.SetGeoTransform([float(v) for v in g.attrs["geotransform"]])
ds.SetProjection(g.attrs["crs_wkt"] if isinstance(g.attrs["crs_wkt"], str) else g.attrs["crs_wkt"].decode())
ds.GetRasterBand(1).WriteArray(np.full((ds.RasterYSize, ds.RasterXSize), 255, np.uint8))
ds = None
PY
mpi 2 extract --composites "$WORK/real.h5" --labels "$WORK/nolabels.tif" --patches 32 --patch-stride 16 \
  --min-labelled 0 --output "$WORK/real_patches.h5" > "$WORK/extract-real.log" 2>&1 \
  || { cat "$WORK/extract-real.log"; fail "extract --patches of the real composites failed"; }
arch=(--bands "$BANDS" --depth 2 --width 8)
mpi 2 pretrain --patches "$WORK/real_patches.h5" "${arch[@]}" --epochs 6 --batch-size 4 --lr 3e-3 --threads 1 \
  --val-fraction 0.2 --output "$WORK/encoder.h5" > "$WORK/pretrain.log" 2>&1 \
  || { cat "$WORK/pretrain.log"; fail "pretrain on the real patches failed"; }
"$PY" - "$WORK/pretrain.log" <<'PY' || { cat "$WORK/pretrain.log"; fail "pre-training on real patches did not learn or collapsed"; }
import re, sys
e = [(float(a), float(b)) for a, b in re.findall(r"val dense loss (-?[0-9.]+) .*projection spread ([0-9.]+)", open(sys.argv[1]).read())]
assert len(e) == 6, e
print(f"ok: dense pre-training on {len(e)} epochs of real WorldCereal patches: validation loss {e[0][0]:.3f} -> "
      f"{min(v[0] for v in e):.3f}, projection spread {e[-1][1]:.3f}")
assert min(v[0] for v in e) < e[0][0] - 0.1 and e[-1][1] > 0.02
PY

synth_region "$WORK/region" --tiles 33UVP --size 96
# The synthetic region runs Sep 2021 - Aug 2022: its November season is the one from 2021-11 (auto would refuse the
# two Sep-Oct months of the season before).
composite_region --season-start 2021-11
mpi 2 extract --composites "$WORK/comp.h5" --labels "$WORK/region/parcels.gpkg" --patches 32 --patch-stride 16 \
  --output "$WORK/patches.h5" > "$WORK/extract.log" 2>&1 || { cat "$WORK/extract.log"; fail "extract --patches failed"; }
mpi 2 segment train --patches "$WORK/patches.h5" "${arch[@]}" --init "$WORK/encoder.h5" --encoder-lr 0.1 --epochs 4 \
  --batch-size 4 --threads 1 --output "$WORK/model.h5" > "$WORK/train.log" 2>&1 \
  || { cat "$WORK/train.log"; fail "segment train from the real-data encoder failed"; }
for n in 1 2; do
  mpi "$n" segment predict --composites "$WORK/real.h5" --model "$WORK/model.h5" --output "$WORK/map$n.h5" \
    --window 32 --overlap 8 --block-size 48 > "$WORK/predict$n.log" 2>&1 \
    || { cat "$WORK/predict$n.log"; fail "segment predict on the real composites ($n ranks) failed"; }
done
"$PY" "$TESTS_DIR/h5_compare.py" --ignore-attr config --ignore-attr run_fingerprint "$WORK/map1.h5" "$WORK/map2.h5" \
  || fail "segment predict on the real tile differs between 1 and 2 ranks"
"$PY" - "$WORK/map1.h5" "$WORK/real.h5" <<'PY' || fail "real-data segmentation map is wrong"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as m, h5py.File(sys.argv[2], "r") as c:
    cls = m["tiles/31UFS/class"][()]
    nodata = (c["tiles/31UFS/reflectance"][()] == -32768).all(axis=(0, 1))
    assert cls.shape == (100, 100), cls.shape
    assert ((cls == 255) == nodata).all(), "class set exactly where the composites have data"
    assert (cls[~nodata] < 16).all() and len(np.unique(cls[~nodata])) >= 2
    print(f"ok: real WorldCereal tile segmented on 1 and 2 ranks identically: {int((~nodata).sum())} pixels with data, "
          f"{len(np.unique(cls[~nodata]))} classes")
PY
# The full 10-band U-Net cannot be applied: B8A is missing in these composites.
mpi 1 segment train --patches "$WORK/patches.h5" --depth 2 --width 8 --epochs 1 --batch-size 4 --threads 1 \
  --output "$WORK/model10.h5" > /dev/null 2>&1 || fail "10-band segment train failed"
expect_failure missing_b8a "B8A" -- mpi 1 segment predict --composites "$WORK/real.h5" --model "$WORK/model10.h5" \
  --output "$WORK/map10.h5"
[ ! -e "$WORK/map10.h5" ] || fail "a map was written for a model whose band is missing"
