#!/usr/bin/env bash
# The same synthetic acquisitions as STAC items + COGs, as SAFE folders and as zipped SAFE products give identical
# composites (the offset comes from STAC raster:bands in one case and MTD_MSIL2A.xml in the other), and they match
# the independent NumPy reference compositor.
source "$(dirname "$0")/../lib.sh"
synth_region "$WORK/region" --layout both --tiles 33UVP --days 240 --start 2021-11-01
[ -d "$WORK/region/safe" ] || fail "synth --layout both wrote no SAFE products"
n_pre=$(ls -d "$WORK"/region/safe/*.SAFE | grep -c "_N0[0-3]" || true)
n_post=$(ls -d "$WORK"/region/safe/*.SAFE | grep -c "_N0[4-9]" || true)
[ "$n_pre" -gt 0 ] && [ "$n_post" -gt 0 ] || fail "season should cross 2022-01-25 (baselines before and after 04.00)"

common=(--block-size 32 --season-start 2021-11)
mpi 2 composite --input "$WORK/region/stac" --output "$WORK/stac.h5" "${common[@]}" > "$WORK/stac.log" 2>&1 || { cat "$WORK/stac.log"; fail "stac"; }
mpi 2 composite --input "$WORK/region/safe" --output "$WORK/safe.h5" "${common[@]}" > "$WORK/safe.log" 2>&1 || { cat "$WORK/safe.log"; fail "safe"; }
# Zip a few products; the rest stay folders: a mixed archive, as users have.
mkdir -p "$WORK/mixed"
i=0
for p in "$WORK"/region/safe/*.SAFE; do
  i=$((i + 1))
  if [ $((i % 3)) -eq 0 ]; then
    (cd "$(dirname "$p")" && "$PY" -c "import shutil,sys; shutil.make_archive(sys.argv[1], 'zip', '.', sys.argv[2])" "$WORK/mixed/$(basename "$p" .SAFE)" "$(basename "$p")")
  else
    cp -r "$p" "$WORK/mixed/"
  fi
done
mpi 2 composite --input "$WORK/mixed" --output "$WORK/mixed.h5" "${common[@]}" > "$WORK/mixed.log" 2>&1 || { cat "$WORK/mixed.log"; fail "mixed"; }

"$PY" - "$WORK/stac.h5" "$WORK/safe.h5" "$WORK/mixed.h5" <<'PY'
import sys, h5py, numpy as np
ref = h5py.File(sys.argv[1], "r")["tiles/33UVP"]
for other in sys.argv[2:]:
    g = h5py.File(other, "r")["tiles/33UVP"]
    for name in ("reflectance", "clear_count"):
        a, b = ref[name][...], g[name][...]
        assert a.shape == b.shape and (a == b).all(), f"{other}: {name} differs in {np.count_nonzero(a != b)} values"
    assert len(g.attrs["acquisitions"]) == len(ref.attrs["acquisitions"])
acq = [s.decode() if isinstance(s, bytes) else s for s in h5py.File(sys.argv[2], "r")["tiles/33UVP"].attrs["acquisitions"]]
assert any("offset -1000, MTD_MSIL2A.xml" in s for s in acq) and any("offset 0, MTD_MSIL2A.xml" in s for s in acq), acq[:3]
print("STAC, SAFE and zipped SAFE give identical composites;", len(acq), "acquisitions")
PY
pass "STAC, SAFE and SAFE zip layouts agree"

"$S2CROP" composite --input "$WORK/region/stac" --output "$WORK/stac.h5" "${common[@]}" --list > "$WORK/plan.tsv" 2>/dev/null
"$PY" "$S2CROP_SOURCE_DIR/bench/numpy_composite.py" "$WORK/plan.tsv" --compare "$WORK/stac.h5" || fail "differs from NumPy reference"
# Without the offset correction the series would jump by 0.1 reflectance at 2022-01-25: check there is no jump.
"$PY" - "$WORK/stac.h5" <<'PY'
import sys, h5py, numpy as np
g = h5py.File(sys.argv[1], "r")["tiles/33UVP"]
months = [m.decode() if isinstance(m, bytes) else m for m in g.attrs["months"]]
r = g["reflectance"][...].astype(float)
swir = r[:, 8].reshape(12, -1).mean(1)   # B11: soil/vegetation, no jump expected across the offset change
i = months.index("2022-02")
jump = swir[i] - swir[i - 1]
print("B11 mean by month:", np.round(swir).astype(int).tolist(), "Jan->Feb change", round(jump))
assert abs(jump) < 600, f"a {jump:.0f} step at the baseline change looks like an unapplied offset"
PY
pass "matches NumPy reference; no offset jump across 2022-01-25"
# The cloudy dates let the reader skip decoding bands (the equality above shows skipping changes nothing).
skipped=$(grep -o '[0-9]* of [0-9]* acquisition-block reads skipped' "$WORK/stac.log" | cut -d' ' -f1)
[ "${skipped:-0}" -gt 0 ] || fail "no acquisition-block read was skipped on a cloudy series"
pass "$skipped acquisition-block reads skipped thanks to the mask"

# SAFE with JPEG 2000 bands, as the Copernicus Data Space delivers them: --block-size auto aligns the blocks to the
# codestream tiles (1024 px here; the 20 m bands of a tile this small are one tile each), so each tile is decoded
# once per acquisition, and the composite equals the COG one's value for value. A block size that splits the tiles
# is allowed and the log says what it costs.
synth_region "$WORK/jp2" --layout both --safe-jp2 --tiles 33UVP --size 1098 --days 20 --start 2022-06-01
mpi 2 composite --input "$WORK/jp2/safe" --output "$WORK/jp2_safe.h5" > "$WORK/jp2_safe.log" 2>&1 \
  || { cat "$WORK/jp2_safe.log"; fail "composite of SAFE/JP2"; }
grep -q "block size 1024 px (auto, aligned to the JPEG 2000 tiles" "$WORK/jp2_safe.log" \
  || { grep -F "block size" "$WORK/jp2_safe.log"; fail "auto block size not aligned to the JPEG 2000 tiles"; }
grep -q "memory per rank up to about [0-9]* MiB: .* MiB for a block of 1024 x 1024 px" "$WORK/jp2_safe.log" \
  || fail "the log does not say what bounds memory"
# ... and the bound holds: every rank's peak is within it.
bound=$(sed -n 's/.*memory per rank up to about \([0-9]*\) MiB.*/\1/p' "$WORK/jp2_safe.log")
peaks=$(sed -n 's/.*peak memory per rank after compositing (MiB): //p' "$WORK/jp2_safe.log")
[ -n "$bound" ] && [ -n "$peaks" ] || fail "no memory bound or no peak in the log"
for p in $peaks; do
  [ "$p" -le "$bound" ] || fail "a rank peaked at $p MiB, above the log's bound of $bound MiB"
done
mpi 2 composite --input "$WORK/jp2/stac" --output "$WORK/jp2_stac.h5" --block-size 1024 > "$WORK/jp2_stac.log" 2>&1 \
  || { cat "$WORK/jp2_stac.log"; fail "composite of the same acquisitions as COGs"; }
"$PY" - "$WORK/jp2_stac.h5" "$WORK/jp2_safe.h5" <<'PY'
import sys, h5py
a, b = (h5py.File(p, "r")["tiles/33UVP"] for p in sys.argv[1:])
for name in ("reflectance", "clear_count"):
    assert (a[name][...] == b[name][...]).all(), f"{name}: SAFE/JP2 and COG composites differ"
    assert b[name].chunks[-2:] == (512, 512), b[name].chunks  # chunks of 512 inside the 1024 px blocks
PY
mpi 1 composite --input "$WORK/jp2/safe" --output "$WORK/x.h5" --block-size 512 --list > /dev/null 2> "$WORK/jp2_512.log" \
  || { cat "$WORK/jp2_512.log"; fail "composite --list with --block-size 512"; }
grep -q "JPEG 2000 tiles cover 1024 px on the 10 m grid: each is decoded about 4 times" "$WORK/jp2_512.log" \
  || { cat "$WORK/jp2_512.log"; fail "a block size splitting the JPEG 2000 tiles is not reported"; }
pass "SAFE/JPEG 2000: blocks aligned to the codestream tiles, the COG composite value for value, misalignment logged"
