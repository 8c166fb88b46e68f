#!/usr/bin/env bash
# The Slurm path, on a real single-node Slurm cluster started here (munged, slurmctld, slurmd; stopped by PID):
#  A. the demo job through jobs/submit and the real sbatch scripts (srun --mpi=pmix, 2 ranks per stage):
#     every job COMPLETED with exit 0, the outputs there and sound; `s2crop plan` estimated the run time within 2x;
#  B. the same chain with its composite job cancelled mid-run (scancel), the chain resubmitted: it completes and
#     every output equals run A's;
#  C. a training job that hits its time limit: USR1 before the limit, requeued, resumed from its checkpoint, done;
#  D. a step that never starts (srun then still exits 0): the job must end FAILED, not COMPLETED.
# Skips (77) where Slurm or root is missing. The demo region is made smaller (tile_size) to keep the test short.
source "$(dirname "$0")/../lib.sh"
source "$TESTS_DIR/slurm_cluster.sh"
why="$(slurm_cluster_missing)"
[ -z "$why" ] || skip "no local Slurm cluster: $why"
ROOT="$S2CROP_SOURCE_DIR"
export S2CROP  # the sbatch scripts run this binary (the build under test)
SIZE=360

cluster_stop() {
  local status=$?
  if [ "$status" != 0 ] && [ -d "$WORK/cluster/log" ]; then
    echo "--- last errors of the Slurm daemons:" >&2
    grep -h "error" "$WORK"/cluster/log/slurmd.log "$WORK"/cluster/log/slurmctld.log 2>/dev/null \
      | grep -v "state file\|backup state" | tail -n 15 >&2 || true
  fi
  slurm_cluster_stop; cleanup
}
trap cluster_stop EXIT
trap 'exit 143' TERM INT  # ctest's timeout: still stop the daemons
slurm_cluster_start "$WORK/cluster" 4 || fail "the Slurm cluster did not start"
pass "Slurm cluster up: $(sinfo -h -o '%N %c CPUs %T')"

job_field() { scontrol show job "$1" -o 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
wait_jobs() {  # wait_jobs ID... : until none of them is pending or running (20 min at most)
  local deadline=$(( $(date +%s) + 1200 )) id state busy
  while :; do
    busy=0
    for id in "$@"; do
      state=$(job_field "$id" JobState)
      case "$state" in PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUED|SUSPENDED) busy=1 ;; esac
    done
    [ "$busy" = 0 ] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || { squeue; fail "jobs $* still not finished after 20 minutes"; }
    sleep 1
  done
}
check_completed() {  # check_completed LOGDIR ID...
  local logs="$1" id; shift
  for id in "$@"; do
    local state exit name
    state=$(job_field "$id" JobState); exit=$(job_field "$id" ExitCode); name=$(job_field "$id" JobName)
    if [ "$state" != COMPLETED ] || [ "$exit" != 0:0 ]; then
      tail -n 30 "$logs"/*-"$id".log 2>/dev/null || true
      fail "job $id ($name) ended $state with exit code $exit"
    fi
  done
}
submit() {  # submit NAME [jobs/submit options...] : prints nothing, sets IDS
  "$ROOT/jobs/submit" "$ROOT/jobs/demo.ini" "${@:2}" > "$WORK/$1.submit" 2>&1 || { cat "$WORK/$1.submit"; fail "jobs/submit ($1) failed"; }
  IDS=$(sed -n 's/^job ids: //p' "$WORK/$1.submit")
  [ -n "$IDS" ] || { cat "$WORK/$1.submit"; fail "jobs/submit ($1) printed no job ids"; }
}

# ---- A: the demo job, uninterrupted
A="$WORK/a"
# Small blocks, so that compositing has enough units to be cancelled in the middle (part B).
common=(--set "DEFAULT.workdir=$A" --set "data.tile_size=$SIZE"
        --set "composite.args=--input $A/region/stac --output $A/composites.h5 --block-size 120")
"$S2CROP" plan "$ROOT/jobs/demo.ini" "${common[@]}" --json "$WORK/plan.json" > "$WORK/plan.txt" 2>&1 \
  || { cat "$WORK/plan.txt"; fail "s2crop plan failed on the demo job"; }
grep -q "estimated run time" "$WORK/plan.txt" || { cat "$WORK/plan.txt"; fail "plan printed no run time"; }
start=$(date +%s.%N)
submit a "${common[@]}"
read -r -a ids_a <<< "$IDS"
[ "${#ids_a[@]}" = 7 ] || fail "expected 7 jobs (synth ... assess), got: $IDS"
wait_jobs "${ids_a[@]}"
end=$(date +%s.%N)
check_completed "$A/logs" "${ids_a[@]}"
pass "demo job: 7 chained jobs COMPLETED with exit 0 ($(awk "BEGIN{printf \"%.0f\", $end-$start}") s)"
grep -q "srun\|rank(s) x" "$A"/logs/composite-*.log || fail "composite log has no start line"
grep -q "2 rank(s) x 1 thread(s)" "$A"/logs/classify-*.log || fail "classify did not run on 2 ranks"
grep -q "\[1/2\]\|\[0/2\]" "$A"/logs/train-*.log || fail "train log shows no MPI rank prefix of 2 ranks"

# The outputs: composites of 3 tiles, a map, a mosaic in EPSG:3035 with colour table, an accuracy report.
"$PY" - "$A" <<'PY' || fail "demo job outputs are incomplete or unsound"
import json, sys, h5py
from osgeo import gdal, osr
a = sys.argv[1]
with h5py.File(f"{a}/composites.h5") as f:
    assert sorted(f["tiles"]) == ["32TQT", "33TUM", "33UVP"], list(f["tiles"])
with h5py.File(f"{a}/map.h5") as f:
    assert sorted(f["tiles"]) == ["32TQT", "33TUM", "33UVP"], list(f["tiles"])
ds = gdal.Open(f"{a}/mosaic.tif")
assert ds is not None, "mosaic.tif does not open"
srs = osr.SpatialReference(wkt=ds.GetProjection()); srs.AutoIdentifyEPSG()
assert srs.GetAuthorityCode(None) == "3035", ds.GetProjection()[:80]
band = ds.GetRasterBand(1)
assert band.GetColorTable() is not None, "no colour table"
assert band.GetCategoryNames() and "Maize" in band.GetCategoryNames(), band.GetCategoryNames()
# NO-DATA COUNT along the tile borders in both UTM zones: each tile's outline (every edge pixel corner, transformed
# to EPSG:3035), eroded by one pixel, rasterised on its window of the mosaic grid, holds no no-data pixel beyond the
# map's own no-data pixels.
import numpy as np
from osgeo import ogr
gt = ds.GetGeoTransform()
dst = osr.SpatialReference(); dst.ImportFromEPSG(3035); dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
with h5py.File(f"{a}/map.h5") as f:
    for name, g in f["tiles"].items():
        src = osr.SpatialReference(wkt=g.attrs["crs_wkt"]); src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        ct = osr.CoordinateTransformation(src, dst)
        tgt = g.attrs["geotransform"]; h, w = g["class"].shape
        ring = ([(i, 0) for i in range(w + 1)] + [(w, j) for j in range(1, h + 1)] +
                [(i, h) for i in range(w - 1, -1, -1)] + [(0, j) for j in range(h - 1, -1, -1)])
        pts = [ct.TransformPoint(tgt[0] + i * tgt[1], tgt[3] + j * tgt[5])[:2] for i, j in ring]
        xs, ys = zip(*pts)
        c0, c1 = int((min(xs) - gt[0]) // gt[1]) - 2, int((max(xs) - gt[0]) // gt[1]) + 3
        r0, r1 = int((max(ys) - gt[3]) // gt[5]) - 2, int((min(ys) - gt[3]) // gt[5]) + 3
        c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, ds.RasterXSize), min(r1, ds.RasterYSize)
        win = band.ReadAsArray(c0, r0, c1 - c0, r1 - r0)
        mem = gdal.GetDriverByName("MEM").Create("", c1 - c0, r1 - r0, 1, gdal.GDT_Byte)
        mem.SetGeoTransform((gt[0] + c0 * gt[1], gt[1], 0, gt[3] + r0 * gt[5], 0, gt[5]))
        mem.SetProjection(dst.ExportToWkt())
        vec = ogr.GetDriverByName("Memory").CreateDataSource("")
        layer = vec.CreateLayer("outline", dst, ogr.wkbPolygon)
        lr = ogr.Geometry(ogr.wkbLinearRing)
        for x, y in pts:
            lr.AddPoint_2D(x, y)
        poly = ogr.Geometry(ogr.wkbPolygon); poly.AddGeometry(lr)
        feature = ogr.Feature(layer.GetLayerDefn()); feature.SetGeometry(poly); layer.CreateFeature(feature)
        gdal.RasterizeLayer(mem, [1], layer, burn_values=[1])
        inside = mem.ReadAsArray().astype(bool)
        eroded = inside.copy()
        eroded[1:, :] &= inside[:-1, :]; eroded[:-1, :] &= inside[1:, :]
        eroded[:, 1:] &= inside[:, :-1]; eroded[:, :-1] &= inside[:, 1:]
        holes = int(np.count_nonzero(win[eroded] == 255))
        own = int(np.count_nonzero(g["class"][()] == 255))
        print(f"ok: mosaic around {name}: {int(eroded.sum())} px inside the outline, {holes} no-data "
              f"(the map itself has {own} no-data px)")
        assert eroded.sum() > 0.9 * h * w, "outline window misplaced"
        assert holes <= own, f"{name}: {holes} no-data pixels inside the tile in the mosaic"
acc = json.load(open(f"{a}/accuracy/accuracy.json"))
print(f"ok: outputs sound; held-out OA {acc['overall_accuracy']:.3f}, macro-F1 {acc['macro_f1']:.3f}")
assert acc["overall_accuracy"] > 0.6, acc["overall_accuracy"]
PY

# plan's estimate of the run time against the measured run
"$PY" - "$WORK/plan.json" "$start" "$end" <<'PY' || fail "plan's run-time estimate is off by more than 2x"
import json, sys
est = json.load(open(sys.argv[1]))["wall_seconds"]
measured = float(sys.argv[3]) - float(sys.argv[2])
print(f"ok: plan estimated {est:.0f} s, the run took {measured:.0f} s (ratio {est / measured:.2f})")
assert 0.5 <= est / measured <= 2.0
PY

# ---- B: cancel the composite job mid-run, resubmit the chain: same outputs as A. B runs in A's folder (the
# same command, so the same configuration is stored in every output) after A's outputs are moved aside.
B="$A"
REF="$WORK/a-outputs"
mkdir -p "$REF"
for f in "$A"/*; do
  case "$(basename "$f")" in region|logs) ;; *) mv "$f" "$REF/" ;; esac
done
chain_b=("${common[@]}" --stages composite,extract,train,classify,mosaic,assess)
submit b1 "${chain_b[@]}"
read -r -a ids_b1 <<< "$IDS"
composite_job=${ids_b1[0]}
for i in $(seq 1 600); do
  n=$(find "$B/composites.h5.parts" -type f 2>/dev/null | wc -l || true)
  [ "$n" -ge 3 ] && break
  [ "$(job_field "$composite_job" JobState)" = COMPLETED ] && fail "composite finished before it could be cancelled"
  sleep 0.1
done
scancel "$composite_job"
wait_jobs "${ids_b1[@]}"
[ "$(job_field "$composite_job" JobState)" = CANCELLED ] || fail "composite job not cancelled: $(job_field "$composite_job" JobState)"
for id in "${ids_b1[@]:1}"; do
  state=$(job_field "$id" JobState)
  [ "$state" = CANCELLED ] || fail "job $id after the cancelled composite should be cancelled, is $state"
done
[ ! -e "$B/composites.h5" ] || fail "a cancelled composite left a file that looks complete"
parts_left=$(find "$B/composites.h5.parts" -type f | wc -l)
pass "composite cancelled with $parts_left finished blocks; the jobs after it were cancelled"
submit b2 "${chain_b[@]}"
read -r -a ids_b2 <<< "$IDS"
wait_jobs "${ids_b2[@]}"
check_completed "$B/logs" "${ids_b2[@]}"
grep -q "already done" "$B"/logs/composite-"${ids_b2[0]}".log || fail "the resubmitted composite did not resume from finished blocks"
h5_same "$REF/composites.h5" "$B/composites.h5" || fail "composites differ from the uninterrupted run"
h5_same "$REF/samples.h5" "$B/samples.h5" || fail "samples differ from the uninterrupted run"
h5diff "$REF/model.h5" "$B/model.h5" /parameters /parameters > /dev/null || fail "models differ from the uninterrupted run"
# The map's run fingerprint hashes its input files, whose creation times differ: every other byte must agree.
"$PY" "$TESTS_DIR/h5_compare.py" --ignore-attr run_fingerprint "$REF/map.h5" "$B/map.h5" \
  || fail "maps differ from the uninterrupted run"
"$PY" - "$REF/mosaic.tif" "$B/mosaic.tif" <<'PY' || fail "mosaics differ from the uninterrupted run"
import sys
from osgeo import gdal
a, b = (gdal.Open(p) for p in sys.argv[1:])
assert a.GetGeoTransform() == b.GetGeoTransform()
assert (a.ReadAsArray() == b.ReadAsArray()).all()
PY
cmp -s <("$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['overall_accuracy'], d['macro_f1'])" "$REF/accuracy/accuracy.json") \
       <("$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['overall_accuracy'], d['macro_f1'])" "$B/accuracy/accuracy.json") \
  || fail "accuracy differs from the uninterrupted run"
pass "cancelled and resubmitted chain: composites, samples, model, map, mosaic and accuracy equal the uninterrupted run"

# A rerun of the finished chain does nothing and succeeds.
submit b3 "${chain_b[@]}"
read -r -a ids_b3 <<< "$IDS"
wait_jobs "${ids_b3[@]}"
check_completed "$B/logs" "${ids_b3[@]}"
pass "resubmitting a finished chain completes at once"

# ---- C: training that hits its time limit: requeued from the USR1 trap, resumed from its checkpoint
C="$WORK/c"
mkdir -p "$C"
# Enough epochs that the first run outlasts the USR1 (up to 60 s into the 2-minute limit) on a fast CPU: 60 epochs
# took 52 s on an Intel VM (2026-12-07) and the job finished unsignalled. A slow CPU is requeued more than once.
submit c --set "DEFAULT.workdir=$C" --stages train --set "train.time=00:02:00" --set "train.signal=B:USR1@60" \
  --set "train.args=--config configs/demo-train.ini --samples $REF/samples.h5 --tiles 32TQT,33TUM --output $C/model.h5 --epochs 150 --patience 0"
train_job=$IDS
wait_jobs "$train_job"
check_completed "$C/logs" "$train_job"
log="$C/logs/train-$train_job.log"
restarts=$(job_field "$train_job" Restarts)
[ "$restarts" -ge 1 ] || { cat "$log"; fail "the training job was never requeued (Restarts=$restarts)"; }
grep -q "time limit near: requeueing" "$log" || { cat "$log"; fail "no requeue message in the job log"; }
grep -q "resumed from .* after epoch" "$log" || { cat "$log"; fail "the requeued training did not resume from its checkpoint"; }
grep -q "epoch 150/150" "$log" || { tail -5 "$log"; fail "the requeued training did not reach its last epoch"; }
[ -f "$C/model.h5" ] || fail "no model after the requeued training"
pass "training requeued $restarts time(s) before its time limit, resumed from the checkpoint and finished"

# ---- D: a step that cannot start. The MPI plugin refuses a step whose folder exists already (left over on a node by
# a killed step); srun then prints "launch failed" and still exits 0. The job must fail, so that afterok stops the chain.
D="$WORK/d"
mkdir -p "$D"
next=$(scontrol show config | sed -n 's/^NEXT_JOB_ID *= *//p')
mkdir -p "$WORK/cluster/tmp/spmix_appdir_$(id -u)_$next.0"
(cd "$ROOT" && sbatch --parsable -n 2 -o "$D/synth-%j.log" slurm/synth.sbatch --out "$D/region" --size 60 --tiles 32TQT --days 30 > "$D/id") \
  || fail "sbatch failed"
d_job=$(cut -d';' -f1 "$D/id")
[ "$d_job" = "$next" ] || fail "expected job id $next, sbatch gave $d_job"
wait_jobs "$d_job"
state=$(job_field "$d_job" JobState)
[ "$state" = FAILED ] || { cat "$D"/synth-*.log; fail "a job whose step never started ended $state, not FAILED"; }
grep -q "never reported success" "$D"/synth-*.log || { cat "$D"/synth-*.log; fail "the job log does not say the step never started"; }
pass "a step that never started fails its job (srun exited 0; the job script noticed)"
