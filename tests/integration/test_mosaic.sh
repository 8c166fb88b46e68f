#!/usr/bin/env bash
# mosaic: two tiles from two UTM zones (32TQT, 33TUN, windows centred on the same point by synth --subset-at so they
# overlap across the zone border), classified into two map files, mosaicked into one EPSG:3035 COG:
# - the same file on 1 and 3 ranks; the same pixels for other block sizes;
# - every pixel equals the overlap rule applied to the maps by an independent numpy/osr check (check_mosaic.py):
#   no no-data inside the footprints except where the maps are no data, none outside; a hole punched into one map
#   is filled from the other tile where they overlap;
# - killed with SIGKILL and rerun: resumes and writes the identical file; a finished mosaic is not redone; other
#   options are refused without --overwrite;
# - bad input (missing file, unknown tile, not a map, other classes): non-zero exit naming the file, nothing written.
source "$(dirname "$0")/../lib.sh"
start=$(date +%s)
POINT=12.72,47.33  # inside both 32TQT and 33TUN (zone border at 12 E)
synth_region "$WORK/region" --tiles 32TQT,33TUN --size 300 --days 120 --subset-at "$POINT"
"$PY" - "$WORK/region/region.json" "$POINT" <<'PY' || fail "region.json does not record --subset-at"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["subset_at"] == [float(v) for v in sys.argv[2].split(",")], r.get("subset_at")
assert [t["epsg"] for t in r["tiles"]] == [32632, 32633]
PY
composite_region
"$PY" "$TESTS_DIR/make_training_set.py" "$WORK/set.h5" --samples 1500 > /dev/null
mpi 1 train --samples "$WORK/set.h5" --output "$WORK/model.h5" --hidden 32 --epochs 2 --threads 1 > "$WORK/train.log" 2>&1 \
  || { cat "$WORK/train.log"; fail "train failed"; }
for t in 32TQT 33TUN; do
  mpi 2 classify --composites "$WORK/comp.h5" --model "$WORK/model.h5" --tiles $t --output "$WORK/map_$t.h5" \
    > "$WORK/classify_$t.log" 2>&1 || { cat "$WORK/classify_$t.log"; fail "classify $t failed"; }
done
# Holes of no data in both maps (as where a pixel had no clear observation all year), partly over each other: the
# other tile fills a hole where it has a class; where both are holes the mosaic is no data (allowed no data).
"$PY" - "$WORK/map_32TQT.h5" "$WORK/map_33TUN.h5" <<'PY'
import sys, h5py
for path, tile, rows, cols in ((sys.argv[1], "32TQT", (100, 160), (0, 150)), (sys.argv[2], "33TUN", (110, 150), (20, 140))):
    with h5py.File(path, "a") as f:
        g = f["tiles"][tile]
        g["class"][rows[0]:rows[1], cols[0]:cols[1]] = 255
        g["confidence"][rows[0]:rows[1], cols[0]:cols[1]] = 0
PY
MAPS="$WORK/map_32TQT.h5,$WORK/map_33TUN.h5"
echo "fixture ready after $(( $(date +%s) - start )) s"

# The one command, run from a folder of its own so the configuration stored in the files is the same.
ARGS=(mosaic --config "$S2CROP_SOURCE_DIR/configs/mosaic.ini" --maps "$MAPS" --output out/mosaic.tif
      --confidence-output out/confidence.tif)
run() {  # run DIR RANKS [more options]
  local dir="$1" n="$2"; shift 2
  mkdir -p "$dir"
  (cd "$dir" && mpi "$n" "${ARGS[@]}" "$@")
}
for n in 1 3; do
  t0=$(date +%s.%N)
  run "$WORK/r$n" $n --block-size 64 > "$WORK/r$n.log" 2>&1 || { cat "$WORK/r$n.log"; fail "mosaic on $n ranks failed"; }
  echo "mosaic on $n rank(s): $(echo "$(date +%s.%N) - $t0" | bc) s"
done
grep -q "mosaic: .* blocks (100%)" "$WORK/r3.log" || { cat "$WORK/r3.log"; fail "no progress line"; }
grep -q "peak memory per rank after warping" "$WORK/r3.log" || fail "no peak memory line"
grep "mosaic: 2 map file" "$WORK/r1.log" | sed 's/^.*mosaic: /  /'
for f in mosaic.tif mosaic.tif.aux.xml confidence.tif; do
  cmp "$WORK/r1/out/$f" "$WORK/r3/out/$f" || fail "$f differs between 1 and 3 ranks"
done
[ ! -e "$WORK/r1/out/mosaic.tif.parts" ] || fail "parts left behind"
pass "mosaic: identical files on 1 and 3 ranks"

"$PY" "$TESTS_DIR/check_mosaic.py" "$WORK/r1/out/mosaic.tif" "$WORK/map_32TQT.h5" "$WORK/map_33TUN.h5" \
  --confidence "$WORK/r1/out/confidence.tif" --json "$WORK/counts.json" || fail "mosaic content check failed"
"$PY" - "$WORK/counts.json" <<'PY' || fail "the fixture does not exercise the overlap rule"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["overlap"] > 10000 and c["won_by_second_tile"] > 100 and c["ties_to_first_tile"] > 10, c
assert c["hole_filled_by_second_tile"] > 100 and c["nodata_inside"] > 1000, c
PY
pass "mosaic: every pixel follows the overlap rule; no unexplained no-data inside the footprints, none outside"

# Pixels do not depend on the block size (the stored configuration does, so compare pixels).
run "$WORK/b200" 2 --block-size 200 > "$WORK/b200.log" 2>&1 || { cat "$WORK/b200.log"; fail "mosaic with blocks of 200 failed"; }
"$PY" - "$WORK/r1/out" "$WORK/b200/out" <<'PY' || fail "pixels depend on the block size"
import sys
from osgeo import gdal
for f in ("mosaic.tif", "confidence.tif"):
    a, b = (gdal.Open(f"{d}/{f}").ReadAsArray() for d in sys.argv[1:3])
    assert (a == b).all(), f
PY
pass "mosaic: the same pixels with blocks of 64 and 200"

# Resume: a finer grid (2 m, ~2500 blocks of 32) so the run lasts long enough to be killed in the middle.
KILL_OPTS=(--resolution 2 --block-size 32)
run "$WORK/fine" 1 "${KILL_OPTS[@]}" > "$WORK/fine.log" 2>&1 || { cat "$WORK/fine.log"; fail "fine mosaic failed"; }
total=$(grep -o '[0-9]* with data' "$WORK/fine.log" | cut -d' ' -f1)
dir="$WORK/killed"
mkdir -p "$dir"
# In a session of its own, so SIGKILL reaches mpirun and every rank (each rank has its own process group).
(cd "$dir" && exec setsid "$MPIEXEC" -np 2 --oversubscribe "$S2CROP" "${ARGS[@]}" "${KILL_OPTS[@]}") \
  > "$WORK/killed1.log" 2>&1 &
pid=$!
for i in $(seq 1 3000); do
  [ "$(find "$dir/out/mosaic.tif.parts" -name '*.part' 2>/dev/null | wc -l)" -ge $((total / 3)) ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.01
done
pkill -KILL -s "$pid" || true
wait $pid 2>/dev/null || true
for i in $(seq 1 100); do pgrep -s "$pid" > /dev/null || break; sleep 0.1; done
[ ! -e "$dir/out/mosaic.tif" ] || fail "the run finished before the kill; the test did not interrupt it"
done_before=$(find "$dir/out/mosaic.tif.parts" -name '*.part' | wc -l)
[ "$done_before" -gt 0 ] || fail "no part written before the kill"
run "$dir" 2 "${KILL_OPTS[@]}" > "$WORK/killed2.log" 2>&1 || { cat "$WORK/killed2.log"; fail "restart failed"; }
grep -q "$done_before already done" "$WORK/killed2.log" || { cat "$WORK/killed2.log"; fail "restart did not resume"; }
cmp "$WORK/fine/out/mosaic.tif" "$dir/out/mosaic.tif" || fail "resumed mosaic differs"
cmp "$WORK/fine/out/confidence.tif" "$dir/out/confidence.tif" || fail "resumed confidence differs"
pass "mosaic: killed with $done_before/$total blocks done, restarted: identical files"
# Finished: the same command does nothing; other options are refused without --overwrite, and then replace it.
cp "$dir/out/mosaic.tif" "$WORK/keep.tif"
run "$dir" 2 "${KILL_OPTS[@]}" > "$WORK/again.log" 2>&1 || { cat "$WORK/again.log"; fail "rerun of a finished mosaic failed"; }
grep -q "already complete" "$WORK/again.log" || { cat "$WORK/again.log"; fail "a finished mosaic was redone"; }
expect_failure other_options "pass --overwrite" -- mpi 2 mosaic --maps "$MAPS" --output "$dir/out/mosaic.tif" \
  --confidence-output "$dir/out/confidence.tif" --resolution 20
cmp -s "$WORK/keep.tif" "$dir/out/mosaic.tif" || fail "the finished mosaic was touched"
run "$dir" 2 --resolution 20 --overwrite > "$WORK/over.log" 2>&1 || { cat "$WORK/over.log"; fail "--overwrite failed"; }
"$PY" -c "from osgeo import gdal; import sys; assert gdal.Open(sys.argv[1]).GetGeoTransform()[1] == 20" \
  "$dir/out/mosaic.tif" || fail "--overwrite did not replace the mosaic"
pass "mosaic: a finished mosaic is not redone; other options need --overwrite"

# Bad input: the message names the file (and tile); nothing is written.
"$PY" - "$WORK/map_33TUN.h5" "$WORK/other_classes.h5" <<'PY'
import sys, shutil, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "a") as f:
    names = list(f.attrs["class_names"]); names[2] = "Sorghum"; f.attrs["class_names"] = names
PY
bad="$WORK/bad"
mkdir -p "$bad"
expect_failure missing_file "$WORK/nope.h5" -- mpi 2 mosaic --maps "$WORK/map_32TQT.h5,$WORK/nope.h5" --output "$bad/m.tif"
expect_failure unknown_tile "no tile 31UFS" -- mpi 2 mosaic --maps "$MAPS" --tiles 32TQT,31UFS --output "$bad/m.tif"
expect_failure not_a_map "comp.h5: is not an s2crop class map" -- mpi 2 mosaic --maps "$WORK/comp.h5" --output "$bad/m.tif"
expect_failure other_classes "other_classes.h5: has the classes" -- mpi 2 mosaic \
  --maps "$WORK/map_32TQT.h5,$WORK/other_classes.h5" --output "$bad/m.tif"
expect_failure same_tile_twice "tile 32TQT is also in" -- mpi 2 mosaic \
  --maps "$WORK/map_32TQT.h5,$WORK/map_32TQT.h5" --output "$bad/m.tif"
[ -z "$(ls -A "$bad")" ] || { ls -la "$bad"; fail "bad input left files behind"; }
pass "mosaic: bad input fails naming the file, writes nothing ($(( $(date +%s) - start )) s in all)"
