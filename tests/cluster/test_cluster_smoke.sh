#!/usr/bin/env bash
# Smoke test of the three-node cluster (cluster.sh): 3 network namespaces as nodes, one slurmd each, slurmctld on the
# host. Checks:
#  1. srun --mpi=pmix -N 3 -n 6 --ntasks-per-node=2 hostname: 2 tasks on each of node1, node2, node3;
#  2. an MPI probe (built here with mpicc, if there is one): 6 ranks, MPI_COMM_TYPE_SHARED groups of 2, 3 processor
#     names, an MPI_Allreduce across the nodes (TCP over the bridge);
#  3. the real slurm/composite.sbatch through sbatch --wait -N 3 --ntasks-per-node=2: s2crop composite on 6 ranks on
#     3 nodes, its log naming the 3 hosts with node-local ranks 0 and 1 on each; its output equals the same composite
#     made with plain mpirun -np 2 outside the cluster;
#  4. node-local /tmp: each node's /tmp is its own.
# Needs root and Slurm/munge/iproute2 (skips with 77 otherwise). Work folder: $S2C_CLUSTER_WORK or /var/tmp (not
# /tmp: the nodes mount their own /tmp). Environment: S2CROP (binary, default <checkout>/build/s2crop),
# KEEP_WORK=1 keeps the work folder.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cluster_test_begin smoke

# ---- inputs and the reference, outside the cluster (plain mpirun, 2 ranks, host namespace)
REGION="$WORK/region"
COMP_OPTS=(--config "$ROOT/configs/composite.ini" --block-size 32)
(
  unset OMPI_MCA_btl_tcp_if_include OMPI_MCA_oob_tcp_if_include  # no cluster network yet
  mpirun -np 2 --oversubscribe "$S2CROP" synth --out "$REGION" --tiles 33UVP --size 96 --days 365 --seed 7 \
    > "$WORK/synth.log" 2>&1 || { cat "$WORK/synth.log"; fail "synth failed"; }
  mpirun -np 2 --oversubscribe "$S2CROP" composite --input "$REGION/stac" --output "$WORK/ref.h5" "${COMP_OPTS[@]}" \
    > "$WORK/ref.log" 2>&1 || { cat "$WORK/ref.log"; fail "reference composite (mpirun -np 2) failed"; }
)
pass "synthetic region and the 2-rank reference composite ($(since))"

PROBE=""
if command -v mpicc >/dev/null 2>&1; then
  cat > "$WORK/probe.c" <<'C'
#include <mpi.h>
#include <stdio.h>
int main(int argc, char** argv) {
  int rank, size, nrank, nsize, len, sum = 0;
  char name[MPI_MAX_PROCESSOR_NAME];
  MPI_Comm node;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &nrank);
  MPI_Comm_size(node, &nsize);
  MPI_Get_processor_name(name, &len);
  MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  printf("probe rank %d/%d host %s node_rank %d/%d allreduce %d\n", rank, size, name, nrank, nsize, sum);
  MPI_Comm_free(&node);
  MPI_Finalize();
  return 0;
}
C
  mpicc -O1 -o "$WORK/probe" "$WORK/probe.c" && PROBE="$WORK/probe"
fi

# ---- the cluster
cluster_start "$WORK/cluster" 2 || fail "the cluster did not start"
pass "cluster up ($(since)): $(sinfo -h -N -o '%N/%T' | sort -u | tr '\n' ' ')"

# 1. tasks on three hosts
srun --mpi=pmix -N 3 -n 6 --ntasks-per-node=2 -l hostname > "$WORK/hostname.out" 2>&1 \
  || { cat "$WORK/hostname.out"; fail "srun hostname failed"; }
hosts=$(awk '{print $2}' "$WORK/hostname.out" | sort | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ')
[ "$hosts" = "node1x2 node2x2 node3x2 " ] || { cat "$WORK/hostname.out"; fail "expected 2 tasks on each of node1..3, got: $hosts"; }
pass "srun --mpi=pmix -N 3 -n 6: $hosts($(since))"

# 2. MPI across the nodes
if [ -n "$PROBE" ]; then
  srun --mpi=pmix -N 3 -n 6 --ntasks-per-node=2 "$PROBE" > "$WORK/probe.out" 2>&1 \
    || { cat "$WORK/probe.out"; fail "the MPI probe failed under srun --mpi=pmix"; }
  [ "$(grep -c '^probe rank [0-5]/6 host node[1-3] node_rank [01]/2 allreduce 15$' "$WORK/probe.out")" = 6 ] \
    || { cat "$WORK/probe.out"; fail "MPI probe: expected 6 ranks, 2 per node (MPI_COMM_TYPE_SHARED), allreduce 15"; }
  [ "$(awk '/^probe/ {print $5}' "$WORK/probe.out" | sort -u | wc -l)" = 3 ] || { cat "$WORK/probe.out"; fail "MPI probe: not 3 hosts"; }
  pass "MPI probe: 6 ranks on 3 nodes, MPI_COMM_TYPE_SHARED groups of 2, MPI_Allreduce over TCP ($(since))"
else
  echo "note: no mpicc, MPI probe skipped"
fi

# 3. the real composite stage script on 3 nodes x 2 ranks
rc=0
sbatch --wait -N 3 --ntasks-per-node=2 --mem-per-cpu=500M --time=10 --chdir="$WORK" \
  --output="$WORK/composite-%j.log" --export="ALL,S2CROP_ROOT=$ROOT,S2CROP=$S2CROP" \
  "$ROOT/slurm/composite.sbatch" --input "$REGION/stac" --output "$WORK/cluster.h5" --block-size 32 \
  > "$WORK/sbatch.out" 2>&1 || rc=$?
log=$(find "$WORK" -maxdepth 1 -name 'composite-*.log' | head -1)
[ "$rc" = 0 ] || { cat "$WORK/sbatch.out" "$log" 2>/dev/null; fail "composite job failed (sbatch --wait exit $rc)"; }
grep -q "to compute on 6 rank(s)" "$log" || { cat "$log"; fail "composite log does not report 6 ranks"; }
grep -q "s2crop composite on 3 node(s) (node\[1-3\]), 6 rank(s)" "$log" || { cat "$log"; fail "composite log does not report 3 nodes"; }
# s2crop's own placement line: every rank's host and node-local rank (MPI_COMM_TYPE_SHARED), 0 and 1 on each node.
placement=$(grep -o 'composite: 6 rank(s) on 3 host(s): .*' "$log") || { cat "$log"; fail "s2crop does not log where its ranks run"; }
for n in 1 2 3; do
  echo "$placement" | grep -qE "node$n ranks [0-9,-]+ \(node-local 0-1\)" \
    || fail "node$n: expected node-local ranks 0 and 1 in: $placement"
done
pass "s2crop's log: $placement"
"$PY" "$ROOT/tests/h5_compare.py" "$WORK/ref.h5" "$WORK/cluster.h5" --ignore-attr config > "$WORK/compare.out" 2>&1 \
  || { cat "$WORK/compare.out"; fail "composite on 3 nodes x 2 ranks differs from mpirun -np 2"; }
pass "slurm/composite.sbatch on 3 nodes x 2 ranks: identical to mpirun -np 2 ($(since))"

# 4. node-local /tmp: what the jobs left there (the stage's success file of slurm/lib.sh lives in the batch node's
# /tmp, PMIx's spmix_appdir_* and Open MPI's session folders in every node's), then each node's /tmp is its own
for n in 1 2 3; do
  left=$(cluster_on node$n ls -A /tmp)
  [ -z "$left" ] || fail "node$n: files left in its /tmp after the jobs: $left"
done
pass "the jobs left nothing in any node's /tmp"
for n in 1 2 3; do cluster_on node$n sh -c "echo node$n > /tmp/s2c-which"; done
for n in 1 2 3; do
  [ "$(cluster_on node$n cat /tmp/s2c-which)" = node$n ] || fail "node$n's /tmp is not its own"
done
[ ! -e /tmp/s2c-which ] || fail "a node wrote into the host's /tmp"
pass "node-local /tmp on every node; the host's /tmp untouched"
echo "total $(since)"
