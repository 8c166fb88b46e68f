#!/usr/bin/env bash
# s2crop assess on a map built here from a synthetic region's label rasters with known damage: the confusion
# matrix, OA, kappa and the area-adjusted (Olofsson) estimates must equal an independent numpy computation on the
# same arrays, the same on 1 and 3 ranks; the PNG and Markdown exist; bad inputs fail clearly, leaving no report.
source "$(dirname "$0")/../lib.sh"
"$PY" -c "import h5py, numpy" 2>/dev/null || skip "h5py/numpy missing for $PY"
synth_region "$WORK/region" --size 66 --days 20
LABELS="$WORK/region/labels"
[ -f "$LABELS/33UVP_class.tif" ] || fail "synth wrote no label raster"

# A class map in the layout of include/s2crop/infer/classify.hpp: the labels with some pixels changed to another
# class, some to no data, and the unlabelled background mapped as random classes (mapped area without reference).
"$PY" - "$LABELS" "$WORK/map.h5" <<'PY'
import sys, numpy as np, h5py
from osgeo import gdal
labels, out = sys.argv[1], sys.argv[2]
names = ["Legumes", "Grassland", "Maize", "Potato", "Sunflower", "Soy", "Winter barley", "Winter caraway", "Rye",
         "Rapeseed", "Beet", "Spring cereals", "Winter wheat", "Winter triticale", "Permanent plantation",
         "Other crops"]
rng = np.random.default_rng(3)
with h5py.File(out, "w") as f:
    f.attrs["format"] = "s2crop class map"
    f.attrs["format_version"] = 1
    f.attrs["class_names"] = np.array(names, dtype=h5py.string_dtype())
    for tile in ["32TQT", "33UVP"]:
        ds = gdal.Open(f"{labels}/{tile}_class.tif")
        ref = ds.GetRasterBand(1).ReadAsArray()
        m = ref.copy()
        unl = ref == 255
        m[unl] = rng.integers(0, 16, unl.sum())
        wrong = (~unl) & (rng.random(ref.shape) < 0.15)
        m[wrong] = (ref[wrong] + rng.integers(1, 16, wrong.sum())) % 16
        m[rng.random(ref.shape) < 0.02] = 255
        g = f.create_group(f"tiles/{tile}")
        g.attrs["crs_wkt"] = ds.GetProjection()
        g.attrs["geotransform"] = np.array(ds.GetGeoTransform(), dtype="f8")
        g.create_dataset("class", data=m.astype("u1"), chunks=(32, 32), compression="gzip")
        g.create_dataset("confidence", data=np.full(m.shape, 80, "u1"))
PY

# check_report DIR TILE...: accuracy.json against numpy on the same arrays.
check_report() {
  "$PY" - "$WORK/map.h5" "$LABELS" "$@" <<'PY'
import sys, json, numpy as np, h5py
from osgeo import gdal
mp, labels, out, tiles = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
C = 16
conf = np.zeros((C, C), np.int64); mapped = np.zeros(C)
with h5py.File(mp) as f:
    for t in tiles:
        m = f[f"tiles/{t}/class"][...].astype(int)
        r = gdal.Open(f"{labels}/{t}_class.tif").ReadAsArray().astype(int)
        ok = (m != 255) & (r != 255)
        np.add.at(conf, (m[ok], r[ok]), 1)
        mapped += np.bincount(m[m != 255], minlength=C)[:C]
j = json.load(open(f"{out}/accuracy.json"))
assert np.array_equal(np.array(j["confusion_matrix"]), conf), "confusion matrix differs from numpy"
n = conf.sum(); oa = np.trace(conf) / n
pe = (conf.sum(1) * conf.sum(0)).sum() / n**2; kappa = (oa - pe) / (1 - pe)
assert abs(j["overall_accuracy"] - oa) < 1e-9, (j["overall_accuracy"], oa)
assert abs(j["kappa"] - kappa) < 1e-9, (j["kappa"], kappa)
assert 0.6 < oa < 0.95, f"damage should leave OA near 0.85, got {oa}"
# Olofsson et al. 2014, written out independently: strata = map classes weighted by mapped pixels.
rows = conf.sum(1); s = rows > 0
N = mapped[s].sum(); W = np.where(s, mapped / N, 0)
share = np.divide(conf, rows[:, None], out=np.zeros((C, C)), where=rows[:, None] > 0)
p = W[:, None] * share
aoa = np.trace(p)
var = lambda q, n: np.divide(q * (1 - q), n - 1, out=np.zeros_like(q), where=n > 1)
aoa_se = np.sqrt((W**2 * var(np.diag(share), rows))[s].sum())
aa = j["area_adjusted"]
assert abs(aa["overall_accuracy"]["value"] - aoa) < 1e-9, (aa["overall_accuracy"], aoa)
assert abs(aa["overall_accuracy"]["standard_error"] - aoa_se) < 1e-9
area = p.sum(0) * N
area_se = np.sqrt((W[:, None]**2 * var(share, rows[:, None]))[s].sum(0)) * N
for k in range(C):
    e = aa["per_class"][k]
    assert abs(e["mapped_pixels"] - mapped[k]) < 1e-9
    assert abs(e["area_pixels"]["value"] - area[k]) < 1e-6 * max(1, area[k]), (k, e["area_pixels"], area[k])
    assert abs(e["area_pixels"]["standard_error"] - area_se[k]) < 1e-6 * max(1, area_se[k])
    lo, hi = e["area_pixels"]["ci95"]
    assert abs(hi - lo - 2 * 1.96 * area_se[k]) < 1e-6 * max(1, area_se[k])
    assert abs(e["area_hectares"]["value"] - area[k] * 0.01) < 1e-6 * max(1, area[k])
print(f"ok: {out}: OA {oa:.4f}, kappa {kappa:.4f}, area-adjusted OA {aoa:.4f} match numpy")
PY
}

mpi 3 assess --config "$S2CROP_SOURCE_DIR/configs/assess.ini" --map "$WORK/map.h5" --reference "$LABELS" \
  --output-dir "$WORK/out3" > "$WORK/a3.log" 2>&1 || { cat "$WORK/a3.log"; fail "assess on 3 ranks failed"; }
check_report "$WORK/out3" 32TQT 33UVP || fail "report does not match numpy"
grep -q "OA 0\.[0-9]*, kappa 0\.[0-9]*, macro-F1" "$WORK/a3.log" || { cat "$WORK/a3.log"; fail "log lacks OA/kappa/macro-F1"; }
grep -q "area-adjusted OA .*95 % CI" "$WORK/a3.log" || fail "log lacks the area-adjusted OA"
"$PY" -c "
from osgeo import gdal; import sys
d = gdal.Open(sys.argv[1]); assert d.GetDriver().ShortName == 'PNG' and d.RasterXSize > 200, 'bad PNG'" \
  "$WORK/out3/confusion.png" || fail "confusion.png is not a readable PNG"
grep -q "^| overall accuracy | 0\.[0-9]* |" "$WORK/out3/accuracy.md" || fail "Markdown lacks the summary table"
grep -q "](confusion.png)" "$WORK/out3/accuracy.md" || fail "Markdown does not reference the figure"
grep -q "^## Area estimates" "$WORK/out3/accuracy.md" || fail "Markdown lacks the area table"
pass "3 ranks: report matches numpy, PNG and Markdown written"

# Same numbers on one rank (only the creation time may differ).
mpi 1 assess --map "$WORK/map.h5" --reference "$LABELS" --output-dir "$WORK/out1" > "$WORK/a1.log" 2>&1 \
  || { cat "$WORK/a1.log"; fail "assess on 1 rank failed"; }
diff <(grep -v '"created"' "$WORK/out1/accuracy.json") <(grep -v '"created"' "$WORK/out3/accuracy.json") \
  || fail "accuracy.json differs between 1 and 3 ranks"
pass "rank count does not change the report"

# One tile against a single raster.
mpi 2 assess --map "$WORK/map.h5" --reference "$LABELS/33UVP_class.tif" --tiles 33UVP --output-dir "$WORK/one" \
  > "$WORK/one.log" 2>&1 || { cat "$WORK/one.log"; fail "single-raster assess failed"; }
check_report "$WORK/one" 33UVP || fail "single-tile report does not match numpy"

# Bad inputs: clear message, every rank exits, no report left behind.
no_report() { [ ! -e "$1/accuracy.json" ] || fail "$2: accuracy.json written by a failed run"; }
expect_failure missing_tile "has no tile 99XXX" -- mpi 2 assess --map "$WORK/map.h5" --reference "$LABELS" \
  --tiles 99XXX --output-dir "$WORK/e1"
no_report "$WORK/e1" missing_tile
expect_failure missing_map "$WORK/nope.h5" -- mpi 2 assess --map "$WORK/nope.h5" --reference "$LABELS" \
  --output-dir "$WORK/e2"
mkdir -p "$WORK/partial" && cp "$LABELS/32TQT_class.tif" "$WORK/partial/"
expect_failure missing_reference "$WORK/partial/33UVP_class.tif" -- mpi 2 assess --map "$WORK/map.h5" \
  --reference "$WORK/partial" --output-dir "$WORK/e3"
no_report "$WORK/e3" missing_reference
mkdir -p "$WORK/shifted" && cp "$LABELS"/*_class.tif "$WORK/shifted/"
"$PY" - "$WORK/shifted/33UVP_class.tif" <<'PY'
import sys
from osgeo import gdal
ds = gdal.Open(sys.argv[1], gdal.GA_Update); gt = list(ds.GetGeoTransform()); gt[0] += 1000; ds.SetGeoTransform(gt)
PY
expect_failure grid_mismatch "grid differs from tile 33UVP" -- mpi 2 assess --map "$WORK/map.h5" \
  --reference "$WORK/shifted" --output-dir "$WORK/e4"
grep -qF "$WORK/shifted/33UVP_class.tif" "$WORK/grid_mismatch.log" || fail "grid mismatch: message does not name the raster"
no_report "$WORK/e4" grid_mismatch
mkdir -p "$WORK/empty" && for t in 32TQT 33UVP; do
  "$PY" - "$LABELS/${t}_class.tif" "$WORK/empty/${t}_class.tif" <<'PY'
import sys
from osgeo import gdal
src = gdal.Open(sys.argv[1]); ds = gdal.GetDriverByName("GTiff").CreateCopy(sys.argv[2], src)
b = ds.GetRasterBand(1); b.Fill(255)
PY
done
expect_failure no_overlap "no pixel is labelled in both" -- mpi 2 assess --map "$WORK/map.h5" \
  --reference "$WORK/empty" --output-dir "$WORK/e5"
no_report "$WORK/e5" no_overlap
"$PY" - "$WORK/map.h5" "$WORK/notile.h5" <<'PY'
import sys, shutil, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "a") as f: del f["tiles/33UVP/class"]
PY
expect_failure tile_without_class "tile 33UVP has no 'class' dataset" -- mpi 2 assess --map "$WORK/notile.h5" \
  --reference "$LABELS" --output-dir "$WORK/e6"
expect_failure both_modes "give one of --map, --model or --compare" -- mpi 2 assess --map "$WORK/map.h5" --model m.pt \
  --output-dir "$WORK/e7"
pass "bad inputs fail with clear messages"

# --model: the held-out sample set is read and filtered by tile before the model runs (a real model needs
# s2crop train; here only the input checks that come first).
"$PY" - "$WORK/held_out.h5" <<'PY'
import sys, numpy as np, h5py
n, bands = 40, ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
s = lambda v: np.array(v, dtype=h5py.string_dtype())
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["format"] = "s2crop training set"; f.attrs["format_version"] = 1; f.attrs["source"] = "extract"
    f.attrs["bands"] = s(bands); f.attrs["class_names"] = s(["Maize", "Winter wheat"])
    f.attrs["tiles"] = s(["32TQT", "33UVP"]); f.attrs["season_start_month"] = 9
    f.attrs["months"] = s(["Sep", "Oct", "Nov", "Dec", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug"])
    f.attrs["config"] = ""; f.attrs["inputs"] = s([]); f.attrs["s2crop_version"] = "test"; f.attrs["created"] = "now"
    f["x"] = np.random.default_rng(1).integers(0, 5000, (n, 12, len(bands))).astype("i2")
    f["y"] = (np.arange(n) % 2).astype("u1"); f["tile"] = (np.arange(n) // 20).astype("u2")
    f["parcel"] = np.full(n, -1, "i8"); f["row"] = np.full(n, -1, "i4"); f["col"] = np.full(n, -1, "i4")
PY
expect_failure model_missing "$WORK/no_model.pt" -- mpi 2 assess --model "$WORK/no_model.pt" \
  --samples "$WORK/held_out.h5" --output-dir "$WORK/e8"
touch "$WORK/model.pt"
expect_failure samples_without_tile "has no samples of tile 99XXX" -- mpi 2 assess --model "$WORK/model.pt" \
  --samples "$WORK/held_out.h5" --tiles 99XXX --output-dir "$WORK/e9"
expect_failure samples_not_a_set "not an s2crop training set" -- mpi 2 assess --model "$WORK/model.pt" \
  --samples "$WORK/map.h5" --output-dir "$WORK/e10"
no_report "$WORK/e10" samples_not_a_set
pass "--model input checks"
