#!/usr/bin/env bash
# segment predict: a U-Net over whole tiles by blended sliding windows. The map is identical whether a tile is one
# block or blocks of 32 px on 1, 2 and 3 ranks; a run killed with SIGKILL and restarted with the same command resumes
# and writes the identical file; no seams show at window boundaries; COGs equal the HDF5; bad input (a classifier
# LSTM given as the U-Net, a composite lacking a band the model needs) fails clearly and writes nothing.
source "$(dirname "$0")/../lib.sh"
synth_region "$WORK/region" --tiles 33UVP,32TQT --size 96
composite_region
mpi 2 extract --composites "$WORK/comp.h5" --labels "$WORK/region/parcels.gpkg" --patches 32 --patch-stride 16 \
  --output "$WORK/patches.h5" > "$WORK/extract.log" 2>&1 || { cat "$WORK/extract.log"; fail "extract --patches failed"; }
for task in multiclass multilabel; do
  start=$(date +%s)
  mpi 1 segment train --patches "$WORK/patches.h5" --output "$WORK/$task.h5" --head "$task" --epochs 20 \
    --batch-size 8 --width 8 --threads 2 > "$WORK/train-$task.log" 2>&1 || { cat "$WORK/train-$task.log"; fail "segment train $task failed"; }
  echo "segment train --head $task: $(( $(date +%s) - start )) s"
done

W=32 O=8  # windows of 32 px overlapping by 8 on 96 px tiles: starts 0, 24, 48, 64 along each axis
run() {  # [OV=overlap] run DIR RANKS MODEL BLOCK [options]: the one command (relative output: the same stored config)
  local dir="$1" n="$2" model="$3" block="$4"; shift 4
  mkdir -p "$dir"
  (cd "$dir" && mpi "$n" segment predict --composites "$WORK/comp.h5" --model "$WORK/$model.h5" --output out/map.h5 \
     --window $W --overlap "${OV:-$O}" --block-size "$block" "$@")
}
same_map() { "$PY" "$TESTS_DIR/h5_compare.py" --ignore-attr config --ignore-attr run_fingerprint "$1" "$2"; }

# 1. One block per tile (block larger than the tile) vs blocks of 32 px on 1, 2 and 3 ranks: bitwise identical.
start=$(date +%s)
run "$WORK/whole" 1 multiclass 128 --probabilities > "$WORK/whole.log" 2>&1 \
  || { cat "$WORK/whole.log"; fail "segment predict (one block per tile) failed"; }
echo "segment predict, one block per tile, 1 rank: $(( $(date +%s) - start )) s"
grep -q "2 blocks of 128 px" "$WORK/whole.log" || { cat "$WORK/whole.log"; fail "expected one block per tile"; }
for n in 1 2 3; do
  start=$(date +%s)
  run "$WORK/r$n" $n multiclass 32 --probabilities > "$WORK/r$n.log" 2>&1 \
    || { cat "$WORK/r$n.log"; fail "segment predict on $n ranks failed"; }
  echo "segment predict, blocks of 32 px, $n rank(s): $(( $(date +%s) - start )) s"
  same_map "$WORK/whole/out/map.h5" "$WORK/r$n/out/map.h5" || fail "blocks of 32 px on $n rank(s) differ from one block"
done
"$PY" - "$WORK/whole/out/map.h5" "$WORK/comp.h5" "$WORK/multiclass.h5" <<'PY' || fail "multiclass map layout or content wrong"
import sys
import h5py
import numpy as np
dec = lambda v: [x.decode() if isinstance(x, bytes) else x for x in v]
with h5py.File(sys.argv[1], "r") as m, h5py.File(sys.argv[2], "r") as c, h5py.File(sys.argv[3], "r") as model:
    assert m.attrs["format"] == "s2crop segmentation map" and m.attrs["task"] == "multiclass"
    names = dec(m.attrs["output_names"])
    assert names == dec(model.attrs["class_names"]) == dec(m.attrs["class_names"])
    assert m.attrs["window"] == 32 and m.attrs["overlap"] == 8 and len(m.attrs["class_colours"]) == 3 * len(names)
    bands, months = dec(model.attrs["bands"]), [int(v) for v in model.attrs["unet_months"]]
    nc = len(names)
    for tile in c["tiles"]:
        g, t = m["tiles"][tile], c["tiles"][tile]
        cls, conf, prob = g["class"][()], g["confidence"][()], g["probability"][()]
        refl = t["reflectance"][()]
        used = refl[months][:, [dec(t.attrs["bands"]).index(b) for b in bands]]
        assert cls.shape == refl.shape[2:] and prob.shape == (nc,) + cls.shape
        assert dec(g["output_name"][()]) == names
        nodata = (used == -32768).all(axis=(0, 1))
        assert ((cls == 255) == nodata).all(), "no data must be exactly the pixels without data in every channel used"
        assert (prob[:, nodata] == 255).all() and (conf[nodata] == 0).all()
        ok = ~nodata
        assert ok.sum() > 0 and (cls[ok] < nc).all() and (prob[:, ok] <= 100).all()
        # the class is the most probable one (up to rounding to percent) and its probability is the confidence
        chosen = np.take_along_axis(prob, cls[None].astype(int).clip(0, nc - 1), 0)[0]
        assert (prob.max(axis=0)[ok] - chosen[ok] <= 1).all()
        assert (np.abs(conf[ok].astype(int) - chosen[ok]) <= 1).all()
        assert (np.abs(prob[:, ok].astype(int).sum(axis=0) - 100) <= nc).all(), "class probabilities must sum to 1"
        assert tuple(g.attrs["geotransform"]) == tuple(t.attrs["geotransform"])
print("ok: layout, no data, class = argmax of the stored probabilities, confidence = its probability")
PY
pass "segment predict (multiclass): one block per tile and blocks of 32 px on 1, 2 and 3 ranks give identical maps"

# Multilabel: the same identity (one block vs blocks of 32 px on 2 ranks), labels = probability >= threshold.
run "$WORK/ml_whole" 1 multilabel 128 > "$WORK/ml_whole.log" 2>&1 || { cat "$WORK/ml_whole.log"; fail "multilabel failed"; }
run "$WORK/ml_r2" 2 multilabel 32 > "$WORK/ml_r2.log" 2>&1 || { cat "$WORK/ml_r2.log"; fail "multilabel on 2 ranks failed"; }
same_map "$WORK/ml_whole/out/map.h5" "$WORK/ml_r2/out/map.h5" || fail "multilabel: blocks of 32 px on 2 ranks differ"
"$PY" - "$WORK/ml_whole/out/map.h5" "$WORK/multilabel.h5" <<'PY' || fail "multilabel map layout or content wrong"
import sys
import h5py
import numpy as np
dec = lambda v: [x.decode() if isinstance(x, bytes) else x for x in v]
with h5py.File(sys.argv[1], "r") as m, h5py.File(sys.argv[2], "r") as model:
    assert m.attrs["task"] == "multilabel" and m.attrs["threshold"] == 0.5
    names = dec(m.attrs["output_names"])
    assert names == dec(model.attrs["class_names"]) and "class_names" not in m.attrs
    for tile in m["tiles"]:
        g = m["tiles"][tile]
        prob, label = g["probability"][()], g["label"][()]
        assert "class" not in g and prob.shape == label.shape == (len(names),) + prob.shape[1:]
        nodata = prob == 255
        assert ((label == 255) == nodata).all()
        ok = ~nodata
        assert (prob[ok] <= 100).all() and set(np.unique(label[ok])) <= {0, 1}
        assert (label[ok & (prob >= 51)] == 1).all() and (label[ok & (prob <= 49)] == 0).all()
print("ok: multilabel layout, labels = probability >= 0.5")
PY
pass "segment predict (multilabel): one block per tile and blocks of 32 px on 2 ranks give identical maps"

# 2. No visible seams: the mean absolute difference of the stored probabilities between adjacent pixels across a
# window boundary is not larger than 1.5x that elsewhere (multiclass and multilabel maps). For contrast, abutting
# windows without blending (--overlap 0) are measured the same way: there the check must see the seams.
OV=0 run "$WORK/abut" 1 multiclass 128 --probabilities > "$WORK/abut.log" 2>&1 \
  || { cat "$WORK/abut.log"; fail "segment predict --overlap 0 failed"; }
"$PY" - "$WORK" <<'PY' || fail "seams at window boundaries"
import sys
import h5py
import numpy as np
work = sys.argv[1]
def starts(n, e, s):
    out, p = [], 0
    while True:
        if p + e >= n:
            return out + [n - e]
        out.append(p)
        p += s
def ratio(path, overlap, window=32):
    across, elsewhere = [], []
    with h5py.File(path, "r") as m:
        for tile in m["tiles"]:
            prob = m["tiles"][tile]["probability"][()].astype(float)
            for axis in (2, 1):  # horizontal neighbours (x), then vertical ones (y)
                n = prob.shape[axis]
                edges = set()
                for s in starts(n, window, window - overlap):
                    edges |= {s, s + window}
                a = np.moveaxis(prob, axis, 0)
                for x in range(1, n):
                    left, right = a[x - 1], a[x]
                    ok = (left != 255) & (right != 255)
                    d = np.abs(left - right)[ok]
                    (across if x in edges else elsewhere).append(d)
    across, elsewhere = np.concatenate(across).mean(), np.concatenate(elsewhere).mean()
    assert elsewhere > 0, f"{path}: the probabilities are constant, the seam check would mean nothing"
    return across / elsewhere, across, elsewhere
blended = ratio(f"{work}/whole/out/map.h5", 8)
blended_ml = ratio(f"{work}/ml_whole/out/map.h5", 8)
abutting = ratio(f"{work}/abut/out/map.h5", 0)
print("mean |dp| across window boundaries / elsewhere: blended multiclass %.3f (%.3f / %.3f), multilabel %.3f "
      "(%.3f / %.3f); abutting windows without blending %.3f (%.3f / %.3f)" % (blended + blended_ml + abutting))
assert blended[0] <= 1.5, "seams: the blended multiclass map changes more across window boundaries than elsewhere"
assert blended_ml[0] <= 1.5, "seams: the blended multilabel map changes more across window boundaries than elsewhere"
assert abutting[0] > 1.5, "the check does not see the seams of abutting windows: it would not see any"
PY
pass "no seams at window boundaries"

# 3. SIGKILL + restart: the same command resumes and writes the identical file. Blocks of 16 px (36 per tile); the
# ranks are killed (SIGKILL, by their parent's process id) as soon as a block is done.
total=72
dir="$WORK/killed"
interrupt_blocks "$dir" out/map.h5 "$total" run "$dir" 2 multiclass 16 --probabilities --threads 1
done_before=$PARTS_DONE
run "$dir" 2 multiclass 16 --probabilities --threads 1 > "$dir/second.log" 2>&1 \
  || { cat "$dir/second.log"; fail "restart failed"; }
grep -q "$total blocks of 16 px, $done_before already done" "$dir/second.log" \
  || { cat "$dir/second.log"; fail "restart did not resume"; }
same_map "$WORK/r1/out/map.h5" "$dir/out/map.h5" || fail "resumed map differs"
[ ! -e "$dir/out/map.h5.parts" ] || fail "parts left behind"
run "$dir" 2 multiclass 16 --probabilities --threads 1 > "$dir/third.log" 2>&1 || fail "rerun failed"
grep -q "already complete" "$dir/third.log" || { cat "$dir/third.log"; fail "a rerun of a finished map is not a no-op"; }
pass "killed with $done_before/$total blocks done, restarted: identical map; a rerun is a no-op"

# 4. Exports: COGs equal the HDF5 (multiclass: the class map with colour table and names; multilabel: a band per
# label), quicklooks written.
run "$WORK/exp_mc" 2 multiclass 32 --cog cog --quicklook ql > "$WORK/exp_mc.log" 2>&1 \
  || { cat "$WORK/exp_mc.log"; fail "multiclass exports failed"; }
run "$WORK/exp_ml" 2 multilabel 32 --cog cog --quicklook ql > "$WORK/exp_ml.log" 2>&1 \
  || { cat "$WORK/exp_ml.log"; fail "multilabel exports failed"; }
"$PY" - "$WORK" <<'PY' || fail "exports wrong"
import sys
import h5py
from osgeo import gdal
w = sys.argv[1]
dec = lambda v: [x.decode() if isinstance(x, bytes) else x for x in v]
with h5py.File(f"{w}/exp_mc/out/map.h5", "r") as m:
    names = dec(m.attrs["class_names"])
    for tile in m["tiles"]:
        ds = gdal.Open(f"{w}/exp_mc/cog/{tile}_class.tif")  # kept: a band outlives no dataset
        band = ds.GetRasterBand(1)
        assert (band.ReadAsArray() == m["tiles"][tile]["class"][()]).all(), "class COG differs from the HDF5"
        assert band.GetNoDataValue() == 255 and band.GetCategoryNames()[:len(names)] == names
        ct = band.GetColorTable()
        assert ct is not None and tuple(ct.GetColorEntry(1)[:3]) == tuple(int(v) for v in m.attrs["class_colours"][3:6])
        assert gdal.Open(f"{w}/exp_mc/ql/{tile}_class.png") is not None
with h5py.File(f"{w}/exp_ml/out/map.h5", "r") as m:
    names = dec(m.attrs["output_names"])
    for tile in m["tiles"]:
        ds = gdal.Open(f"{w}/exp_ml/cog/{tile}_probability.tif")
        prob = m["tiles"][tile]["probability"][()]
        assert ds.RasterCount == len(names)
        for k in range(len(names)):
            b = ds.GetRasterBand(k + 1)
            assert (b.ReadAsArray() == prob[k]).all(), f"probability COG band {k + 1} differs from the HDF5"
            assert b.GetDescription() == names[k] and b.GetNoDataValue() == 255
        assert gdal.Open(f"{w}/exp_ml/ql/{tile}_probability.png") is not None
print("ok: COGs equal the HDF5 maps (class with colour table and names; a band per label), quicklooks written")
PY
pass "COGs equal the HDF5, quicklooks written"

# 5. Bad input: clear errors, nothing written.
"$PY" "$TESTS_DIR/make_training_set.py" "$WORK/set.h5" --samples 300 > /dev/null
mpi 1 train --samples "$WORK/set.h5" --output "$WORK/lstm.h5" --hidden 8 --epochs 1 --threads 1 > "$WORK/lstm.log" 2>&1 \
  || { cat "$WORK/lstm.log"; fail "train (LSTM) failed"; }
"$PY" - "$WORK/comp.h5" "$WORK/comp_lacking.h5" "$WORK/multiclass.h5" <<'PY'
import shutil, sys
import h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[3], "r") as model:
    band = [b.decode() if isinstance(b, bytes) else b for b in model.attrs["bands"]][0]
with h5py.File(sys.argv[2], "a") as f:
    for tile in f["tiles"].values():
        bands = [b.decode() if isinstance(b, bytes) else b for b in tile.attrs["bands"]]
        bands[bands.index(band)] = "B99"
        tile.attrs["bands"] = bands
print("renamed", band)
PY
expect_failure lstm_as_unet "not a U-Net segmentation model" -- mpi 2 segment predict --composites "$WORK/comp.h5" \
  --model "$WORK/lstm.h5" --output "$WORK/bad/x.h5"
expect_failure lacking_band "lacks band" -- mpi 2 segment predict --composites "$WORK/comp_lacking.h5" \
  --model "$WORK/multiclass.h5" --output "$WORK/bad/x.h5"
expect_failure overlap_too_large "--overlap must be" -- mpi 1 segment predict --composites "$WORK/comp.h5" \
  --model "$WORK/multiclass.h5" --output "$WORK/bad/x.h5" --window 32 --overlap 32
[ ! -e "$WORK/bad/x.h5" ] && [ ! -e "$WORK/bad/x.h5.parts" ] && [ ! -e "$WORK/bad/x.h5.partial.h5" ] \
  || fail "an output was written for bad input"
pass "bad input fails clearly and writes nothing"
