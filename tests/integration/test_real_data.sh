#!/usr/bin/env bash
# The compositor on real Sentinel-2 L2A files from ../shared/data: WorldCereal's per-date, per-band GeoTIFFs
# (mixed 10/20 m, validity MASK, no B8A) and sen2r's Barbellino BOA stack with its 20 m SCL. Results must equal
# the independent NumPy reference compositor. Skips when the sample data is absent.
source "$(dirname "$0")/../lib.sh"
WC="$SHARED_DATA/worldcereal_s2_l2a_timeseries_36MXB_6x6px"
BB="$SHARED_DATA/sen2r_barbellino"
[ -d "$WC" ] && [ -d "$BB" ] || skip "real sample data not found in $SHARED_DATA (clone without ../shared)"
BANDS=B02,B03,B04,B05,B06,B07,B08,B11,B12

# WorldCereal: 21 dates over Oct-Dec 2018 and Aug-Sep 2019: a season from 2018-09 with a long gap to fill. The
# 2019-09-04 date opens the next season, so the season is given (auto refuses acquisitions spanning two seasons).
mpi 2 composite --input "$WC" --output "$WORK/wc.h5" --bands $BANDS --season-start 2018-09 --block-size 16 --cog "$WORK/wc-cog" \
  > "$WORK/wc.log" 2>&1 || { cat "$WORK/wc.log"; fail "worldcereal composite failed"; }
grep -q "20 in the season starting 2018-09" "$WORK/wc.log" || { cat "$WORK/wc.log"; fail "worldcereal: expected 20 acquisitions in season 2018-09"; }
"$S2CROP" composite --input "$WC" --output "$WORK/wc.h5" --bands $BANDS --season-start 2018-09 --block-size 16 --list > "$WORK/wc.tsv" 2>/dev/null
grep -q $'\tvalid\t' "$WORK/wc.tsv" || fail "worldcereal: the MASK files were not used as validity masks"
"$PY" "$S2CROP_SOURCE_DIR/bench/numpy_composite.py" "$WORK/wc.tsv" --compare "$WORK/wc.h5" || fail "worldcereal differs from the NumPy reference"
"$PY" - "$WORK/wc.h5" <<'PY'
import sys, h5py, numpy as np
g = h5py.File(sys.argv[1], "r")["tiles/36MXB"]
c, r = g["clear_count"][...], g["reflectance"][...]
assert c[1:4].sum() > 0 and c[4:11].sum() == 0, "clear counts should be in Oct-Dec and Aug only"
assert (r != -32768).all(), "gap filling left no-data"
assert "32736" in g.attrs["crs"], g.attrs["crs"]
print("worldcereal: months with observations", [int(x) for x in c.reshape(12, -1).sum(1)])
PY
ls "$WORK"/wc-cog/36MXB/36MXB_2019-08.tif > /dev/null || fail "worldcereal: COG missing"
# The mean method, and a different block size (results must not depend on it).
mpi 2 composite --input "$WC" --output "$WORK/wc-mean.h5" --bands $BANDS --season-start 2018-09 --block-size 4 --method mean \
  > "$WORK/wc-mean.log" 2>&1 || { cat "$WORK/wc-mean.log"; fail "worldcereal mean composite failed"; }
"$PY" "$S2CROP_SOURCE_DIR/bench/numpy_composite.py" "$WORK/wc.tsv" --method mean --compare "$WORK/wc-mean.h5" \
  || fail "worldcereal mean differs from the NumPy reference"
pass "WorldCereal real L2A series composited, identical to NumPy"

# Barbellino: sen2r BOA 11-band stack + SCL at 20 m, one date in the 2019 season.
mpi 2 composite --input "$BB" --output "$WORK/bb.h5" --bands $BANDS --season-start 2019-01 --block-size 16 \
  > "$WORK/bb.log" 2>&1 || { cat "$WORK/bb.log"; fail "barbellino composite failed"; }
"$S2CROP" composite --input "$BB" --output "$WORK/bb.h5" --bands $BANDS --season-start 2019-01 --block-size 16 --list > "$WORK/bb.tsv" 2>/dev/null
"$PY" "$S2CROP_SOURCE_DIR/bench/numpy_composite.py" "$WORK/bb.tsv" --compare "$WORK/bb.h5" || fail "barbellino differs from the NumPy reference"
"$PY" - "$WORK/bb.h5" "$BB" <<'PY'
import sys, h5py, numpy as np
from osgeo import gdal
g = h5py.File(sys.argv[1], "r")["tiles/Barbellino"]
boa = gdal.Open(sys.argv[2] + "/S2A2A_20190723_022_Barbellino_BOA_10.tif").ReadAsArray().astype(np.int32)
red = g["reflectance"][6, 2]          # July 2019, B04 (BOA band 4)
clear = g["clear_count"][6] > 0
assert clear.sum() > 0, "no clear pixel in July"
assert (red[clear] == boa[3][clear]).all(), "composite of a single clear date must equal its BOA value"
print("barbellino: %d clear pixels equal the BOA values" % clear.sum())
PY
pass "sen2r Barbellino real L2A stack composited"
