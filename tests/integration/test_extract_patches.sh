#!/usr/bin/env bash
# s2crop extract --patches on a synthetic region: 1, 2 and 3 ranks give identical patch sets; the layout and
# attributes are the agreed ones; every patch's x and clear flags are the composite's at its row/col, crop_type is
# synth's class raster, field_boundary is exactly the parcel pixels with a 4-neighbour in another parcel or
# unlabelled, cropland = labelled; the kept windows are exactly the grid windows at least --min-labelled labelled
# (--min-labelled 0: every window, overlapping with --patch-stride); bad inputs fail clearly and write nothing.
source "$(dirname "$0")/../lib.sh"
R="$WORK/region"
synth_region "$R" --tiles 33UVP,32TQT --size 96
C="$WORK/composites.h5"
# Blocks of 48 px: windows of 32 px straddle blocks, and each tile has 2 bands of windows to spread over ranks.
mpi 2 composite --input "$R/stac" --output "$C" --block-size 48 > "$WORK/composite.log" 2>&1 \
  || { cat "$WORK/composite.log"; fail "composite failed"; }

patches() {  # patches DIR RANKS args...: writes DIR/patches.h5 (the same output name, so the same stored config)
  local dir="$1" n="$2"; shift 2
  mkdir -p "$dir"
  (cd "$dir" && mpi "$n" extract --composites "$C" --output patches.h5 "$@") > "$dir/log" 2>&1 \
    || { cat "$dir/log"; fail "extract --patches in $dir on $n ranks failed"; }
}

# 1. Rank invariance.
start=$(date +%s)
for n in 1 2 3; do patches "$WORK/r$n" $n --labels "$R/parcels.gpkg" --patches 32; done
echo "extract --patches 32 on 1, 2 and 3 ranks: $(( $(date +%s) - start )) s"
h5_same "$WORK/r1/patches.h5" "$WORK/r2/patches.h5" || fail "patch sets differ between 1 and 2 ranks"
h5_same "$WORK/r1/patches.h5" "$WORK/r3/patches.h5" || fail "patch sets differ between 1 and 3 ranks"
pass "1, 2 and 3 ranks give identical patch sets"

# 2. Every window of an overlapping grid, from the label rasters; an overlapping grid filtered by --min-labelled
# (32TQT has windows 9 % to 100 % labelled, so 0.75 drops some).
patches "$WORK/all" 2 --labels "$R/labels" --patches 32 --patch-stride 24 --min-labelled 0
patches "$WORK/filtered" 3 --labels "$R/parcels.gpkg" --patches 32 --patch-stride 16 --min-labelled 0.75

"$PY" - "$C" "$R/labels" "$WORK/r1/patches.h5" "$WORK/all/patches.h5" "$WORK/filtered/patches.h5" <<'PY' \
  || fail "patch checks failed"
import sys
import h5py
import numpy as np
from osgeo import gdal

comp, labels, default_path, all_path, filtered_path = sys.argv[1:6]
cf = h5py.File(comp, "r")
comp_tiles = list(cf["tiles"])
rasters = {}
for t in comp_tiles:
    cls = gdal.Open(f"{labels}/{t}_class.tif").ReadAsArray()
    par = gdal.Open(f"{labels}/{t}_parcel.tif").ReadAsArray().astype(np.int64)
    labelled = cls != 255
    # field boundary: a labelled pixel with a 4-neighbour of another parcel (id or class) or unlabelled; beyond the
    # tile edge nothing (edge padding repeats the pixel itself)
    pc, pp = np.pad(cls, 1, mode="edge"), np.pad(par, 1, mode="edge")
    h, w = cls.shape
    edge = np.zeros(cls.shape, bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nc = pc[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        npar = pp[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        edge |= (nc != cls) | (npar != par)
    rasters[t] = (cls, edge & labelled)

def check(path, S, stride, min_labelled):
    f = h5py.File(path, "r")
    a = f.attrs
    assert a["format"] == "s2crop patch set" and a["format_version"] == 1, dict(a)
    for k in ("s2crop_version", "created", "config", "inputs"):
        assert k in a, k
    assert int(a["patch_size"]) == S
    assert list(a["label_layers"]) == ["crop_type", "field_boundary", "cropland"], list(a["label_layers"])
    tiles = list(a["tiles"])
    assert tiles == comp_tiles, (tiles, comp_tiles)
    g0 = cf["tiles"][tiles[0]]
    assert list(a["bands"]) == list(g0.attrs["bands"])
    assert list(a["months"]) == list(g0.attrs["months"]) and len(a["months"]) == 12
    assert str(a["months"][0])[:4].isdigit() and str(a["months"][0])[4] == "-", a["months"][0]
    assert int(a["season_start_month"]) == int(str(a["months"][0])[5:7]), (a["season_start_month"], a["months"][0])
    assert len(a["class_names"]) == 16 and a["class_names"][0]
    B = len(a["bands"])
    n = f["tile"].shape[0]
    assert f["x"].shape == (n, 12, B, S, S) and f["x"].dtype == np.int16
    assert f["labels"].shape == (n, 3, S, S) and f["labels"].dtype == np.uint8
    assert f["clear"].shape == (n, 12, S, S) and f["clear"].dtype == np.uint8
    assert f["tile"].dtype == np.uint16 and f["row"].dtype == np.int32 and f["col"].dtype == np.int32
    assert f["row"].shape == f["col"].shape == (n,)
    assert f["x"].chunks == (1, 12, B, S, S) and f["x"].compression == "gzip"
    assert f["labels"].chunks == (1, 3, S, S) and f["clear"].chunks == (1, 12, S, S)
    tile, row, col = f["tile"][:], f["row"][:], f["col"][:]
    keys = list(zip(tile.tolist(), row.tolist(), col.tolist()))
    assert keys == sorted(keys) and len(set(keys)) == n, "patches not in tile, row-major order"
    # the windows kept are exactly the grid windows at least min_labelled labelled
    expected = []
    for ti, t in enumerate(tiles):
        cls = rasters[t][0]
        H, W = cls.shape
        for r in range(0, H - S + 1, stride):
            for c in range(0, W - S + 1, stride):
                if (cls[r:r + S, c:c + S] != 255).sum() >= min_labelled * S * S:
                    expected.append((ti, r, c))
    assert keys == expected, f"kept windows differ: {len(keys)} vs {len(expected)} expected"
    x, lab, clr = f["x"][:], f["labels"][:], f["clear"][:]
    mism = 0
    for i, (ti, r, c) in enumerate(keys):
        g = cf["tiles"][tiles[ti]]
        assert (x[i] == g["reflectance"][:, :, r:r + S, c:c + S]).all(), f"patch {i}: x differs from the composite"
        assert (clr[i] == (g["clear_count"][:, r:r + S, c:c + S] > 0)).all(), f"patch {i}: clear differs"
        cls, edge = rasters[tiles[ti]]
        win = cls[r:r + S, c:c + S]
        assert (lab[i, 0] == win).all(), f"patch {i} ({tiles[ti]} {r},{c}): crop_type differs from the class raster"
        assert (lab[i, 1] == edge[r:r + S, c:c + S]).all(), f"patch {i} ({tiles[ti]} {r},{c}): field_boundary differs"
        assert (lab[i, 2] == (win != 255)).all(), f"patch {i}: cropland != labelled"
    assert set(np.unique(lab[:, 1])) <= {0, 1} and set(np.unique(lab[:, 2])) <= {0, 1}
    assert lab[:, 1].sum() > 0 and (lab[:, 2] == 0).sum() > 0, "fixture: no boundary or no background pixel"
    assert (lab[:, 0][lab[:, 0] != 255] < 16).all()
    per_tile = np.bincount(tile, minlength=len(tiles)).tolist()
    print(f"ok: {path.split('/')[-2]}: {n} patches {S}px stride {stride} (per tile {per_tile}), labelled share "
          f"{(lab[:, 2] == 1).mean():.3f}, boundary share {(lab[:, 1] == 1).mean():.3f}; x, clear, crop_type, "
          f"field_boundary, cropland match the composite and label rasters")
    return n

n_default = check(default_path, 32, 32, 0.05)
n_all = check(all_path, 32, 24, 0.0)
assert n_all == 2 * 3 * 3, f"--min-labelled 0 with stride 24 on 96 px tiles: {n_all} patches, expected 18"
n_filtered = check(filtered_path, 32, 16, 0.75)
assert 25 < n_filtered < 50, f"fixture: --min-labelled 0.75 should drop some of the 50 windows, kept {n_filtered}"
PY
pass "layout, order, kept windows, values and label layers"

# 3. An identical rerun is a no-op; another run is refused without --overwrite, replaced with it.
before=$(md5sum < "$WORK/r2/patches.h5")
patches "$WORK/r2" 2 --labels "$R/parcels.gpkg" --patches 32
grep -q "already holds this extraction" "$WORK/r2/log" || { cat "$WORK/r2/log"; fail "rerun did not say it had nothing to do"; }
[ "$(md5sum < "$WORK/r2/patches.h5")" = "$before" ] || fail "rerun changed the output"
cd "$WORK/r2"
expect_failure exists "--overwrite" -- mpi 2 extract --composites "$C" --output patches.h5 --labels "$R/parcels.gpkg" --patches 16
[ "$(md5sum < "$WORK/r2/patches.h5")" = "$before" ] || fail "a refused run changed the output"
mpi 2 extract --composites "$C" --output patches.h5 --labels "$R/parcels.gpkg" --patches 16 --overwrite > "$WORK/ow.log" 2>&1 \
  || { cat "$WORK/ow.log"; fail "--overwrite failed"; }
"$PY" -c "import h5py,sys; assert h5py.File('patches.h5','r').attrs['patch_size'] == 16" || fail "--overwrite did not replace"
cd "$WORK"
pass "rerun no-op, --overwrite"

# 4. Bad inputs: a clear message, every rank stops, no output (option errors on 1 rank: mpirun start-up is the cost).
no_output() { [ ! -e "$1" ] && [ ! -e "$1.partial.h5" ] || fail "$2: output $1 exists after a failed run"; }
O="$WORK/bad/out.h5"
expect_failure too_large "--patches 128 is larger than tile" -- mpi 2 extract --composites "$C" --labels "$R/labels" --output "$O" --patches 128
no_output "$O" too_large
expect_failure missing_labels "$WORK/nope.gpkg" -- mpi 2 extract --composites "$C" --labels "$WORK/nope.gpkg" --output "$O" --patches 32
no_output "$O" missing_labels
expect_failure too_small "--patches must be 8-1024" -- mpi 1 extract --composites "$C" --labels "$R/labels" --output "$O" --patches 4
no_output "$O" too_small
expect_failure pixel_option "--per-class does not apply with --patches" -- mpi 1 extract --composites "$C" --labels "$R/labels" --output "$O" --patches 32 --per-class 10
no_output "$O" pixel_option
expect_failure bad_fraction "--min-labelled must be a fraction" -- mpi 1 extract --composites "$C" --labels "$R/labels" --output "$O" --patches 32 --min-labelled 1.5
no_output "$O" bad_fraction
expect_failure nothing_kept "no labelled pixel" -- mpi 2 extract --composites "$C" --labels "$R/parcels.gpkg" --layer 32TQT --tiles 33UVP --output "$O" --patches 32 --min-labelled 0.5
no_output "$O" nothing_kept
pass "extract --patches: all checks passed"
