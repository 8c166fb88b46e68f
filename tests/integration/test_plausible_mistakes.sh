#!/usr/bin/env bash
# Plausible mistakes a new user makes (issue 13): each used to exit 0 with an output that looks whole and is wrong,
# or to crash or hang. Each must now exit non-zero on every rank within seconds, with a message naming the file,
# option or tile, and leave nothing that looks complete (or need an explicit opt-in that is logged and stored).
source "$(dirname "$0")/../lib.sh"
synth_region "$WORK/region" --tiles 33UVP --size 48 --days 60 --layout both
STAC="$WORK/region/stac"
ITEMS=($(find "$STAC" -name '*.json' | sort))
[ "${#ITEMS[@]}" -ge 6 ] || fail "synth wrote ${#ITEMS[@]} STAC items"
common=(--block-size 16)

# no_output FILE...: none of the files exists (a refused run leaves nothing that looks complete)
no_output() {
  local f
  for f in "$@"; do [ ! -e "$f" ] || fail "a refused run left $f"; done
}

# copy_stac DIR: a private copy of the STAC tree to edit
copy_stac() { rm -rf "$1"; cp -r "$STAC" "$1"; }

# edit_item ITEM PYTHON: edits the item's JSON (variable `item`) in place
edit_item() {
  "$PY" - "$1" "$2" <<'PY'
import json, sys
path, code = sys.argv[1], sys.argv[2]
item = json.load(open(path))
exec(code)
json.dump(item, open(path, "w"), indent=1)
PY
}

# ---- 2. auto season and tiles
copy_stac "$WORK/stray"
stray_dir="$WORK/stray/stray/S2A_33UVP_20200511_0_L2A"
mkdir -p "$stray_dir"
cp "$(dirname "${ITEMS[0]}")"/*.tif "$stray_dir/"
cp "${ITEMS[0]}" "$stray_dir/S2A_33UVP_20200511_0_L2A.json"
edit_item "$stray_dir/S2A_33UVP_20200511_0_L2A.json" '
item["id"] = "S2A_33UVP_20200511_0_L2A"
item["properties"]["datetime"] = "2020-05-11T10:00:31Z"
item["properties"]["s2:product_uri"] = "S2A_MSIL2A_20200511T100031_N0214_R122_T33UVP_20200511T120005.SAFE"'
expect_failure season_auto_stray "span 2 seasons" -- \
  mpi 2 composite --input "$WORK/stray" --output "$WORK/o/stray.h5" "${common[@]}"
no_output "$WORK/o/stray.h5"

# A second tile whose data fall in the next season.
mpi 1 synth --out "$WORK/next" --tiles 33UWP --size 48 --days 20 --start 2022-09-05 --seed 3 > "$WORK/next.log" 2>&1 \
  || { cat "$WORK/next.log"; fail "synth of the next season failed"; }
expect_failure tile_outside_season "tile 33UWP has" -- \
  mpi 2 composite --input "$STAC" --input "$WORK/next/stac" --season-start 2021-09 --output "$WORK/o/two.h5" "${common[@]}"
no_output "$WORK/o/two.h5"
expect_failure tiles_without_data "no acquisition of tile 33UWP" -- \
  mpi 2 composite --input "$STAC" --tiles 33UVP,33UWP --output "$WORK/o/tiles.h5" "${common[@]}"
no_output "$WORK/o/tiles.h5"

# ---- 3. the same product twice
expect_failure stac_and_safe "same observation" -- \
  mpi 2 composite --input "$STAC" --input "$WORK/region/safe" --output "$WORK/o/both.h5" "${common[@]}"
copy_stac "$WORK/reproc"
item="$(find "$WORK/reproc" -name '*.json' | sort | head -1)"
item_dir="$(dirname "$item")"
reproc_dir="$item_dir/../$(basename "$item_dir" | sed 's/_0_L2A/_1_L2A/')"
cp -r "$item_dir" "$reproc_dir"
mv "$reproc_dir/$(basename "$item")" "$reproc_dir/$(basename "$item" | sed 's/_0_L2A/_1_L2A/')"
edit_item "$(find "$reproc_dir" -name '*.json')" 'item["id"] = item["id"].replace("_0_L2A", "_1_L2A")
item["properties"]["s2:product_uri"] = item["properties"]["s2:product_uri"].replace("_N0", "_N9")'
expect_failure reprocessed_copy "same observation" -- \
  mpi 2 composite --input "$WORK/reproc" --output "$WORK/o/reproc.h5" "${common[@]}"
no_output "$WORK/o/both.h5" "$WORK/o/reproc.h5"

# ---- 8. a tile name that would climb out of the output folder
copy_stac "$WORK/evil"
edit_item "$(find "$WORK/evil" -name '*.json' | sort | head -1)" 'item["properties"]["mgrs:grid_square"] = "../../../X"'
mkdir -p "$WORK/o/evil"
expect_failure path_traversal "not an MGRS tile" -- \
  mpi 2 composite --input "$WORK/evil" --output "$WORK/o/evil/c.h5" "${common[@]}"
[ -z "$(find "$WORK" -name '*.part' -o -name 'X' | head -1)" ] || fail "part files were written for a bad tile name"
expect_failure tiles_option_traversal "is not a tile name" -- \
  mpi 2 composite --input "$STAC" --tiles ../x --output "$WORK/o/t.h5" "${common[@]}"

# ---- 12. messages that name the real problem
copy_stac "$WORK/stray_file"
cp "$(dirname "${ITEMS[0]}")/B04.tif" "$(dirname "$(find "$WORK/stray_file" -name '*.json' | sort | head -1)")/preview_B04.tif"
expect_failure stray_band_file "not part of any STAC item" -- \
  mpi 2 composite --input "$WORK/stray_file" --output "$WORK/o/s.h5" "${common[@]}"
mkdir -p "$WORK/tab"$'\t'"dir"
cp -r "$STAC" "$WORK/tab"$'\t'"dir/"
expect_failure tab_in_path "tab or line break" -- \
  mpi 2 composite --input "$WORK/tab"$'\t'"dir" --output "$WORK/o/tab.h5" "${common[@]}"
no_output "$WORK/o/s.h5" "$WORK/o/tab.h5"

# ---- 6. empty or unmasked composites
expect_failure valid_scl_empty "--valid-scl is empty" -- \
  mpi 2 composite --input "$STAC" --valid-scl "" --output "$WORK/o/e.h5" "${common[@]}"
expect_failure no_clear_observation "no clear observation" -- \
  mpi 2 composite --input "$STAC" --valid-scl 1 --output "$WORK/o/e.h5" "${common[@]}"
no_output "$WORK/o/e.h5" "$WORK/o/e.h5.partial.h5"
copy_stac "$WORK/nomask"
edit_item "$(find "$WORK/nomask" -name '*.json' | sort | head -1)" 'del item["assets"]["scl"]'
rm "$(dirname "$(find "$WORK/nomask" -name '*.json' | sort | head -1)")/SCL.tif"
expect_failure item_without_scl "no cloud mask (no SCL asset" -- \
  mpi 2 composite --input "$WORK/nomask" --output "$WORK/o/nomask.h5" "${common[@]}"
no_output "$WORK/o/nomask.h5"
mpi 2 composite --input "$WORK/nomask" --output "$WORK/o/nomask.h5" "${common[@]}" --allow-unmasked \
  > "$WORK/unmasked.log" 2>&1 || { cat "$WORK/unmasked.log"; fail "--allow-unmasked refused"; }
grep -q "1 acquisition(s) have no cloud mask" "$WORK/unmasked.log" || { cat "$WORK/unmasked.log"; fail "opt-in not logged"; }
"$PY" -c "
import h5py, sys
assert 'allow-unmasked = true' in h5py.File(sys.argv[1])['/'].attrs['config'], 'opt-in not stored'" "$WORK/o/nomask.h5" \
  || fail "--allow-unmasked not recorded in the output"
pass "--allow-unmasked composites, logs and records the opt-in"
copy_stac "$WORK/float"
"$PY" - "$(dirname "$(find "$WORK/float" -name '*.json' | sort | head -1)")/B03.tif" <<'PY'
import sys
from osgeo import gdal
path = sys.argv[1]
src = gdal.Open(path)
data = src.ReadAsArray().astype("float32") / 10000.0
drv = gdal.GetDriverByName("GTiff")
out = drv.Create(path + ".f.tif", src.RasterXSize, src.RasterYSize, 1, gdal.GDT_Float32)
out.SetGeoTransform(src.GetGeoTransform()); out.SetProjection(src.GetProjection())
out.GetRasterBand(1).WriteArray(data); out = None; src = None
import os; os.replace(path + ".f.tif", path)
PY
expect_failure float_reflectance "is Float32" -- \
  mpi 2 composite --input "$WORK/float" --output "$WORK/o/float.h5" "${common[@]}"
no_output "$WORK/o/float.h5"

# ---- 11. late validation: found before any compute
touch "$WORK/a_file"
expect_failure unwritable_cog "a_file" -- \
  mpi 2 composite --input "$STAC" --output "$WORK/o/cog.h5" --cog "$WORK/a_file/cogs" "${common[@]}"
grep -q "composited" "$WORK/unwritable_cog.log" && fail "the COG folder was checked only after compositing"
no_output "$WORK/o/cog.h5" "$WORK/o/cog.h5.parts"
expect_failure deflate_range "--deflate must be 0-9" -- \
  mpi 2 composite --input "$STAC" --output "$WORK/o/d.h5" --deflate 10 "${common[@]}"

# ---- the reference composite; --tiles is case-insensitive for MGRS names
mpi 2 composite --input "$STAC" --output "$WORK/comp.h5" --tiles 33uvp "${common[@]}" > "$WORK/comp.log" 2>&1 \
  || { cat "$WORK/comp.log"; fail "composite failed"; }
"$PY" -c "import h5py,sys; assert list(h5py.File(sys.argv[1])['tiles']) == ['33UVP']" "$WORK/comp.h5" \
  || fail "--tiles 33uvp did not select tile 33UVP"
[ ! -e "$WORK/comp.h5.lock" ] || fail "a finished run left its lock file"
pass "--tiles 33uvp selects 33UVP"

# ---- 4. inputs changed in place: never "already complete", never old parts reused
cp -r "$STAC" "$WORK/changing"
mpi 2 composite --input "$WORK/changing" --output "$WORK/o/ch.h5" "${common[@]}" > "$WORK/ch1.log" 2>&1 \
  || { cat "$WORK/ch1.log"; fail "composite failed"; }
"$PY" - "$(dirname "$(find "$WORK/changing" -name '*.json' | sort | head -1)")/B04.tif" <<'PY'
import sys
from osgeo import gdal
ds = gdal.Open(sys.argv[1], gdal.GA_Update)   # same path, same size: new pixels
a = ds.GetRasterBand(1).ReadAsArray()
ds.GetRasterBand(1).WriteArray((a // 2).astype(a.dtype)); ds = None
PY
expect_failure input_changed_in_place "exists from a different run" -- \
  mpi 2 composite --input "$WORK/changing" --output "$WORK/o/ch.h5" "${common[@]}"
grep -q "already complete" "$WORK/input_changed_in_place.log" && fail "a changed input was taken as already complete"
mpi 2 composite --input "$WORK/changing" --output "$WORK/o/ch.h5" "${common[@]}" --overwrite > "$WORK/ch2.log" 2>&1 \
  || { cat "$WORK/ch2.log"; fail "composite --overwrite failed"; }
"$PY" -c "
import h5py, sys, numpy as np
a, b = (h5py.File(p)['tiles/33UVP/reflectance'][()] for p in sys.argv[1:])
assert (a != b).any(), 'the changed input did not change the composite'" "$WORK/o/ch.h5" "$WORK/comp.h5" \
  || fail "the rerun with --overwrite kept the old composite"
pass "an input changed in place is not taken as done"

# ---- 10. a second run on the same output is refused; a killed run's lock is reclaimed
"$PY" - "$WORK/o/locked.h5.lock" <<'PY' &
import fcntl, sys, time
f = open(sys.argv[1], "w"); f.write("pid 1 on other-node\n"); f.flush()
fcntl.lockf(f, fcntl.LOCK_EX)   # a POSIX record lock, as another s2crop run holds it
time.sleep(300)
PY
holder=$!
for i in $(seq 1 100); do [ -s "$WORK/o/locked.h5.lock" ] && break; sleep 0.05; done
expect_failure concurrent_run "is being written by another s2crop run (pid 1 on other-node)" -- \
  mpi 2 composite --input "$STAC" --output "$WORK/o/locked.h5" "${common[@]}"
no_output "$WORK/o/locked.h5" "$WORK/o/locked.h5.parts"
kill -9 "$holder"; wait "$holder" 2>/dev/null || true
mpi 2 composite --input "$STAC" --output "$WORK/o/locked.h5" "${common[@]}" > "$WORK/relock.log" 2>&1 \
  || { cat "$WORK/relock.log"; fail "the lock of a killed run was not reclaimed"; }
pass "the lock of a killed run is reclaimed"

# ---- 1. season mismatch and 5. damaged model normalisation (classify, assess --model)
"$PY" "$TESTS_DIR/make_training_set.py" "$WORK/set.h5" --samples 400 > /dev/null
mpi 1 train --samples "$WORK/set.h5" --output "$WORK/model.h5" --hidden 8 --epochs 1 --threads 1 > "$WORK/train.log" 2>&1 \
  || { cat "$WORK/train.log"; fail "train failed"; }
mpi 2 composite --input "$STAC" --output "$WORK/comp_jun.h5" --season-start 2021-06 "${common[@]}" > "$WORK/jun.log" 2>&1 \
  || { cat "$WORK/jun.log"; fail "composite of a June season failed"; }
expect_failure classify_season "trained on seasons starting in month 9" -- \
  mpi 2 classify --composites "$WORK/comp_jun.h5" --model "$WORK/model.h5" --output "$WORK/o/map.h5"
no_output "$WORK/o/map.h5" "$WORK/o/map.h5.parts"
cp "$WORK/set.h5" "$WORK/set_jun.h5"
"$PY" -c "import h5py,sys; h5py.File(sys.argv[1],'r+').attrs['season_start_month'] = 6" "$WORK/set_jun.h5"
expect_failure assess_season "trained on seasons starting in month 9" -- \
  mpi 1 assess --model "$WORK/model.h5" --samples "$WORK/set_jun.h5" --output-dir "$WORK/o/acc"
for attr in "feature_std:0.0" "feature_mean:nan"; do
  cp "$WORK/model.h5" "$WORK/bad_model.h5"
  "$PY" - "$WORK/bad_model.h5" "${attr%%:*}" "${attr##*:}" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    v = np.array(f.attrs[sys.argv[2]], dtype=float); v[3] = float(sys.argv[3]); f.attrs[sys.argv[2]] = v
PY
  expect_failure "model_${attr%%:*}" "${attr%%:*}[3]" -- \
    mpi 2 classify --composites "$WORK/comp.h5" --model "$WORK/bad_model.h5" --output "$WORK/o/map.h5"
  no_output "$WORK/o/map.h5"
done
expect_failure classify_deflate "--deflate must be 0-9" -- \
  mpi 2 classify --composites "$WORK/comp.h5" --model "$WORK/model.h5" --output "$WORK/o/map.h5" --deflate 10
grep -q "pixels in" "$WORK/classify_deflate.log" && fail "--deflate 10 was found only after classifying"
mpi 2 classify --composites "$WORK/comp.h5" --model "$WORK/model.h5" --output "$WORK/o/map.h5" > "$WORK/cls.log" 2>&1 \
  || { cat "$WORK/cls.log"; fail "classify of the matching season failed"; }
[ ! -e "$WORK/o/map.h5.lock" ] || fail "a finished classify left its lock file"
pass "all plausible mistakes refused"
