#!/usr/bin/env bash
# `s2crop ndvi train` runs on the one data-parallel trainer, so it keeps its guarantees for the NDVI model: with
# dropout off, 2 ranks with per-rank batch B/2 follow the loss trajectory of 1 rank with batch B (relative
# difference < 1e-4 per step over 50 steps) for both tasks (gap-fill draws its hidden months per step and sample,
# identically on every rank), the replicas stay bitwise identical, and a run killed after a checkpoint and started
# again ends with exactly the model of an uninterrupted run (dropout on).
source "$(dirname "$0")/../lib.sh"
"$PY" "$TESTS_DIR/make_training_set.py" "$WORK/set.h5" --samples 3000 --classes 6 > /dev/null
# Mark a seeded ~20 % of the months as not observed: the loss must skip them on every rank alike.
"$PY" - "$WORK/set.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "a") as f:
    n = f["x"].shape[0]
    f["clear"] = (np.random.default_rng(3).random((n, 12)) > 0.2).astype(np.uint8)
PY

for task in gapfill forecast; do
  common=(ndvi train --task "$task" --horizon 2 --t-min 2 --t-max 10 --samples "$WORK/set.h5" --hidden 24 --layers 2
          --dropout 0 --epochs 3 --lr 3e-3 --max-steps 50 --val-fraction 0.2 --threads 1 --patience 0)
  mpi 1 "${common[@]}" --batch-size 64 --output "$WORK/$task-one.h5" --step-log "$WORK/$task-one.tsv" \
    > "$WORK/$task-one.log" 2>&1 || { cat "$WORK/$task-one.log"; fail "$task: 1-rank training failed"; }
  mpi 2 "${common[@]}" --batch-size 32 --output "$WORK/$task-two.h5" --step-log "$WORK/$task-two.tsv" --check-replicas \
    > "$WORK/$task-two.log" 2>&1 || { cat "$WORK/$task-two.log"; fail "$task: 2-rank training failed"; }
  grep -q "global batch 64" "$WORK/$task-two.log" || fail "2 ranks x 32 should make a global batch of 64"
  "$PY" - "$WORK/$task-one.tsv" "$WORK/$task-two.tsv" "$task" <<'PY' || fail "$task: loss trajectories differ"
import sys
import numpy as np
a = np.genfromtxt(sys.argv[1], names=True, delimiter="\t")
b = np.genfromtxt(sys.argv[2], names=True, delimiter="\t")
assert len(a) == 50 and len(b) == 50, (len(a), len(b))
rel = np.abs(a["loss"] - b["loss"]) / np.abs(a["loss"])
print(f"ok: {sys.argv[3]}: 50 steps, loss {a['loss'][0]:.4f} -> {a['loss'][-1]:.4f}; max relative difference 1 vs 2 ranks {rel.max():.2e}")
assert a["loss"][-5:].mean() < 0.5 * a["loss"][:5].mean(), "the loss did not go down: nothing was learned"
assert rel.max() < 1e-4, rel.max()
assert (b["replicas_identical"] == 1).all(), "replicas diverged"
print(f"ok: {sys.argv[3]}: parameters identical on both ranks after each of the 50 steps")
PY
done

# Resume: the same command, killed once a checkpoint exists, restarted, gives the uninterrupted run's model.
resume_cmd=(ndvi train --task gapfill --samples "$WORK/set.h5" --hidden 24 --epochs 6 --batch-size 32 --dropout 0.3
            --threads 1 --patience 0 --val-fraction 0.2)
expect_training_resumes gapfill "${resume_cmd[@]}"
# The same training again: nothing to do; other masking on the same output: refused, model untouched.
cp "$WORK/killed/model.h5" "$WORK/before.h5"
mpi 2 "${resume_cmd[@]}" --output "$WORK/killed/model.h5" > "$WORK/rerun.log" 2>&1 || { cat "$WORK/rerun.log"; fail "rerun failed"; }
grep -q "already trained with these data and settings: nothing to do" "$WORK/rerun.log" || { cat "$WORK/rerun.log"; fail "rerun did not say it had nothing to do"; }
expect_failure other_settings "exists from a different training run; pass --overwrite" -- \
  mpi 2 "${resume_cmd[@]}" --mask-fraction 0.4 --output "$WORK/killed/model.h5"
cmp -s "$WORK/before.h5" "$WORK/killed/model.h5" || fail "the existing model was modified"
# The model file describes itself.
"$PY" - "$WORK/killed/model.h5" "$WORK/forecast-one.h5" <<'PY' || fail "model attributes"
import sys, h5py
g, f = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
assert g.attrs["kind"] == "ndvi_lstm" and g.attrs["task"] == "gapfill", dict(g.attrs)
assert f.attrs["task"] == "forecast" and f.attrs["horizon"] == 2 and f.attrs["t_min"] == 2 and f.attrs["t_max"] == 10
print("ok: model files carry kind, task, horizon and t range")
PY
