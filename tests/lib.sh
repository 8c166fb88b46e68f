# Shared helpers for the shell-driven integration and MPI tests. Sourced by tests/*/test_*.sh.
# ctest sets S2CROP (binary), S2CROP_SOURCE_DIR, MPIEXEC and the Open MPI root/oversubscribe variables.
set -euo pipefail

: "${S2CROP:?run through ctest (S2CROP unset)}"
: "${S2CROP_SOURCE_DIR:?}"
MPIEXEC="${MPIEXEC:-mpirun}"
PY=/usr/bin/python3   # Debian's python with numpy/h5py/gdal (the python3 on PATH may be another one)
TESTS_DIR="$S2CROP_SOURCE_DIR/tests"
SHARED_DATA="$S2CROP_SOURCE_DIR/../shared/data"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/s2crop-test.XXXXXX")"
cleanup() { [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
skip() { echo "SKIP: $*"; exit 77; }

# mpi N args...: run s2crop on N ranks
mpi() {
  local n="$1"; shift
  "$MPIEXEC" -np "$n" --oversubscribe "$S2CROP" "$@"
}

# A small synthetic region shared by the tests of one script: 2 tiles in two UTM zones, a full season.
# synth_region DIR [synth options, replacing the defaults of the same name]
synth_region() {
  local dir="$1"; shift
  local -A opt=([tiles]=32TQT,33UVP [size]=96 [days]=365 [seed]=7)
  local extra=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --tiles|--size|--days|--seed) opt[${1#--}]="$2"; shift 2 ;;
      *) extra+=("$1"); shift ;;
    esac
  done
  mpi 2 synth --out "$dir" --tiles "${opt[tiles]}" --size "${opt[size]}" --days "${opt[days]}" --seed "${opt[seed]}" \
    "${extra[@]}" > "$WORK/synth.log" 2>&1 \
    || { cat "$WORK/synth.log"; fail "synth failed"; }
}

# composite_region [composite options]: the monthly composites of the synth_region in $WORK/region -> $WORK/comp.h5
composite_region() {
  mpi 2 composite --input "$WORK/region/stac" --output "$WORK/comp.h5" "$@" > "$WORK/comp.log" 2>&1 \
    || { cat "$WORK/comp.log"; fail "composite failed"; }
}

# expect_failure NAME PATTERN -- command...: the command must exit non-zero within 60 s, print PATTERN
expect_failure() {
  local name="$1" pattern="$2"; shift 3
  local log="$WORK/$name.log" start end rc=0
  if [ "$1" = mpi ]; then  # timeout cannot run shell functions
    local n="$2"; shift 2
    set -- "$MPIEXEC" -np "$n" --oversubscribe "$S2CROP" "$@"
  fi
  start=$(date +%s)
  timeout 60 "$@" > "$log" 2>&1 || rc=$?
  end=$(date +%s)
  [ "$rc" -ne 0 ] || { cat "$log"; fail "$name: expected a failure, got exit 0"; }
  [ "$rc" -ne 124 ] || { cat "$log"; fail "$name: hung (killed after 60 s)"; }
  grep -qF -- "$pattern" "$log" || { cat "$log"; fail "$name: error output does not mention '$pattern'"; }
  pass "$name: exit $rc after $((end - start)) s, message names '$pattern'"
}

# kill_tree PID: SIGKILL a process and every process under it (mpirun and its ranks), leaves first.
kill_tree() {
  local child
  for child in $(pgrep -P "$1"); do kill_tree "$child"; done
  kill -9 "$1" 2>/dev/null || true
}

# interrupt_blocks DIR OUTPUT TOTAL RUN ARGS...: starts `RUN DIR ARGS...` (a function of the test running a resumable
# block stage into OUTPUT, relative to DIR) in the background, SIGKILLs it with all its processes as soon as a part
# file exists, and fails unless it stopped with blocks still to do. Sets PARTS_DONE to the part files left behind.
# (Waiting for half of the TOTAL lost the race on an idle machine: small blocks finish faster than one poll.)
interrupt_blocks() {
  local dir="$1" output="$2" total="$3"; shift 3
  mkdir -p "$dir"
  "$@" > "$dir/first.log" 2>&1 &
  local pid=$! i
  for i in $(seq 1 6000); do
    compgen -G "$dir/$output.parts/*/*.part" > /dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  kill_tree "$pid"
  wait "$pid" 2>/dev/null || true
  [ ! -e "$dir/$output" ] || fail "the run finished before the kill; the test did not interrupt it"
  PARTS_DONE=$(ls "$dir/$output".parts/*/*.part 2>/dev/null | wc -l)
  [ "$PARTS_DONE" -lt "$total" ] || fail "every block was done before the kill"
}

# h5_same A B: every dataset and attribute identical, except the creation time
h5_same() { "$PY" "$TESTS_DIR/h5_compare.py" "$1" "$2"; }

# expect_training_resumes LABEL ARGS...: the training `s2crop ARGS --output MODEL` on 2 ranks, run once uninterrupted
# ($WORK/ref) and once SIGKILLed as soon as the epoch-2 checkpoint exists then restarted with the same command
# ($WORK/killed): the restart must say it resumed after epoch 2 and end with the uninterrupted run's parameters.
expect_training_resumes() {
  local label="$1"; shift
  mpi 2 "$@" --output "$WORK/ref/model.h5" > "$WORK/ref.log" 2>&1 || { cat "$WORK/ref.log"; fail "reference run failed"; }
  mkdir -p "$WORK/killed"
  mpi 2 "$@" --output "$WORK/killed/model.h5" > "$WORK/killed1.log" 2>&1 &
  local pid=$! i at
  # Epochs of the small test models take a few milliseconds: the run may write another checkpoint between the poll
  # and the kill (checkpoint.pt is renamed into place before checkpoint.txt), so the restart must resume from
  # whichever epoch, 2 or later, the last complete checkpoint holds.
  for i in $(seq 1 1500); do
    grep -qsE "^epoch ([2-9]|[1-9][0-9]+)$" "$WORK/killed/model.h5.ckpt/checkpoint.txt" && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
  done
  pkill -9 -f -- "--output $WORK/killed/model.h5" || true
  wait $pid 2>/dev/null || true
  [ ! -e "$WORK/killed/model.h5" ] || fail "the run finished before the kill: the test did not interrupt it"
  at=$(sed -n 's/^epoch \([0-9]*\)$/\1/p' "$WORK/killed/model.h5.ckpt/checkpoint.txt" 2>/dev/null)
  [ -n "$at" ] && [ "$at" -ge 2 ] || fail "no checkpoint after epoch 2"
  mpi 2 "$@" --output "$WORK/killed/model.h5" > "$WORK/killed2.log" 2>&1 \
    || { cat "$WORK/killed2.log"; fail "restart failed"; }
  at=$(sed -n 's/.*resumed from .* after epoch \([0-9]*\)$/\1/p' "$WORK/killed2.log")
  [ -n "$at" ] && [ "$at" -ge 2 ] || { cat "$WORK/killed2.log"; fail "did not resume from the checkpoint"; }
  h5diff "$WORK/ref/model.h5" "$WORK/killed/model.h5" /parameters /parameters > "$WORK/diff.txt" \
    || { head "$WORK/diff.txt"; fail "resumed model differs from the uninterrupted one"; }
  pass "$label: killed after epoch $at and restarted: parameters identical to the uninterrupted run"
}
