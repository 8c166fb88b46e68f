#!/usr/bin/env bash
# Node loss on the three-node cluster of cluster.sh: every process of node2 (its slurmd, slurmstepd and ranks) is
# killed in the middle of a composite job and of a training job, each on 3 nodes x 2 ranks. Checks: the ranks on the
# other nodes are gone within LEAVE_S (none left waiting: Slurm finds node2 DOWN and cancels the step; it then requeues
# the job, which would wait for node2, so it is cancelled); the job is not COMPLETED; the documented step, the same
# stage resubmitted on the two nodes left, resumes from the finished work (composite: the finished blocks, on 4 ranks;
# training: its last checkpoint, on 6 ranks, 3 per node: a checkpoint resumes on its own rank count) and writes
# outputs identical to uninterrupted runs.
# (--time=30 for training: train.sbatch asks for USR1 600 s before the limit, which would requeue a 10-minute job at
# once.) Needs root and Slurm/munge/iproute2 (skips with 77 otherwise). Environment as test_cluster_smoke.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cluster_test_begin loss

# ---- inputs and uninterrupted references, outside the cluster (plain mpirun on this host)
REGION="$WORK/region"
COMP=(--input "$REGION/stac" --block-size 30)
TRAIN=(--config "$ROOT/configs/demo-train.ini" --samples "$WORK/samples.h5" --epochs 6 --patience 0 --threads 1)
(
  unset OMPI_MCA_btl_tcp_if_include OMPI_MCA_oob_tcp_if_include  # no cluster network yet
  mpirun -np 2 --oversubscribe "$S2CROP" synth --out "$REGION" --tiles 33UVP,32TQT --size 300 --days 365 --seed 11 \
    > "$WORK/synth.log" 2>&1 || { cat "$WORK/synth.log"; fail "synth failed"; }
  mpirun -np 2 --oversubscribe "$S2CROP" composite "${COMP[@]}" --output "$WORK/ref.h5" > "$WORK/ref.log" 2>&1 \
    || { cat "$WORK/ref.log"; fail "reference composite failed"; }
  mpirun -np 2 --oversubscribe "$S2CROP" extract --composites "$WORK/ref.h5" --labels "$REGION/parcels.gpkg" \
    --output "$WORK/samples.h5" > "$WORK/extract.log" 2>&1 || { cat "$WORK/extract.log"; fail "extract failed"; }
  mpirun -np 6 --oversubscribe "$S2CROP" train "${TRAIN[@]}" --output "$WORK/ref_model.h5" > "$WORK/ref_train.log" 2>&1 \
    || { cat "$WORK/ref_train.log"; fail "reference training (6 ranks) failed"; }
)
pass "region, reference composite (2 ranks) and model (6 ranks) ($(since))"

cluster_start "$WORK/cluster" 6 || fail "the cluster did not start"
pass "cluster up ($(since))"

# lose_node2 STAGE ID LOG CONDITION: once CONDITION (a shell command) holds, the stage is under way and node2 fails;
# then the other nodes' ranks must be gone within LEAVE_S (Slurm cancels the step when it finds the node DOWN,
# SlurmdTimeout=10 in cluster.sh: ranks blocked in MPI on the dead peers do not notice by themselves) and the job
# must end.
LEAVE_S=45
lose_node2() {
  local stage="$1" id="$2" log="$3" condition="$4" i t_kill left state
  for i in $(seq 1 600); do eval "$condition" && break; sleep 0.2; done
  eval "$condition" || { cat "$log" 2>/dev/null; squeue; scontrol show job "$id" | head -20; sinfo -N;
                         fail "$stage: never got under way ($condition)"; }
  cluster_kill_node node2
  t_kill=$(date +%s)
  for i in $(seq 1 $((LEAVE_S * 2))); do
    left=$(pgrep -f "s2crop $stage" | tr '\n' ' ' || true)
    [ -z "$left" ] && break
    sleep 0.5
  done
  [ -z "$left" ] || { ps -o pid,etime,args -p ${left// /,} || true; fail "$stage: ranks still running $LEAVE_S s after node2 died"; }
  echo "$stage: the other ranks were gone $(( $(date +%s) - t_kill )) s after node2 died"
  for i in $(seq 1 120); do
    state=$(job_field "$id" JobState)
    case "$state" in RUNNING|COMPLETING|CONFIGURING) sleep 0.5 ;; *) break ;; esac
  done
  echo "$stage: job $id is $state, exit $(job_field "$id" ExitCode)"
  [ "$state" != COMPLETED ] || fail "$stage: the job lost a node and still says COMPLETED"
  # A requeued job would wait for node2: the resubmission on the nodes left is the documented step.
  scancel "$id" 2>/dev/null || true
  pass "$stage: node2 lost mid-run, no rank left waiting ($(since))"
}

# ---- compositing
id=$(sbatch --parsable -N 3 --ntasks-per-node=2 --time=10 --chdir="$WORK" --output="$WORK/comp-%j.log" \
  --export="ALL,S2CROP_ROOT=$ROOT,S2CROP=$S2CROP" "$ROOT/slurm/composite.sbatch" "${COMP[@]}" --output "$WORK/comp.h5")
lose_node2 composite "$id" "$WORK/comp-$id.log" '[ "$(find "$WORK/comp.h5.parts" -type f 2>/dev/null | wc -l)" -ge 12 ]'
sbatch --wait -N 2 --ntasks-per-node=2 --nodelist=node1,node3 --time=10 --chdir="$WORK" --output="$WORK/comp2-%j.log" \
  --export="ALL,S2CROP_ROOT=$ROOT,S2CROP=$S2CROP" "$ROOT/slurm/composite.sbatch" "${COMP[@]}" --output "$WORK/comp.h5" \
  > /dev/null || { cat "$WORK"/comp2-*.log; fail "the resubmitted composite failed"; }
grep -E "[1-9][0-9]* already done" "$WORK"/comp2-*.log || { cat "$WORK"/comp2-*.log; fail "the resubmitted composite did not resume"; }
"$PY" "$ROOT/tests/h5_compare.py" "$WORK/ref.h5" "$WORK/comp.h5" --ignore-attr config --ignore-attr run_fingerprint \
  || fail "the composite after the node loss differs from the uninterrupted one"
pass "composite resumed on node1 and node3 (4 ranks): identical to the uninterrupted run ($(since))"

cluster_restart_node node2 || fail "node2 did not come back"
pass "node2 back in service ($(since))"

# ---- training: node2 dies after the first checkpoint; resubmitted on node1 and node3 with 3 ranks each (the
# checkpoint's 6 ranks), it resumes and ends with the uninterrupted run's model.
id=$(sbatch --parsable -N 3 --ntasks-per-node=2 --cpus-per-task=1 --mem-per-cpu=500M --time=30 --chdir="$WORK" --output="$WORK/train-%j.log" \
  --export="ALL,S2CROP_ROOT=$ROOT,S2CROP=$S2CROP" "$ROOT/slurm/train.sbatch" "${TRAIN[@]}" --output "$WORK/model.h5")
lose_node2 train "$id" "$WORK/train-$id.log" '[ -s "$WORK/model.h5.ckpt/checkpoint.txt" ]'
[ ! -e "$WORK/model.h5" ] || fail "training lost a node and still wrote its model"
sbatch --wait -N 2 --ntasks-per-node=3 --cpus-per-task=1 --mem-per-cpu=500M --nodelist=node1,node3 --time=30 --chdir="$WORK" --output="$WORK/train2-%j.log" \
  --export="ALL,S2CROP_ROOT=$ROOT,S2CROP=$S2CROP" "$ROOT/slurm/train.sbatch" "${TRAIN[@]}" --output "$WORK/model.h5" \
  > /dev/null || { cat "$WORK"/train2-*.log; fail "the resubmitted training failed"; }
grep -h "resumed from" "$WORK"/train2-*.log || { cat "$WORK"/train2-*.log; fail "the resubmitted training did not resume"; }
"$PY" "$ROOT/tests/h5_compare.py" "$WORK/ref_model.h5" "$WORK/model.h5" --ignore-attr config --ignore-attr run_fingerprint \
  || fail "the model after the node loss differs from the uninterrupted one"
pass "training resumed on node1 and node3 (6 ranks): the model equals the uninterrupted run's ($(since))"
