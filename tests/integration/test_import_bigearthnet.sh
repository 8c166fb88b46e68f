#!/usr/bin/env bash
# import-bigearthnet on the real BigEarthNet v1.0 patches in ../shared/data/bigearthnet_s2_example (10, 20 and 60 m
# GeoTIFFs per band, CORINE multi-labels): identical patch sets from 1 and 2 ranks; every value checked against the
# GeoTIFFs read with GDAL (10 m bands exact, 20 m bands replicated 2 x 2), clear only in the acquisition month, labels
# through the BigEarthNet-19 table, no-data pixels, the -1000 offset from 2022-01-25, the 43-label nomenclature; the
# U-Net (segment train --head multilabel) and dense pre-training learn on the imported set on 2 ranks; bad input
# stops every rank with the file named and leaves no output.
source "$(dirname "$0")/../lib.sh"
BEN="$SHARED_DATA/bigearthnet_s2_example/BigEarthNet-S2-Example"
[ -d "$BEN" ] || skip "real BigEarthNet patches not found ($BEN): this test needs ../shared/data next to the source tree"

for n in 1 2; do  # the same command line (the configuration is stored), in two folders
  mkdir -p "$WORK/r$n"
  (cd "$WORK/r$n" && mpi $n import-bigearthnet --input "$BEN" --output patches.h5 > "$WORK/r$n.log" 2>&1) \
    || { cat "$WORK/r$n.log"; fail "import on $n rank(s) failed"; }
done
grep -q "import-bigearthnet (write): 6/6 patches" "$WORK/r2.log" || { cat "$WORK/r2.log"; fail "no progress line"; }
grep -q "3 of 6 patches were acquired outside the season 2016-09 to 2017-08" "$WORK/r2.log" \
  || { cat "$WORK/r2.log"; fail "patches of another season were not reported"; }
[ -z "$(ls "$WORK/r2" | grep -v '^patches.h5$')" ] || fail "left files next to the output: $(ls "$WORK/r2")"
h5_same "$WORK/r1/patches.h5" "$WORK/r2/patches.h5" || fail "1 vs 2 ranks differ"
pass "6 real patches imported; identical patch sets from 1 and 2 ranks"

# Every value against the GeoTIFFs and the JSON, with an independent copy of the BigEarthNet-19 table.
cat > "$WORK/check.py" <<'PY'
import json, os, sys
import h5py, numpy as np
from osgeo import gdal
GROUPS = {
    "Urban fabric": ["Continuous urban fabric", "Discontinuous urban fabric"],
    "Industrial or commercial units": ["Industrial or commercial units"],
    "Arable land": ["Non-irrigated arable land", "Permanently irrigated land", "Rice fields"],
    "Permanent crops": ["Vineyards", "Fruit trees and berry plantations", "Olive groves",
                        "Annual crops associated with permanent crops"],
    "Pastures": ["Pastures"],
    "Complex cultivation patterns": ["Complex cultivation patterns"],
    "Land principally occupied by agriculture, with significant areas of natural vegetation":
        ["Land principally occupied by agriculture, with significant areas of natural vegetation"],
    "Agro-forestry areas": ["Agro-forestry areas"],
    "Broad-leaved forest": ["Broad-leaved forest"],
    "Coniferous forest": ["Coniferous forest"],
    "Mixed forest": ["Mixed forest"],
    "Natural grassland and sparsely vegetated areas": ["Natural grassland", "Sparsely vegetated areas"],
    "Moors, heathland and sclerophyllous vegetation": ["Moors and heathland", "Sclerophyllous vegetation"],
    "Transitional woodland, shrub": ["Transitional woodland/shrub"],
    "Beaches, dunes, sands": ["Beaches, dunes, sands"],
    "Inland wetlands": ["Inland marshes", "Peatbogs"],
    "Coastal wetlands": ["Salt marshes", "Salines"],
    "Inland waters": ["Water courses", "Water bodies"],
    "Marine waters": ["Coastal lagoons", "Estuaries", "Sea and ocean"],
}
path, root, nomenclature = sys.argv[1], sys.argv[2], int(sys.argv[3])
f = h5py.File(path, "r")
A = {k: (list(v.astype(str)) if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
bands = A["bands"]
assert bands == ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"], bands
# (no class names: the empty list is stored as the attribute "", which list() makes [])
assert A["label_scope"] == "patch" and list(A["class_names"]) == [] and A["patch_size"] == 120, A
assert A["season_start_month"] == 9
layers = A["label_layers"]
if nomenclature == 19:
    assert layers == list(GROUPS), layers
names = [s.decode() for s in f["patch_name"][()]]
dates = [s.decode() for s in f["acquisition_date"][()]]
assert names == sorted(names), names
n = len(names)
x, labels, clear = f["x"], f["labels"], f["clear"]
assert x.shape == (n, 12, 10, 120, 120) and labels.shape == (n, len(layers), 120, 120) and clear.shape == (n, 12, 120, 120)
assert (f["row"][()] == -1).all() and (f["col"][()] == -1).all()
first_year = int(A["months"][0][:4])
assert A["months"] == [f"{first_year + (8 + i) // 12}-{(8 + i) % 12 + 1:02d}" for i in range(12)], A["months"]
checked_nodata = 0
for i, name in enumerate(names):
    folder = next(os.path.join(d, name) for d, sub, _ in os.walk(root) if name in sub)
    meta = json.load(open(os.path.join(folder, name + "_labels_metadata.json")))
    assert dates[i] == meta["acquisition_date"][:10], (dates[i], meta["acquisition_date"])
    assert A["tiles"][f["tile"][i]] == meta["tile_source"].split("_")[5][1:], (A["tiles"], meta["tile_source"])
    offset = -1000 if dates[i] >= "2022-01-25" else 0
    dn = []
    for b in bands:
        a = gdal.Open(os.path.join(folder, f"{name}_{b}.tif")).ReadAsArray().astype(np.int32)
        k = 120 // a.shape[0]
        assert a.shape[0] * k == 120
        dn.append(np.kron(a, np.ones((k, k), np.int32)))
        if b == "B05":
            b05 = a
    dn = np.stack(dn)
    valid = (dn != 0).all(axis=0)
    # Explicitly: a 20 m pixel covers 2 x 2 pixels of the 10 m grid, x[..., 2y + dy, 2x + dx] == B05[y, x].
    assert b05.shape == (60, 60)
    x05 = x[i, 0, bands.index("B05")].astype(np.int32)
    for dy in (0, 1):
        for dx in (0, 1):
            ok = valid[dy::2, dx::2]
            assert (x05[dy::2, dx::2][ok] == b05[ok] + offset).all(), f"{name}: B05 replication"
    expected = np.where(valid[None], np.clip(dn + offset, -32767, 32767), -32768).astype(np.int16)
    xi = x[i]
    for m in range(12):
        assert np.array_equal(xi[m], expected), f"{name}: month {m} differs from the GeoTIFFs"
    month = (int(dates[i][5:7]) - 9) % 12
    ci = clear[i]
    assert np.array_equal(ci[month], valid.astype(np.uint8)), f"{name}: acquisition month not clear"
    assert ci.sum() == valid.sum(), f"{name}: clear outside the acquisition month"
    if nomenclature == 19:
        want = [int(any(l in GROUPS[c] for l in meta["labels"])) for c in layers]
    else:
        want = [int(c in meta["labels"]) for c in layers]
    li = labels[i]
    for k, w in enumerate(want):
        assert (li[k][valid] == w).all() and (li[k][~valid] == 255).all(), f"{name}: layer {layers[k]}"
    checked_nodata += int((~valid).sum())
    if i == 0 or offset:
        on = [layers[k] for k, w in enumerate(want) if w]
        print(f"  {name}: {meta['labels']} -> {on}; clear month {A['months'][month]}; offset {offset}; "
              f"{int((~valid).sum())} no-data px")
print(f"ok: {n} patches: 10 bands x 12 months equal to the GeoTIFFs (10 m exact, 20 m replicated 2 x 2), "
      f"clear only in the acquisition month, labels as the JSON through the {nomenclature}-class table, "
      f"{checked_nodata} no-data px")
PY
"$PY" "$WORK/check.py" "$WORK/r2/patches.h5" "$BEN" 19 || fail "the patch set does not match the GeoTIFFs and JSON"

# No-data pixels, the -1000 offset of processing baseline 04.00 and the 43 CORINE labels, on edited copies.
mkdir -p "$WORK/edited"
cp -r "$BEN/S2A_MSIL2A_20170613T101031_87_48" "$BEN/S2B_MSIL2A_20170924T93020_69_24" "$WORK/edited/"
chmod -R u+w "$WORK/edited"
"$PY" - "$WORK/edited" <<'PY'
import json, os, sys
import numpy as np
from osgeo import gdal
root = sys.argv[1]
p = os.path.join(root, "S2A_MSIL2A_20170613T101031_87_48", "S2A_MSIL2A_20170613T101031_87_48_")
for band, (y, x) in {"B02": (5, 7), "B05": (30, 40), "B09": (0, 0)}.items():  # B09 is not imported: no effect
    ds = gdal.Open(p + band + ".tif", gdal.GA_Update)
    a = ds.ReadAsArray()
    a[y, x] = 0
    ds.GetRasterBand(1).WriteArray(a)
    ds = None
q = os.path.join(root, "S2B_MSIL2A_20170924T93020_69_24", "S2B_MSIL2A_20170924T93020_69_24_labels_metadata.json")
meta = json.load(open(q))
meta["acquisition_date"] = "2022-03-01 09:30:20"
json.dump(meta, open(q, "w"))
PY
mpi 2 import-bigearthnet --input "$WORK/edited" --output "$WORK/edited.h5" --nomenclature 43 > "$WORK/edited.log" 2>&1 \
  || { cat "$WORK/edited.log"; fail "import of the edited patches failed"; }
grep -q "1 patch(es) acquired on or after 2022-01-25 (processing baseline 04.00): BOA_ADD_OFFSET -1000" "$WORK/edited.log" \
  || { cat "$WORK/edited.log"; fail "the offset was not logged"; }
"$PY" "$WORK/check.py" "$WORK/edited.h5" "$WORK/edited" 43 || fail "no-data, offset or 43 labels wrong"
"$PY" - "$WORK/edited.h5" <<'PY' || fail "no-data pixels"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
x, lab, clr = f["x"][0], f["labels"][0], f["clear"][0]
bad = np.zeros((120, 120), bool); bad[5, 7] = True; bad[60:62, 80:82] = True  # B02 pixel, B05 pixel (2 x 2)
assert ((x == -32768).all(axis=(0, 1)) == bad).all(), "no-data pixels are not exactly the DN-0 pixels of any band"
assert (lab[:, bad] == 255).all() and (lab[:, ~bad] != 255).all() and (clr[:, bad] == 0).all()
assert len(f.attrs["label_layers"]) == 43
print("ok: DN 0 in one band (10 m pixel, 20 m pixel = 2 x 2) -> -32768 in every band, labels 255, not clear")
PY
pass "no-data pixels, offset -1000 from 2022-01-25 and --nomenclature 43 as documented"

# The U-Net and (dense, per-pixel VICReg) pre-training learn on the real patches, data-parallel on 2 ranks.
# The June month (season month 10, clear for the three June patches, gap-filled for the others); validation on the
# two Finnish patches of tile 35VPK, training on the other four (one step of 2 x 2 patches per epoch).
mpi 2 segment train --patches "$WORK/r2/patches.h5" --head multilabel --depth 2 --width 8 --epochs 15 --batch-size 2 \
  --months 10 --lr 1e-2 --threads 1 --patience 0 --val-tiles 35VPK --output "$WORK/unet.h5" --step-log "$WORK/unet.tsv" \
  > "$WORK/unet.log" 2>&1 || { cat "$WORK/unet.log"; fail "segment train on the imported patches failed"; }
"$PY" - "$WORK/unet.tsv" "$WORK/unet.h5" <<'PY' || { cat "$WORK/unet.log"; fail "the U-Net did not learn"; }
import sys, h5py, numpy as np
a = np.genfromtxt(sys.argv[1], names=True, delimiter="\t")
k = max(2, len(a) // 4)
first, last = a["loss"][:k].mean(), a["loss"][-k:].mean()
print(f"ok: segment train --head multilabel on 2 ranks: {len(a)} steps, loss {first:.4f} -> {last:.4f}")
assert len(a) == 15 and last < 0.9 * first, "the training loss did not fall"
m = h5py.File(sys.argv[2], "r")
names = [s.decode() if isinstance(s, bytes) else s for s in m.attrs["class_names"]]
assert len(names) == 19 and "Arable land" in names, names
PY
# segment evaluate scores the U-Net on the held-out patches at patch level (BigEarthNet's image-level labels) and
# draws image / truth / prediction.
mpi 2 segment evaluate --model "$WORK/unet.h5" --patches "$WORK/r2/patches.h5" --tiles 35VPK --output "$WORK/eval.json" \
  --png "$WORK/png" --samples 2 > "$WORK/eval.log" 2>&1 || { cat "$WORK/eval.log"; fail "segment evaluate on the imported patches failed"; }
"$PY" - "$WORK/eval.json" "$WORK/png" <<'PY' || { cat "$WORK/eval.log"; fail "segment evaluate report on BigEarthNet is wrong"; }
import json, os, sys
r = json.load(open(sys.argv[1]))
assert r["patches_evaluated"] == 2 and "patch_level" in r, sorted(r)
pngs = sorted(os.listdir(sys.argv[2]))
assert len(pngs) == 2 and all(p.startswith("35VPK_") and p.endswith(".png") for p in pngs), pngs
print(f"ok: segment evaluate on the 2 held-out BigEarthNet patches: patch-level report and {len(pngs)} PNGs ({', '.join(pngs)})")
PY
# Pre-training on four training patches (2 per rank per step) is a smoke test of the pipeline, not of representation
# quality: the loss falls (views agree) without the projections collapsing. Deterministic for a rank count. One
# acquisition is one month: nothing to reconstruct from, so VICReg alone (--reconstruction 0).
mpi 2 pretrain --patches "$WORK/r2/patches.h5" --depth 2 --width 8 --projection 32 --epochs 12 --batch-size 2 \
  --months 10 --reconstruction 0 --lr 3e-3 --threads 1 --val-tiles 35VPK --output "$WORK/encoder.h5" --step-log "$WORK/pre.tsv" \
  > "$WORK/pre.log" 2>&1 || { cat "$WORK/pre.log"; fail "pretrain on the imported patches failed"; }
"$PY" - "$WORK/pre.log" "$WORK/pre.tsv" <<'PY' || { cat "$WORK/pre.log"; fail "pre-training did not learn"; }
import re, sys
import numpy as np
epochs = [(float(a), float(b)) for a, b in re.findall(r"val dense loss (-?[0-9.]+) .*projection spread ([0-9.]+)", open(sys.argv[1]).read())]
loss = np.genfromtxt(sys.argv[2], names=True, delimiter="\t")["loss"]
assert len(epochs) == 12 and len(loss) == 12, (len(epochs), len(loss))
print(f"ok: pretrain (dense VICReg) on 2 ranks: training loss {loss[:3].mean():.3f} -> {loss[-3:].mean():.3f}, validation "
      f"{epochs[0][0]:.3f} -> best {min(e[0] for e in epochs):.3f}, projection spread {epochs[-1][1]:.3f}")
assert loss[-3:].mean() < loss[:3].mean() - 0.03, "the training loss did not fall"
assert min(e[0] for e in epochs) < epochs[0][0] - 0.05, "the views did not come to agree on held-out patches"
assert epochs[-1][1] > 0.02, "the projections collapsed to a constant"
PY
pass "segment train (multilabel, 19 BigEarthNet classes) and pretrain learn on the imported real patches"

# Bad input: every rank stops with the file and the problem named; no output is left. The broken patch sorts last,
# so on 2 ranks the failure is found by rank 1.
good=S2A_MSIL2A_20170613T101031_87_48 bad=S2B_MSIL2A_20180204T94161_57_38
broken() {  # broken NAME: a copy of a good and the bad patch under $WORK/NAME, writable
  mkdir -p "$WORK/$1" && cp -r "$BEN/$good" "$BEN/$bad" "$WORK/$1/" && chmod -R u+w "$WORK/$1"
  echo "$WORK/$1/$bad/$bad"
}
p=$(broken missing_band); rm "${p}_B8A.tif"
expect_failure missing_band "${p}_B8A.tif: band file missing" -- mpi 2 import-bigearthnet --input "$WORK/missing_band" --output "$WORK/out/x.h5"
p=$(broken band_size); gdal_translate -q -of GTiff -outsize 50 50 "$BEN/$bad/${bad}_B11.tif" "${p}_B11.tif.new" && mv "${p}_B11.tif.new" "${p}_B11.tif"
expect_failure band_size "${p}_B11.tif: does not cover the patch's" -- mpi 2 import-bigearthnet --input "$WORK/band_size" --output "$WORK/out/x.h5"
p=$(broken band_crs); gdal_translate -q -of GTiff -a_srs EPSG:32634 "$BEN/$bad/${bad}_B05.tif" "${p}_B05.tif.new" && mv "${p}_B05.tif.new" "${p}_B05.tif"
expect_failure band_crs "${p}_B05.tif: is in EPSG:32634" -- mpi 2 import-bigearthnet --input "$WORK/band_crs" --output "$WORK/out/x.h5"
p=$(broken bad_json); head -c 100 "$BEN/$bad/${bad}_labels_metadata.json" > "${p}_labels_metadata.json"
expect_failure bad_json "${p}_labels_metadata.json: cannot read the patch's labels" -- mpi 2 import-bigearthnet --input "$WORK/bad_json" --output "$WORK/out/x.h5"
p=$(broken unknown_label); sed -i 's/"Mixed forest"/"Winter wheat"/' "${p}_labels_metadata.json"
expect_failure unknown_label "${p}_labels_metadata.json: unknown label 'Winter wheat'" -- mpi 2 import-bigearthnet --input "$WORK/unknown_label" --output "$WORK/out/x.h5"
# A band whose header is whole but whose compressed pixels are garbage passes the inspection and fails while the
# collective writer runs (on rank 1): the ranks agree before the write, and the partial file is removed.
p=$(broken corrupt_band); gdal_translate -q -of GTiff -co COMPRESS=DEFLATE "$BEN/$bad/${bad}_B03.tif" "${p}_B03.tif.new"
"$PY" - "${p}_B03.tif.new" <<'PY'
import sys
from osgeo import gdal
ds = gdal.Open(sys.argv[1])  # kept referenced while its band is used
band = ds.GetRasterBand(1)
offset, size = (int(band.GetMetadataItem(f"BLOCK_{k}_0_0", "TIFF")) for k in ("OFFSET", "SIZE"))
band = ds = None
data = bytearray(open(sys.argv[1], "rb").read())
data[offset + 10:offset + size - 4] = b"\xab" * (size - 14)
open(sys.argv[1], "wb").write(data)
PY
mv "${p}_B03.tif.new" "${p}_B03.tif"
expect_failure corrupt_band "${p}_B03.tif: read failed" -- mpi 2 import-bigearthnet --input "$WORK/corrupt_band" --output "$WORK/out/x.h5"
mkdir -p "$WORK/empty/sub"
expect_failure empty_input "no BigEarthNet patch folder" -- mpi 2 import-bigearthnet --input "$WORK/empty" --output "$WORK/out/x.h5"
[ -z "$(ls "$WORK/out" 2>/dev/null)" ] || fail "a failed import left $(ls "$WORK/out")"
pass "bad input: missing band, band of another size or CRS, broken JSON, unknown label, corrupt pixels, empty input: no output left"
