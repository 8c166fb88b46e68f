#!/usr/bin/env bash
# classify on real monthly composites: ESA WorldCereal's 12-month L2A composites (Belgium, 100 x 100 px, no B8A)
# run through a model trained on the same 9 bands; the map must cover every pixel with data, with more than one
# class. (The model is trained on a synthetic set, so the classes are not meant to be right: this checks that real
# data flows through classify.)
source "$(dirname "$0")/../lib.sh"
NC="$SHARED_DATA/worldcereal_preprocessed_inputs/worldcereal_preprocessed_inputs.nc"
[ -f "$NC" ] || skip "real sample data not found ($NC); it lives in ../shared/data beside the clone"
"$PY" "$TESTS_DIR/netcdf_to_composite.py" "$NC" "$WORK/real.h5" --tile 31UFS || fail "conversion failed"
"$PY" "$TESTS_DIR/make_training_set.py" "$WORK/set.h5" --samples 1500 > /dev/null
# These composites' season starts in the month of their first time step; a model of September seasons would misread
# every month (classify refuses it), so the synthetic training set is declared to be of the same season.
"$PY" - "$WORK/set.h5" "$WORK/real.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[2], "r") as c:
    month = int(c["tiles/31UFS"].attrs["season_start"][5:7])
with h5py.File(sys.argv[1], "r+") as s:
    s.attrs["season_start_month"] = month
PY
mpi 1 train --samples "$WORK/set.h5" --output "$WORK/model.h5" --bands B02,B03,B04,B05,B06,B07,B08,B11,B12 \
  --hidden 32 --epochs 2 --threads 1 > "$WORK/train.log" 2>&1 || { cat "$WORK/train.log"; fail "train failed"; }
mpi 2 classify --composites "$WORK/real.h5" --model "$WORK/model.h5" --output "$WORK/map.h5" --block-size 64 \
  > "$WORK/classify.log" 2>&1 || { cat "$WORK/classify.log"; fail "classify on real composites failed"; }
"$PY" - "$WORK/map.h5" "$WORK/real.h5" <<'PY' || fail "real-data map is wrong"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as m, h5py.File(sys.argv[2], "r") as c:
    cls = m["tiles/31UFS/class"][()]
    nodata = (c["tiles/31UFS/reflectance"][()] == -32768).any(axis=(0, 1))
    assert cls.shape == (100, 100)
    assert ((cls == 255) == nodata).all()
    assert (cls[~nodata] < 16).all() and len(np.unique(cls[~nodata])) >= 2
    print(f"ok: real WorldCereal composites classified: {int((~nodata).sum())} pixels with data, "
          f"{len(np.unique(cls[~nodata]))} classes")
PY
# The full 10-band model cannot be applied: B8A is missing in these composites.
mpi 1 train --samples "$WORK/set.h5" --output "$WORK/model10.h5" --hidden 16 --epochs 1 --threads 1 > /dev/null 2>&1
expect_failure missing_b8a "band B8A is missing" -- mpi 1 classify --composites "$WORK/real.h5" \
  --model "$WORK/model10.h5" --output "$WORK/map10.h5"
