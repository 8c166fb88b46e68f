# Shared by every slurm/*.sbatch script (sourced): finds the checkout and the binary, sets threads from the
# allocation, logs to the job's output file, runs one s2crop stage as an MPI step and requeues the job when the
# time limit or a preemption is near. Every stage resumes from what it finished (composite/classify/mosaic blocks,
# training checkpoints), so a requeued or resubmitted job picks up where the last one stopped.
#
# Environment (all optional):
#   S2CROP_ROOT   the s2crop checkout (default: the folder the job was submitted from)
#   S2CROP        the binary (default: $S2CROP_ROOT/build/s2crop)
#   S2CROP_SRUN   extra srun options, e.g. "--cpu-bind=cores"
set -euo pipefail

# sbatch runs a copy of the script from its spool folder: find the checkout from where the job was submitted.
S2CROP_ROOT="${S2CROP_ROOT:-${SLURM_SUBMIT_DIR:-$(pwd)}}"
S2CROP="${S2CROP:-$S2CROP_ROOT/build/s2crop}"
export S2CROP_ROOT

s2crop_log() { echo "$(date -u +%FT%TZ) [${SLURM_JOB_NAME:-s2crop} ${SLURM_JOB_ID:-?}] $*"; }

if [ ! -x "$S2CROP" ]; then
  s2crop_log "error: no s2crop binary at $S2CROP (build it with scripts/build.sh, or set S2CROP / S2CROP_ROOT)" >&2
  exit 2
fi

# One rank per task; its threads are the task's CPUs. LibTorch and OpenBLAS follow OMP_NUM_THREADS and s2crop's
# default --threads reads SLURM_CPUS_PER_TASK, so ranks never oversubscribe the cores they were given.
S2CROP_THREADS="${SLURM_CPUS_PER_TASK:-1}"
export OMP_NUM_THREADS="$S2CROP_THREADS" OPENBLAS_NUM_THREADS="$S2CROP_THREADS" MKL_NUM_THREADS="$S2CROP_THREADS"
# Open MPI refuses to run as root unless told (containers, test clusters).
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

s2crop_step_pid=""
s2crop_requeued=0

# sbatch --signal=B:USR1@SECONDS sends USR1 to this shell that long before the time limit (or on preemption with
# GraceTime): put the job back in the queue; Slurm then stops the step and starts the script again later.
s2crop_on_usr1() {
  s2crop_requeued=1
  if [ "${SLURM_JOB_REQUEUE:-1}" = 0 ]; then
    s2crop_log "time limit near, but the job is not requeueable (--no-requeue): it will stop; resubmit to resume"
    return
  fi
  s2crop_log "time limit near: requeueing job ${SLURM_JOB_ID}; the next run resumes from the finished work"
  scontrol requeue "$SLURM_JOB_ID" || s2crop_log "scontrol requeue failed: resubmit the job to resume"
}
s2crop_on_term() {
  s2crop_log "terminated (scancel, requeue, preemption or time limit): finished work is kept; the same job resumes"
  [ -n "$s2crop_step_pid" ] && kill -TERM "$s2crop_step_pid" 2>/dev/null
  exit 143
}

# s2crop_run SUBCOMMAND [ARGS...]: the stage on every task of the allocation, through PMIx (Debian's Open MPI has
# no other Slurm PMI). Exits with the stage's status.
s2crop_run() {
  s2crop_log "s2crop $1 on ${SLURM_JOB_NUM_NODES:-1} node(s) (${SLURM_JOB_NODELIST:-localhost}), ${SLURM_NTASKS:-1} rank(s) x ${S2CROP_THREADS} thread(s)${SLURM_GPUS_ON_NODE:+, $SLURM_GPUS_ON_NODE GPU(s) per node}, restart ${SLURM_RESTART_COUNT:-0}"
  trap s2crop_on_usr1 USR1
  trap s2crop_on_term TERM INT
  local start rc=0
  start=$(date +%s)
  # srun exits 0 even when the step's tasks never started (Slurm 22.05): rank 0 of s2crop writes this file when the
  # stage succeeded, and only that counts. Task 0 runs on the batch script's node, so node-local /tmp is fine.
  export S2CROP_SUCCESS_FILE="${TMPDIR:-/tmp}/s2crop-stage-${SLURM_JOB_ID:-0}-$$.ok"
  rm -f "$S2CROP_SUCCESS_FILE"
  # shellcheck disable=SC2086
  srun --mpi=pmix --kill-on-bad-exit=1 ${S2CROP_SRUN:-} "$S2CROP" "$@" &
  s2crop_step_pid=$!
  # `wait` returns early when a trapped signal arrives: keep waiting for the step itself.
  while :; do
    rc=0
    wait "$s2crop_step_pid" || rc=$?
    kill -0 "$s2crop_step_pid" 2>/dev/null || break
  done
  if [ "$rc" = 0 ] && [ ! -e "$S2CROP_SUCCESS_FILE" ]; then
    s2crop_log "error: srun returned 0 but s2crop $1 never reported success: the step did not start (see srun's errors above; the node's slurmd log has the cause)"
    rc=1
  fi
  rm -f "$S2CROP_SUCCESS_FILE"
  if [ "$rc" = 0 ]; then
    s2crop_log "s2crop $1 finished in $(( $(date +%s) - start )) s"
  else
    s2crop_log "s2crop $1 failed with exit status $rc after $(( $(date +%s) - start )) s (the messages above name the input)"
  fi
  return "$rc"
}

# s2crop_stage SUBCOMMAND [ARGS...]: s2crop_run with configs/SUBCOMMAND.ini as defaults unless ARGS give --config.
s2crop_stage() {
  local cmd="$1"; shift
  local a
  for a in "$@"; do
    if [ "$a" = --config ] || [ "${a#--config=}" != "$a" ]; then s2crop_run "$cmd" "$@"; return; fi
  done
  if [ -f "$S2CROP_ROOT/configs/$cmd.ini" ]; then
    s2crop_run "$cmd" --config "$S2CROP_ROOT/configs/$cmd.ini" "$@"
  else
    s2crop_run "$cmd" "$@"
  fi
}
