#!/usr/bin/env bash
# GPU smoke test of the NCCL gradient path: 2 ranks train with --backend nccl (one GPU each) and must produce the
# same loss trajectory as the MPI backend. Skips without an NCCL build or without 2 GPUs.
source "$(dirname "$0")/../lib.sh"
gpus=$(nvidia-smi -L 2>/dev/null | wc -l || true)
[ "${gpus:-0}" -ge 1 ] || skip "no GPU on this machine (nvidia-smi lists none)"
ranks=$(( gpus >= 2 ? 2 : 1 ))
"$PY" "$TESTS_DIR/make_training_set.py" "$WORK/set.h5" --samples 1000 > /dev/null
args=(train --samples "$WORK/set.h5" --ensemble 1 --hidden 32 --dropout 0 --epochs 1 --max-steps 20 --batch-size 32 --threads 1)
if ! mpi $ranks "${args[@]}" --backend nccl --output "$WORK/nccl.h5" --step-log "$WORK/nccl.tsv" > "$WORK/nccl.log" 2>&1; then
  grep -q "built without NCCL" "$WORK/nccl.log" && skip "this build has no NCCL (configure with -DS2CROP_WITH_NCCL=ON)"
  cat "$WORK/nccl.log"; fail "NCCL training failed"
fi
grep -q "NCCL all-reduce" "$WORK/nccl.log" || fail "NCCL was not used"
mpi $ranks "${args[@]}" --backend mpi --output "$WORK/mpi.h5" --step-log "$WORK/mpi.tsv" > "$WORK/mpi.log" 2>&1 \
  || { cat "$WORK/mpi.log"; fail "MPI training failed"; }
"$PY" - "$WORK/nccl.tsv" "$WORK/mpi.tsv" <<'PY' || fail "NCCL and MPI trajectories differ"
import sys, numpy as np
a = np.genfromtxt(sys.argv[1], names=True, delimiter="\t"); b = np.genfromtxt(sys.argv[2], names=True, delimiter="\t")
rel = np.abs(a["loss"] - b["loss"]) / np.abs(b["loss"])
print(f"ok: {len(a)} steps on NCCL, max relative loss difference to MPI {rel.max():.2e}")
assert rel.max() < 1e-4
PY
