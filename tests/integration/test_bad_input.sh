#!/usr/bin/env bash
# Bad input: each case gives a clear error naming the file, every rank exits non-zero within seconds (no hang),
# and no output that looks complete is left behind. --on-error skip leaves bad acquisitions out and records them.
source "$(dirname "$0")/../lib.sh"
synth_region "$WORK/pristine"

fresh() {  # fresh NAME: a private copy of the region to damage
  rm -rf "$WORK/$1"
  cp -r "$WORK/pristine" "$WORK/$1"
  echo "$WORK/$1"
}
item_dir() {  # item_dir REGION N: the N-th acquisition folder of tile 33UVP
  find "$1/stac/33UVP" -name '*.json' | sort | sed -n "${2}p" | xargs dirname
}
no_output() {
  [ ! -e "$1" ] || fail "$2: output $1 exists after a failed run"
}

# 1. A truncated band file (a download cut short).
r=$(fresh truncated); d=$(item_dir "$r" 5)
truncate -s $(( $(stat -c %s "$d/B8A.tif") * 2 / 5 )) "$d/B8A.tif"
expect_failure truncated "$d/B8A.tif" -- mpi 2 composite --input "$r/stac" --output "$WORK/o1/c.h5"
grep -q "truncated" "$WORK/truncated.log" || fail "truncated: message does not say truncated"
no_output "$WORK/o1/c.h5" truncated

# 2. A band missing from an acquisition (asset absent from the STAC item).
r=$(fresh missing); d=$(item_dir "$r" 7); item=$(ls "$d"/*.json)
"$PY" - "$item" <<'PY'
import json, sys
p = sys.argv[1]; j = json.load(open(p)); del j["assets"]["rededge2"]; json.dump(j, open(p, "w"))
PY
expect_failure missing_band "band B06 is missing" -- mpi 2 composite --input "$r/stac" --output "$WORK/o2/c.h5"
grep -qF "$item" "$WORK/missing_band.log" || fail "missing band: message does not name the STAC item"
no_output "$WORK/o2/c.h5" missing_band

# 3. A band file that is gone (the item points to nothing).
r=$(fresh gone); d=$(item_dir "$r" 9)
rm "$d/B03.tif"
expect_failure gone_file "$d/B03.tif" -- mpi 2 composite --input "$r/stac" --output "$WORK/o3/c.h5"

# 4. An acquisition on another grid (shifted by 1 km).
r=$(fresh grid); d=$(item_dir "$r" 11)
"$PY" - "$d" <<'PY'
import glob, sys
from osgeo import gdal
for p in glob.glob(sys.argv[1] + "/*.tif"):
    ds = gdal.Open(p, gdal.GA_Update); gt = list(ds.GetGeoTransform()); gt[0] += 1000; ds.SetGeoTransform(gt); ds = None
PY
expect_failure other_grid "on another grid" -- mpi 2 composite --input "$r/stac" --output "$WORK/o4/c.h5"
grep -qF "$d/" "$WORK/other_grid.log" || fail "other grid: message does not name a file of the acquisition"
no_output "$WORK/o4/c.h5" other_grid

# 5. A malformed STAC item.
r=$(fresh malformed); d=$(item_dir "$r" 13); item=$(ls "$d"/*.json)
head -c 200 "$item" > "$item.cut" && mv "$item.cut" "$item"
expect_failure malformed_stac "$item" -- mpi 2 composite --input "$r/stac" --output "$WORK/o5/c.h5"
grep -q "malformed STAC item" "$WORK/malformed_stac.log" || fail "malformed: message does not say so"
no_output "$WORK/o5/c.h5" malformed_stac

# 6. An unwritable output path.
expect_failure unwritable "/dev/null/sub" -- mpi 2 composite --input "$WORK/pristine/stac" --output /dev/null/sub/c.h5

# 7. Corrupt pixel data found only while compositing (headers intact): one rank fails mid-run, all ranks stop.
r=$(fresh corrupt); d=$(item_dir "$r" 15)
"$PY" - "$d/B04.tif" <<'PY'
import sys
from osgeo import gdal
p = sys.argv[1]
ds = gdal.Open(p); band = ds.GetRasterBand(1)
off = int(band.GetMetadataItem("BLOCK_OFFSET_0_0", "TIFF")); size = int(band.GetMetadataItem("BLOCK_SIZE_0_0", "TIFF"))
ds = None
with open(p, "r+b") as f:
    f.seek(off); f.write(b"\xff" * size)
PY
expect_failure corrupt_pixels "$d/B04.tif" -- mpi 3 composite --input "$r/stac" --output "$WORK/o7/c.h5" --block-size 32
grep -q "aborting all ranks" "$WORK/corrupt_pixels.log" || fail "corrupt pixels: ranks were not stopped together"
no_output "$WORK/o7/c.h5" corrupt_pixels
sleep 0.5
! pgrep -f -- "--output $WORK/o7/c.h5" > /dev/null || fail "corrupt pixels: some rank is still running"

# 8. --on-error skip: the bad acquisitions are left out and recorded in the output.
r=$(fresh skip); d1=$(item_dir "$r" 5); d2=$(item_dir "$r" 13)
truncate -s $(( $(stat -c %s "$d1/B8A.tif") * 2 / 5 )) "$d1/B8A.tif"
item2=$(ls "$d2"/*.json); echo '{"type": "Feature", "assets": ' > "$item2"
mpi 2 composite --input "$r/stac" --output "$WORK/o8/c.h5" --on-error skip > "$WORK/skip.log" 2>&1 \
  || { cat "$WORK/skip.log"; fail "--on-error skip did not complete"; }
"$PY" - "$WORK/o8/c.h5" "$d1/B8A.tif" "$item2" <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
skipped = [s.decode() if isinstance(s, bytes) else s for s in f.attrs["skipped_acquisitions"]]
assert len(skipped) == 2, skipped
for path in sys.argv[2:]:
    assert any(path in s for s in skipped), (path, skipped)
n_33 = len(f["tiles/33UVP"].attrs["acquisitions"]); n_32 = len(f["tiles/32TQT"].attrs["acquisitions"])
print("skipped recorded:", skipped, "acquisitions", n_32, n_33)
PY
pass "--on-error skip records the skipped acquisitions"

# 9. A bad option value holding one of Boost.Program_options' message placeholders (found by fuzz/fuzz_config_ini):
#    building the error message looped forever, on the command line and in a --config file alike.
expect_failure placeholder_arg "--dilation" -- mpi 1 composite --input "$WORK/pristine/stac" --output "$WORK/o9/c.h5" \
  --dilation 'x%value%'
printf 'season-month = x%%value%%\n' > "$WORK/placeholder.ini"
expect_failure placeholder_config "season-month" -- mpi 1 composite --input "$WORK/pristine/stac" \
  --output "$WORK/o9/c.h5" --config "$WORK/placeholder.ini"
