#!/usr/bin/env bash
# The demo job (jobs/submit jobs/demo.ini: synth, composite, extract, train, classify, mosaic, assess) on the
# three-node cluster of cluster.sh: every stage on 3 nodes x 2 ranks (srun --mpi=pmix, Open MPI over TCP between the
# nodes, node-local /tmp), against the same chain on 1 node x 6 ranks. Checks: every job COMPLETED; every stage's log
# names the 3 hosts with node-local ranks 0 and 1 on each; every output (composites, samples, model, map, mosaic,
# accuracy report) identical between the two. The region is small (tile_size) to keep the test short.
# Needs root and Slurm/munge/iproute2 (skips with 77 otherwise). Environment as test_cluster_smoke.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cluster_test_begin chain
SIZE="${SIZE:-180}"

# 6 CPUs per node: the reference chain runs its 6 ranks on one node.
cluster_start "$WORK/cluster" 6 || fail "the cluster did not start"
pass "cluster up ($(since)): $(sinfo -h -N -o '%N/%T' | sort -u | tr '\n' ' ')"

STAGES=(synth composite extract train classify mosaic assess)
# chain DIR NODES TASKS_PER_NODE: the demo job in DIR (every stage on NODES x TASKS_PER_NODE ranks), to its end.
chain() {
  local dir="$1" nodes="$2" per="$3" st ids id state deadline
  local set=(--set "DEFAULT.workdir=$dir" --set "data.tile_size=$SIZE")
  for st in "${STAGES[@]}"; do
    set+=(--set "$st.nodes=$nodes" --set "$st.ntasks=$((nodes * per))" --set "$st.ntasks_per_node=$per"
          --set "$st.mem_per_cpu=400M")
  done
  "$ROOT/jobs/submit" "$ROOT/jobs/demo.ini" "${set[@]}" > "$dir.submit" 2>&1 || { cat "$dir.submit"; fail "jobs/submit failed"; }
  ids=$(sed -n 's/^job ids: //p' "$dir.submit")
  [ "$(echo "$ids" | wc -w)" = "${#STAGES[@]}" ] || { cat "$dir.submit"; fail "expected ${#STAGES[@]} jobs, got: $ids"; }
  deadline=$(( $(date +%s) + 420 ))
  for id in $ids; do
    while :; do
      state=$(job_field "$id" JobState)
      case "$state" in PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUED) ;; *) break ;; esac
      [ "$(date +%s)" -lt "$deadline" ] || { squeue; fail "$dir: job $id still $state after 7 minutes"; }
      sleep 1
    done
    if [ "$state" != COMPLETED ] || [ "$(job_field "$id" ExitCode)" != 0:0 ]; then
      tail -n 30 "$dir"/logs/*-"$id".log 2>/dev/null || true
      fail "$dir: job $id ($(job_field "$id" JobName)) ended $state, exit $(job_field "$id" ExitCode)"
    fi
  done
}

# The reference on one node, then moved aside, so that both chains write the same paths (they are in the outputs'
# attributes).
chain "$WORK/run" 1 6
mv "$WORK/run" "$WORK/one-node"
pass "the demo chain on 1 node x 6 ranks ($(since))"
chain "$WORK/run" 3 2
pass "the demo chain on 3 nodes x 2 ranks ($(since))"

# Every stage's log: 6 ranks on node1..3, node-local ranks 0 and 1 on each.
for st in "${STAGES[@]}"; do
  log=$(ls "$WORK"/run/logs/"$st"-*.log | head -1)
  placement=$(grep -o "$st: 6 rank(s) on 3 host(s): .*" "$log") || { tail -n 20 "$log"; fail "$st: no placement line on 3 hosts"; }
  for n in 1 2 3; do
    echo "$placement" | grep -qE "node$n ranks [0-9,-]+ \\(node-local 0-1\\)" || fail "$st: node$n lacks node-local ranks 0-1: $placement"
  done
done
pass "every stage's log: 6 ranks on node1..3, node-local 0-1 on each"

# Identical outputs. Attributes that name a run rather than its result (creation time, run fingerprint with file
# identities) are left out; everything else, datasets byte for byte.
for f in composites.h5 samples.h5 model.h5 map.h5; do
  "$PY" "$ROOT/tests/h5_compare.py" "$WORK/one-node/$f" "$WORK/run/$f" --ignore-attr config \
    --ignore-attr run_fingerprint > "$WORK/compare-$f.out" 2>&1 || { cat "$WORK/compare-$f.out"; fail "$f differs between 3 nodes and 1 node"; }
done
"$PY" - "$WORK/one-node/mosaic.tif" "$WORK/run/mosaic.tif" <<'PY' || fail "mosaic.tif differs between 3 nodes and 1 node"
import sys
from osgeo import gdal
a, b = (gdal.Open(p) for p in sys.argv[1:])
ma, mb = a.GetMetadata(), b.GetMetadata()
for m in (ma, mb):
    m.pop("S2CROP_RUN_FINGERPRINT")  # names the run (its inputs' file identities), not the result
assert ma == mb, "metadata"
assert a.GetGeoTransform() == b.GetGeoTransform() and a.GetProjection() == b.GetProjection(), "georeferencing"
ba, bb = a.GetRasterBand(1), b.GetRasterBand(1)
assert (ba.ReadAsArray() == bb.ReadAsArray()).all(), "pixels"
assert ba.GetCategoryNames() == bb.GetCategoryNames() and ba.GetNoDataValue() == bb.GetNoDataValue(), "legend"
ta, tb = ba.GetColorTable(), bb.GetColorTable()
assert [ta.GetColorEntry(i) for i in range(ta.GetCount())] == [tb.GetColorEntry(i) for i in range(tb.GetCount())]
PY
"$PY" - "$WORK/one-node/accuracy/accuracy.json" "$WORK/run/accuracy/accuracy.json" <<'PY' || fail "accuracy reports differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for r in (a, b):
    r["provenance"].pop("created")
assert a == b, [k for k in a if a.get(k) != b.get(k)]
print(f"ok: accuracy identical (OA {a['overall_accuracy']:.3f})")
PY
pass "composites, samples, model, map, mosaic and accuracy identical on 3 nodes x 2 ranks and 1 node x 6 ranks ($(since))"
