# shellcheck shell=bash
# What every test of the three-node cluster starts with (sourced after `set -euo pipefail`): ROOT, S2CROP, PY; fail,
# pass, skip; a skip (77) where the cluster cannot run here; WORK under $S2C_CLUSTER_WORK or /var/tmp (not /tmp: the
# nodes mount their own), removed at the end unless KEEP_WORK=1; the cluster stopped on every exit, with the Slurm
# daemons' last errors when the test failed; since (seconds since the start); Open MPI as root, over TCP on the
# cluster network between the nodes (pml ob1, so that these btl settings are the ones used).
#   source "$(dirname "$0")/lib.sh"; cluster_test_begin NAME
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
S2CROP="${S2CROP:-$ROOT/build/s2crop}"
PY=/usr/bin/python3
source "$HERE/cluster.sh"

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
skip() { echo "SKIP: $*"; exit 77; }
since() { echo "$(( $(date +%s) - T0 )) s"; }

_cluster_test_exit() {
  local status=$?
  if [ "$status" != 0 ] && [ -d "$WORK/cluster/log" ]; then
    echo "--- last errors of the Slurm daemons:" >&2
    grep -h "error" "$WORK"/cluster/log/*.log 2>/dev/null \
      | grep -v "state file\|backup state\|rmdir_recursive\|spmix_appdir" | tail -n 15 >&2 || true
  fi
  cluster_stop
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}

cluster_test_begin() {  # cluster_test_begin NAME
  local why
  why="$(cluster_missing)"
  [ -z "$why" ] || skip "no local cluster: $why"
  [ -x "$S2CROP" ] || fail "no s2crop binary at $S2CROP (set S2CROP)"
  export S2CROP
  WORK="$(mktemp -d "${S2C_CLUSTER_WORK:-/var/tmp}/s2c-$1.XXXXXX")"
  trap _cluster_test_exit EXIT
  trap 'exit 143' TERM INT
  T0=$(date +%s)
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=$S2C_CLUSTER_NET.0/24 \
    OMPI_MCA_oob_tcp_if_include=$S2C_CLUSTER_NET.0/24
}

# job_field ID FIELD: a field of `scontrol show job` (JobState, ExitCode, JobName).
job_field() { scontrol show job "$1" -o 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
