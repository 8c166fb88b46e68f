#!/usr/bin/env bash
# s2crop extract end to end on a synthetic region: parcels as polygons and as label rasters give the same samples,
# 1 and 3 ranks give identical files, the per-class cap and the border rule hold, sample values are the composite's,
# a national raster in another CRS is warped onto the tiles, and bad inputs fail clearly without leaving output.
source "$(dirname "$0")/../lib.sh"
R="$WORK/region"
synth_region "$R" --tiles 33UVP,32TQT --size 150
C="$WORK/composites.h5"
# Small blocks, so extraction has many (tile, block) units to spread over ranks.
mpi 1 composite --input "$R/stac" --output "$C" --block-size 48 > "$WORK/composite.log" 2>&1 \
  || { cat "$WORK/composite.log"; fail "composite failed"; }

extract() {  # extract NAME RANKS args...: writes $WORK/NAME.h5, log in $WORK/NAME.log
  local name="$1" n="$2"; shift 2
  mpi "$n" extract --composites "$C" --output "$WORK/$name.h5" "$@" > "$WORK/$name.log" 2>&1 \
    || { cat "$WORK/$name.log"; fail "extract $name failed"; }
}

# 1. Rank invariance: the same command (same output name, so the stored configuration is the same) on 1 and 3 ranks.
extract capped 1 --labels "$R/parcels.gpkg" --per-class 150
mv "$WORK/capped.h5" "$WORK/capped_1rank.h5"
extract capped 3 --labels "$R/parcels.gpkg" --per-class 150
h5_same "$WORK/capped_1rank.h5" "$WORK/capped.h5" || fail "1 and 3 ranks give different training sets"
pass "1 and 3 ranks give identical training sets"

# 2. Every candidate from polygons and from the label rasters; capped runs of both.
extract all_vector 2 --labels "$R/parcels.gpkg" --per-class 0
extract all_raster 2 --labels "$R/labels" --per-class 0
extract capped_raster 2 --labels "$R/labels" --per-class 150
extract border0 2 --labels "$R/labels" --per-class 0 --border 0
gdalwarp -q -t_srs EPSG:3035 -tr 10 10 -r near -srcnodata 255 -dstnodata 255 \
  "$R/labels/33UVP_class.tif" "$R/labels/32TQT_class.tif" "$WORK/national_3035.tif" || fail "gdalwarp failed"
extract national 2 --labels "$WORK/national_3035.tif" --per-class 0 --border 0
grep -q "resampled nearest-neighbour" "$WORK/national.log" || fail "national raster: log does not say it is warped"

"$PY" - "$WORK" "$C" "$R/labels" <<'PY' || fail "sample checks failed"
import sys
import h5py
import numpy as np
from osgeo import gdal

work, comp, labels = sys.argv[1:4]

def load(name):
    f = h5py.File(f"{work}/{name}.h5", "r")
    assert f.attrs["source"] == "extract", name
    tiles = [str(t) for t in f.attrs["tiles"]]
    return f, tiles

def keys(f, tiles):
    return {(tiles[t], int(r), int(c), int(y)) for t, r, c, y in zip(f["tile"][:], f["row"][:], f["col"][:], f["y"][:])}

vec, tiles = load("all_vector")
ras, _ = load("all_raster")
kv, kr = keys(vec, tiles), keys(ras, tiles)
agree = len(kv & kr) / max(len(kv | kr), 1)
print(f"ok: polygons vs label rasters: {len(kv)} vs {len(kr)} candidates, (tile,row,col,y) agreement {agree:.4f}")
assert len(kv) > 5000, "too few candidates to judge"
assert agree >= 0.99, f"polygons and label rasters disagree: agreement {agree:.4f}"

# The cap: exactly min(cap, candidates) per class, the same pixels from both label sources.
cap = 150
cand = np.bincount(ras["y"][:], minlength=16)
capped, _ = load("capped_raster")
kept = np.bincount(capped["y"][:], minlength=16)
assert (kept == np.minimum(cand, cap)).all(), f"cap not met: candidates {cand.tolist()} kept {kept.tolist()}"
assert (cand > cap).sum() >= 5, "fixture: too few classes above the cap to test it"
capped_vec, _ = load("capped")
assert keys(capped, tiles) == keys(capped_vec, tiles), "capped samples differ between polygons and label rasters"
assert keys(capped, tiles) <= kr, "capped samples are not candidates"
print(f"ok: per-class cap {cap}: kept {kept.tolist()} of {cand.tolist()}")

# Border: every sample's 3x3 neighbourhood (inside the tile) is one parcel and one class; border 0 keeps edges.
rasters = {}
for t in tiles:
    cls = gdal.Open(f"{labels}/{t}_class.tif").ReadAsArray()
    par = gdal.Open(f"{labels}/{t}_parcel.tif").ReadAsArray()
    rasters[t] = (cls, par)

def mixed(f):
    bad = 0
    for t, r, c, y, p in zip(f["tile"][:], f["row"][:], f["col"][:], f["y"][:], f["parcel"][:]):
        cls, par = rasters[tiles[t]]
        assert cls[r, c] == y and par[r, c] == p, "sample label/parcel differ from the label rasters"
        win = (slice(max(r - 1, 0), r + 2), slice(max(c - 1, 0), c + 2))
        bad += int((par[win] != p).any() or (cls[win] != y).any())
    return bad

assert mixed(ras) == 0, "border-1 samples with another parcel in their 3x3 neighbourhood"
edges = mixed(load("border0")[0])
assert edges > 0, "border 0 should keep parcel-edge pixels"
print(f"ok: border 1 keeps no mixed pixel; border 0 keeps {edges} parcel-edge pixels")

# Values: each sample's series is the composite's reflectance at its pixel.
with h5py.File(comp, "r") as cf:
    x = ras["x"]
    idx = np.linspace(0, len(ras["y"]) - 1, 200).astype(int)
    for i in idx:
        t = tiles[ras["tile"][i]]
        refl = cf[f"tiles/{t}/reflectance"][:, :, ras["row"][i], ras["col"][i]]
        assert (x[i] == refl).all(), f"sample {i}: x differs from the composite"
    assert list(ras.attrs["bands"]) == list(cf[f"tiles/{tiles[0]}"].attrs["bands"])
assert (ras["x"][:] != -32768).all(), "no-data inside samples"
print(f"ok: sample series equal the composite reflectance ({len(idx)} checked)")

# A national raster in EPSG:3035 warped back onto the tiles: the same pixels, bar a few at class boundaries.
nat, _ = load("national")
b0, _ = load("border0")
kn, kb = keys(nat, tiles), keys(b0, tiles)
agree = len(kn & kb) / len(kn | kb)
print(f"ok: EPSG:3035 raster vs tile rasters: agreement {agree:.4f}")
assert agree >= 0.98, f"warped national raster disagrees: {agree:.4f}"
PY

# 3. Per-tile warning when a tile has no labels; error when no tile has any.
extract one_layer 2 --labels "$R/parcels.gpkg" --layer 33UVP
grep -q "no labelled pixel of .* overlaps tile 32TQT" "$WORK/one_layer.log" || { cat "$WORK/one_layer.log"; fail "no warning for the unlabelled tile"; }
pass "tile without labels: warning, the other tile extracted"

# 4. Bad inputs: clear message, every rank stops, nothing that looks like output left behind.
no_output() { [ ! -e "$1" ] && [ ! -e "$1.partial.h5" ] || fail "$2: output $1 exists after a failed run"; }
O="$WORK/bad/out.h5"
expect_failure missing_tile "has no tile 99XXX" -- mpi 2 extract --composites "$C" --labels "$R/labels" --output "$O" --tiles 33UVP,99XXX
no_output "$O" missing_tile
expect_failure missing_field "crop_code" -- mpi 2 extract --composites "$C" --labels "$R/parcels.gpkg" --output "$O" --class-field crop_code
grep -q "fields: parcel_id, class_id, class_name" "$WORK/missing_field.log" || fail "missing field: found fields not named"
no_output "$O" missing_field
expect_failure missing_layer "layers: " -- mpi 2 extract --composites "$C" --labels "$R/parcels.gpkg" --output "$O" --layer 31UFT
no_output "$O" missing_layer
expect_failure missing_labels "$WORK/nope.gpkg" -- mpi 2 extract --composites "$C" --labels "$WORK/nope.gpkg" --output "$O"
no_output "$O" missing_labels
expect_failure missing_composites "$WORK/nope.h5" -- mpi 2 extract --composites "$WORK/nope.h5" --labels "$R/labels" --output "$O"
expect_failure not_composites "not an s2crop composite file" -- mpi 2 extract --composites "$WORK/all_raster.h5" --labels "$R/labels" --output "$O"
no_output "$O" not_composites
expect_failure no_overlap "no labelled pixel" -- mpi 2 extract --composites "$C" --labels "$R/parcels.gpkg" --layer 32TQT --tiles 33UVP --output "$O"
no_output "$O" no_overlap
before=$(md5sum < "$WORK/all_raster.h5")
expect_failure exists "--overwrite" -- mpi 2 extract --composites "$C" --labels "$R/labels" --output "$WORK/all_raster.h5"
[ "$(md5sum < "$WORK/all_raster.h5")" = "$before" ] || fail "exists: the existing output was changed"
grep -q "different run" "$WORK/exists.log" || fail "exists: the message does not say the output is from a different run"
# The very same extraction again (a resubmitted job chain): nothing to do, output untouched.
extract all_raster 2 --labels "$R/labels" --per-class 0
grep -q "already holds this extraction" "$WORK/all_raster.log" || { cat "$WORK/all_raster.log"; fail "rerun did not say it had nothing to do"; }
[ "$(md5sum < "$WORK/all_raster.h5")" = "$before" ] || fail "rerun of a finished extraction changed the output"
pass "extract: all checks passed"
