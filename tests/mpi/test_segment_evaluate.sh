#!/usr/bin/env bash
# segment evaluate: a U-Net scored on a patch set's labels. The report JSON is identical on 1 and 2 ranks; its
# per-label IoU, F1, precision, recall and support equal numpy's recount from the written predictions and the patch
# set's labels (to 1e-9), multiclass and multilabel; for a set with image-level labels (label_scope patch) the
# patch-level precision / recall / F1 equal numpy's from the mean probabilities; PNGs of sample patches decode with
# GDAL at the expected size; a trained model beats a barely trained one on a held-out tile; segment train logs the
# best epoch's per-label table; bad input fails clearly on 2 ranks and leaves no output.
source "$(dirname "$0")/../lib.sh"
synth_region "$WORK/region" --tiles 32TQT,33UVP --size 96
composite_region
mpi 2 extract --composites "$WORK/comp.h5" --labels "$WORK/region/parcels.gpkg" --patches 16 --min-labelled 0.2 \
  --output "$WORK/patches.h5" > "$WORK/extract.log" 2>&1 || { cat "$WORK/extract.log"; fail "extract --patches failed"; }

train() {  # train NAME ARGS...: a tiny U-Net validated on tile 33UVP
  local name="$1"; shift
  mpi 2 segment train --patches "$WORK/patches.h5" --depth 2 --width 8 --batch-size 4 --threads 1 --val-tiles 33UVP \
    --lr 5e-3 --patience 0 --output "$WORK/$name.h5" "$@" > "$WORK/train-$name.log" 2>&1 \
    || { cat "$WORK/train-$name.log"; fail "segment train $name failed"; }
}
start=$(date +%s)
train mc --epochs 12
train mc0 --epochs 1 --max-steps 1
train ml --epochs 6 --head multilabel
train ml0 --epochs 1 --max-steps 1 --head multilabel
echo "four tiny U-Nets trained in $(( $(date +%s) - start )) s"
grep -q "validation of the best epoch" "$WORK/train-mc.log" && grep -q "mean .*[0-9]" "$WORK/train-mc.log" \
  || { cat "$WORK/train-mc.log"; fail "segment train does not log the best epoch's per-label table"; }
grep -A4 "validation of the best epoch" "$WORK/train-mc.log" | sed 's/^/  /'

evaluate() {  # evaluate DIR RANKS MODEL PATCHES [options]
  local dir="$1" n="$2" model="$3" patches="$4"; shift 4
  mkdir -p "$dir"
  mpi "$n" segment evaluate --model "$WORK/$model.h5" --patches "$patches" --output "$dir/report.json" \
    --predictions "$dir/pred.h5" --threads 1 "$@" > "$dir.log" 2>&1 || { cat "$dir.log"; fail "segment evaluate $dir failed"; }
}

# 1. Rank invariance: the same report (and predictions) on 1 and 2 ranks.
start=$(date +%s)
evaluate "$WORK/mc1" 1 mc "$WORK/patches.h5" --png "$WORK/mc1/png" --samples 3
evaluate "$WORK/mc2" 2 mc "$WORK/patches.h5"
echo "segment evaluate, 1 and 2 ranks: $(( $(date +%s) - start )) s"
sed -n '/pixel level/,/pixel accuracy/p' "$WORK/mc1.log"
"$PY" - "$WORK/mc1/report.json" "$WORK/mc2/report.json" <<'PY' || fail "reports differ between 1 and 2 ranks"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
a.pop("png"), b.pop("png")  # only the PNG list differs (PNGs asked on 1 rank only)
assert a == b, "reports differ"
print(f"ok: report identical on 1 and 2 ranks ({a['patches_evaluated']} patches, mean IoU {a['pixel']['mean_iou']:.4f})")
PY
"$PY" "$TESTS_DIR/h5_compare.py" --ignore-attr config "$WORK/mc1/pred.h5" "$WORK/mc2/pred.h5" \
  || fail "predictions differ between 1 and 2 ranks"
pass "segment evaluate: report and predictions identical on 1 and 2 ranks"

# 2. Multilabel on 2 ranks, and a copy of the set with image-level labels (label_scope patch: each patch's labels are
# its majority, broadcast to its pixels, as BigEarthNet's).
"$PY" - "$WORK/patches.h5" "$WORK/patch_scope.h5" <<'PY'
import shutil, sys
import h5py, numpy as np
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "a") as f:
    f.attrs["label_scope"] = "patch"
    labels = f["labels"][()]
    for i in range(labels.shape[0]):
        for l in range(labels.shape[1]):
            v = labels[i, l][labels[i, l] != 255]
            labels[i, l] = np.bincount(v).argmax() if v.size else 255
    f["labels"][...] = labels
PY
evaluate "$WORK/ml" 2 ml "$WORK/patches.h5" --png "$WORK/ml/png" --samples 2
evaluate "$WORK/ps" 2 ml "$WORK/patch_scope.h5"
sed -n '/patch level/,/mean/p' "$WORK/ps.log"

# 3. numpy recount from the predictions and the patch set's labels.
"$PY" - "$WORK" <<'PY' || fail "the report does not match numpy's recount"
import json, math, sys
import h5py, numpy as np
w = sys.argv[1]
dec = lambda v: [x.decode() if isinstance(x, bytes) else x for x in v]

def scores(tp, fp, fn):
    r = lambda a, b: a / b if b > 0 else math.nan
    return {"iou": r(tp, tp + fp + fn), "f1": r(2 * tp, 2 * tp + fp + fn), "precision": r(tp, tp + fp),
            "recall": r(tp, tp + fn), "support": tp + fn}

def same(x, y):
    return (y is None and math.isnan(x)) or (y is not None and abs(x - y) <= 1e-9)

def check(run, model, patches):
    rep = json.load(open(f"{w}/{run}/report.json"))
    with h5py.File(f"{w}/{model}.h5") as m, h5py.File(patches) as p, h5py.File(f"{w}/{run}/pred.h5") as q:
        names, task = dec(m.attrs["class_names"]), q.attrs["task"]
        layers, classes = dec(p.attrs["label_layers"]), dec(p.attrs["class_names"])
        sel = q["patch"][()]
        labels = p["labels"][()][sel]
        pred = q["prediction"][()]
        assert dec(q.attrs["output_names"]) == names == rep["outputs"]
        crop = layers.index("crop_type")
        per = rep["pixel"]["per_label"]
        means = []
        for o, name in enumerate(names):
            if task == "multiclass":
                t, pr = labels[:, crop], pred[:, 0]
                valid = t != 255
                tt, pp = (t == o) & valid, (pr == o) & valid
            else:
                if name in layers:
                    t = labels[:, layers.index(name)]
                    tt = t == 1
                else:
                    t = labels[:, crop]
                    tt = t == classes.index(name)
                valid = t != 255
                tt, pp = tt & valid, (pred[:, o] == 1) & valid
            s = scores(float((tt & pp).sum()), float((~tt & pp).sum()), float((tt & ~pp).sum()))
            for k, v in s.items():
                assert same(v, per[o][k]), (run, name, k, v, per[o][k])
            if not math.isnan(s["iou"]):
                means.append(s["iou"])
        assert abs(np.mean(means) - rep["pixel"]["mean_iou"]) <= 1e-9
        if task == "multiclass":
            t = labels[:, crop]
            acc = ((pred[:, 0] == t) & (t != 255)).sum() / (t != 255).sum()
            assert abs(acc - rep["pixel"]["pixel_accuracy"]) <= 1e-9
        if "patch_level" in rep:
            prob = q["patch_probability"][()]
            per = rep["patch_level"]["metrics"]["per_label"]
            for o, name in enumerate(names):
                t = labels[:, layers.index(name)] if name in layers else labels[:, crop]
                truth = t[:, 0, 0] if name in layers else t[:, 0, 0] == classes.index(name)
                valid = t[:, 0, 0] != 255
                truth = (truth == 1) & valid
                pp = (prob[:, o] > 0.5) & valid
                s = scores(float((truth & pp).sum()), float((~truth & pp).sum()), float((truth & ~pp).sum()))
                for k, v in s.items():
                    assert same(v, per[o][k]), (run, "patch level", name, k, v, per[o][k])
            print(f"ok: {run}: patch-level precision/recall/F1 of {len(names)} labels over {len(sel)} patches match "
                  f"numpy (mean F1 {rep['patch_level']['metrics']['mean_f1']:.4f})")
        print(f"ok: {run}: {task} per-label IoU/F1/precision/recall/support of {len(names)} outputs match numpy "
              f"(mean IoU {rep['pixel']['mean_iou']:.4f})")

check("mc1", "mc", f"{w}/patches.h5")
check("ml", "ml", f"{w}/patches.h5")
check("ps", "ml", f"{w}/patch_scope.h5")
PY
pass "per-label metrics (pixel and patch level) recomputed with numpy match the reports"

# 4. PNGs: the requested number, readable, 3 colour bands, panels of 16 px patches enlarged to 128 px.
"$PY" - "$WORK" <<'PY' || fail "PNGs wrong"
import glob, json, sys
from osgeo import gdal
w = sys.argv[1]
for run, count, min_w, min_h in (("mc1", 3, 3 * 128 + 12, 128 + 12), ("ml", 2, 3 * 128 + 12, 2 * (128 + 12))):
    files = sorted(glob.glob(f"{w}/{run}/png/*.png"))
    assert len(files) == count, files
    assert sorted(json.load(open(f"{w}/{run}/report.json"))["png"]) == [f.split("/")[-1] for f in files]
    for f in files:
        ds = gdal.Open(f)
        assert ds is not None and ds.RasterCount == 3, f
        assert ds.RasterXSize > min_w and ds.RasterYSize >= min_h, (f, ds.RasterXSize, ds.RasterYSize)
        assert ds.GetRasterBand(1).ReadAsArray().std() > 0, f"{f} is blank"
    print(f"ok: {run}: {count} PNGs ({files[0].split('/')[-1]} ...), {ds.RasterXSize}x{ds.RasterYSize} px")
PY
pass "PNGs of sample patches written"

# 5. Learning shows on the held-out tile: the multilabel U-Net of 6 epochs beats its one-step start in mean IoU; the
# multiclass one (16 crop classes from 66 patches of 16 px: hard) beats one step and chance in pixel accuracy.
for m in mc mc0 ml ml0; do evaluate "$WORK/held-$m" 2 $m "$WORK/patches.h5" --tiles 33UVP; done
"$PY" - "$WORK" <<'PY' || fail "training did not improve the held-out score"
import json, sys
r = {m: json.load(open(f"{sys.argv[1]}/held-{m}/report.json")) for m in ("mc", "mc0", "ml", "ml0")}
k = len(r["mc"]["outputs"])
assert r["mc"]["tiles"] == ["33UVP"] and r["mc"]["patches_evaluated"] < json.load(open(f"{sys.argv[1]}/mc1/report.json"))["patches_evaluated"]
print(f"held-out tile 33UVP ({r['mc']['patches_evaluated']} patches): multilabel mean IoU {r['ml']['pixel']['mean_iou']:.4f} "
      f"after 6 epochs vs {r['ml0']['pixel']['mean_iou']:.4f} after one step; multiclass pixel accuracy "
      f"{r['mc']['pixel']['pixel_accuracy']:.4f} vs {r['mc0']['pixel']['pixel_accuracy']:.4f} (chance {1 / k:.4f}), "
      f"mean IoU {r['mc']['pixel']['mean_iou']:.4f} vs {r['mc0']['pixel']['mean_iou']:.4f}")
assert r["ml"]["pixel"]["mean_iou"] > r["ml0"]["pixel"]["mean_iou"] + 0.03
assert r["mc"]["pixel"]["pixel_accuracy"] > max(r["mc0"]["pixel"]["pixel_accuracy"], 1.5 / k)
PY
pass "trained U-Nets score higher than barely trained ones on the held-out tile"

# 6. Bad input: clear errors (on 2 ranks for the first, where the ranks must agree to stop), no output.
"$PY" "$TESTS_DIR/make_training_set.py" "$WORK/set.h5" --samples 200 > /dev/null
mpi 1 train --samples "$WORK/set.h5" --output "$WORK/lstm.h5" --hidden 8 --epochs 1 --threads 1 > "$WORK/lstm.log" 2>&1 \
  || { cat "$WORK/lstm.log"; fail "train (LSTM) failed"; }
"$PY" - "$WORK/patches.h5" "$WORK" <<'PY'
import shutil, sys
import h5py
src, w = sys.argv[1:]
def copy(name, **attrs):
    shutil.copy(src, f"{w}/{name}.h5")
    with h5py.File(f"{w}/{name}.h5", "a") as f:
        for k, fn in attrs.items():
            f.attrs[k] = fn([x.decode() if isinstance(x, bytes) else x for x in f.attrs[k]])
copy("renamed_layer", label_layers=lambda v: [x if x != "cropland" else "cropland_2020" for x in v])
copy("other_band", bands=lambda v: ["B99" if x == "B04" else x for x in v])
copy("empty_tile", tiles=lambda v: v + ["34TXX"])
PY
bad=(--output "$WORK/bad/report.json" --predictions "$WORK/bad/pred.h5" --png "$WORK/bad/png")
expect_failure lstm "not a U-Net segmentation model" -- mpi 2 segment evaluate --model "$WORK/lstm.h5" \
  --patches "$WORK/patches.h5" "${bad[@]}"
expect_failure no_layer "the model's output 'cropland' is neither a label layer" -- mpi 1 segment evaluate \
  --model "$WORK/ml.h5" --patches "$WORK/renamed_layer.h5" "${bad[@]}"
expect_failure other_band "lacks band B04" -- mpi 1 segment evaluate --model "$WORK/mc.h5" \
  --patches "$WORK/other_band.h5" "${bad[@]}"
expect_failure not_patches "not an s2crop patch set" -- mpi 1 segment evaluate --model "$WORK/mc.h5" \
  --patches "$WORK/comp.h5" "${bad[@]}"
expect_failure no_patches "holds no patch of the tiles 34TXX" -- mpi 1 segment evaluate --model "$WORK/mc.h5" \
  --patches "$WORK/empty_tile.h5" --tiles 34TXX "${bad[@]}"
[ ! -e "$WORK/bad" ] || { ls -R "$WORK/bad"; fail "output was left behind for bad input"; }
pass "bad input fails clearly and writes nothing"
