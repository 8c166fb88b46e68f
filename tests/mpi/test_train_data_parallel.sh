#!/usr/bin/env bash
# Data-parallel training is the single-process algorithm: with dropout off, 2 ranks with per-rank batch B/2 follow
# the loss trajectory of 1 rank with batch B (relative difference < 1e-4 per step over 50 steps), the replicas hold
# identical parameters after every step (checked bitwise by the trainer), and a run killed after a checkpoint and
# restarted with the same command ends with exactly the model of an uninterrupted run (dropout on).
source "$(dirname "$0")/../lib.sh"
"$PY" "$TESTS_DIR/make_training_set.py" "$WORK/set.h5" --samples 3000 --classes 6 > /dev/null

common=(train --samples "$WORK/set.h5" --hidden 32 --layers 2 --dropout 0 --epochs 3 --lr 3e-3 --max-steps 50
        --val-fraction 0.2 --threads 1 --patience 0)
mpi 1 "${common[@]}" --batch-size 64 --output "$WORK/one.h5" --step-log "$WORK/one.tsv" > "$WORK/one.log" 2>&1 \
  || { cat "$WORK/one.log"; fail "1-rank training failed"; }
mpi 2 "${common[@]}" --batch-size 32 --output "$WORK/two.h5" --step-log "$WORK/two.tsv" --check-replicas \
  > "$WORK/two.log" 2>&1 || { cat "$WORK/two.log"; fail "2-rank training failed"; }
grep -q "global batch 64" "$WORK/two.log" || fail "2 ranks x 32 should make a global batch of 64"
"$PY" - "$WORK/one.tsv" "$WORK/two.tsv" <<'PY' || fail "loss trajectories differ"
import sys
import numpy as np
a = np.genfromtxt(sys.argv[1], names=True, delimiter="\t")
b = np.genfromtxt(sys.argv[2], names=True, delimiter="\t")
assert len(a) == 50 and len(b) == 50, (len(a), len(b))
rel = np.abs(a["loss"] - b["loss"]) / np.abs(a["loss"])
print(f"ok: 50 steps, loss {a['loss'][0]:.4f} -> {a['loss'][-1]:.4f}; max relative difference 1 vs 2 ranks {rel.max():.2e}")
assert a["loss"][-1] < 0.7 * a["loss"][0], "the loss did not go down: nothing was learned"
assert rel.max() < 1e-4, rel.max()
assert (b["replicas_identical"] == 1).all(), "replicas diverged"
print("ok: parameters identical on both ranks after each of the 50 steps")
PY

# Resume: the same command, killed once a checkpoint exists, restarted, gives the uninterrupted run's model.
resume_cmd=(train --samples "$WORK/set.h5" --hidden 32 --epochs 6 --batch-size 32 --dropout 0.3 --threads 1
            --patience 0 --val-fraction 0.2)
expect_training_resumes train "${resume_cmd[@]}"

# A damaged checkpoint: clear error, nothing overwritten.
cp "$WORK/killed/model.h5" "$WORK/before.h5"
mkdir -p "$WORK/bad/model.h5.ckpt"
head -c 3000 "$WORK/killed/model.h5.ckpt/checkpoint.pt" > "$WORK/bad/model.h5.ckpt/checkpoint.pt" 2>/dev/null \
  || dd if=/dev/urandom of="$WORK/bad/model.h5.ckpt/checkpoint.pt" bs=1k count=3 2>/dev/null
expect_failure damaged_checkpoint "damaged checkpoint" -- mpi 2 "${resume_cmd[@]}" --output "$WORK/bad/model.h5" --resume
[ ! -e "$WORK/bad/model.h5" ] || fail "a model was written despite the damaged checkpoint"
expect_failure existing_model "exists from a different training run; pass --overwrite" -- \
  mpi 2 "${resume_cmd[@]}" --seed 7 --output "$WORK/killed/model.h5"
cmp -s "$WORK/before.h5" "$WORK/killed/model.h5" || fail "the existing model was modified"
# The same training again (a resubmitted job chain): nothing to do, the model stays as it is.
mpi 2 "${resume_cmd[@]}" --output "$WORK/killed/model.h5" > "$WORK/rerun.log" 2>&1 || { cat "$WORK/rerun.log"; fail "rerun of a finished training failed"; }
grep -q "already trained with these data and settings: nothing to do" "$WORK/rerun.log" || { cat "$WORK/rerun.log"; fail "rerun did not say it had nothing to do"; }
cmp -s "$WORK/before.h5" "$WORK/killed/model.h5" || fail "the rerun of a finished training modified the model"
