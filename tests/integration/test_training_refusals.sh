#!/usr/bin/env bash
# No silent wrong output from the training commands (issue 13, cases 7, 11 and 12):
# - an option out of range (NaN, inf, lr <= 0, negative weight decay/patience/threads, --threads above the node's
#   cores, a validation fraction outside [0, 1), a negative seed) is refused with its name before anything is read
#   or written, by train, ndvi train, segment train and pretrain alike;
# - a training without a validation set says so and that the best epoch (and early stopping) follow the training
#   loss, instead of printing "val OA 0.0000";
# - a loss that turns NaN stops every rank (2 ranks, NaN on rank 1 only) within seconds naming the epoch and step:
#   no model file, and the checkpoint of the last good epoch left as it was (the same command resumes from it);
# - a full disk (here: the file size limit, ulimit -f) while writing the checkpoint or the model file is an error
#   naming the file ("disk full?"), without temporaries or a model left behind;
# - an output or checkpoint folder that cannot be written is found before the training, not after it.
source "$(dirname "$0")/../lib.sh"
"$PY" "$TESTS_DIR/make_training_set.py" "$WORK/set.h5" --samples 600 --classes 4 > /dev/null
# A tiny patch set (16 patches of 8 x 8 pixels, 4 bands) for segment train and pretrain.
"$PY" - "$WORK/patches.h5" <<'PY'
import sys
import h5py
import numpy as np
rng = np.random.default_rng(3)
n, S, B = 16, 8, 4
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["format"] = "s2crop patch set"
    f.attrs["format_version"] = np.int64(1)
    f.attrs["bands"] = ["B02", "B04", "B08", "B11"]
    f.attrs["months"] = [f"2021-{m:02d}" for m in range(1, 13)]
    f.attrs["season_start_month"] = np.int64(1)
    f.attrs["tiles"] = ["33UVP"]
    f.attrs["patch_size"] = np.int64(S)
    f.attrs["label_layers"] = ["crop_type", "field_boundary", "cropland"]
    f.attrs["class_names"] = ["Maize", "Winter wheat", "Grassland"]
    crop = rng.integers(0, 3, (n, S, S)).astype(np.uint8)
    f["x"] = (rng.integers(300, 4000, (n, 12, B, S, S)) + 500 * crop[:, None, None]).astype(np.int16)
    f["labels"] = np.stack([crop, np.zeros_like(crop), np.ones_like(crop)], axis=1)
    f["clear"] = np.ones((n, 12, S, S), np.uint8)
    f["tile"] = np.zeros(n, np.uint16)
    f["row"] = (np.arange(n) * S).astype(np.int32)
    f["col"] = np.zeros(n, np.int32)
PY
train=(train --samples "$WORK/set.h5" --hidden 8 --layers 1 --batch-size 32 --ensemble 1)  # runs that train add --threads 1
segment=(segment train --patches "$WORK/patches.h5" --depth 1 --width 4 --batch-size 4 --threads 1)
pretrain=(pretrain --patches "$WORK/patches.h5" --depth 1 --width 4 --batch-size 4 --threads 1 --projection 8)

# ---- case 7 and 12: every numeric option out of range, refused before anything is read or written
refused() {  # NAME PATTERN COMMAND...: fails naming PATTERN, with no training, model or checkpoint folder
  local name="$1" pattern="$2"; shift 2
  expect_failure "$name" "$pattern" -- mpi 1 "$@" --output "$WORK/refused/$name.h5"
  ! grep -q "^.*epoch 1/" "$WORK/$name.log" || fail "$name: trained before refusing"
  [ ! -e "$WORK/refused/$name.h5" ] && [ ! -e "$WORK/refused/$name.h5.ckpt" ] || fail "$name: left $(ls -A "$WORK/refused") behind"
}
all_passed() {  # waits for the background checks; fails if any failed (its message is above)
  local pid ok=1
  for pid in $(jobs -p); do wait "$pid" || ok=0; done
  [ "$ok" = 1 ] || fail "a refusal was not as expected"
  [ ! -e "$WORK/refused" ] || fail "the refusals left $(ls -A "$WORK/refused") behind"
}
# Independent and quick (most of their time is the start of MPI and LibTorch): three at a time.
refused lr_nan "--lr nan: must be a finite number" "${train[@]}" --lr nan &
refused lr_inf "--lr inf: must be a finite number" "${train[@]}" --lr inf &
refused lr_negative "--lr -1: must be a finite number" "${train[@]}" --lr -1 &
all_passed
refused focal_gamma_nan "--focal-gamma nan" "${train[@]}" --loss focal --focal-gamma nan &
refused threads_1000 "--threads 1000: more threads per rank than the" "${train[@]}" --threads 1000 &
refused threads_negative "--threads -1: must be at least 0" "${train[@]}" --threads -1 &
all_passed
train+=(--threads 1)
refused val_fraction_negative "--val-fraction -0.5" "${train[@]}" --val-fraction -0.5 &
refused weight_decay_negative "--weight-decay -1" "${train[@]}" --weight-decay -1 &
refused patience_negative "--patience -1" "${train[@]}" --patience -1 &
all_passed
refused seed_negative "--seed -1: must be a whole number" "${train[@]}" --seed -1 &
refused ndvi_lr_nan "--lr nan" ndvi train --samples "$WORK/set.h5" --assume-clear --lr nan &
refused segment_lr_negative "--lr -1" "${segment[@]}" --lr -1 &
refused pretrain_drop_months_nan "--drop-months nan" "${pretrain[@]}" --drop-months nan &
all_passed
# (the other options and ranges: tests/unit/test_train_settings.cpp)

# ---- case 12: no validation set: said so, and what picks the model and stops early
mpi 1 "${train[@]}" --val-fraction 0 --epochs 2 --patience 1 --output "$WORK/noval/model.h5" > "$WORK/noval.log" 2>&1 \
  || { cat "$WORK/noval.log"; fail "training without a validation set failed"; }
grep -q "val OA" "$WORK/noval.log" && { cat "$WORK/noval.log"; fail "no validation set, yet a validation accuracy"; }
grep -q "no validation set (--val-fraction 0): the model kept is the epoch with the lowest training loss, and early stopping (--patience 1) counts epochs without a lower training loss" \
  "$WORK/noval.log" || { cat "$WORK/noval.log"; fail "the log does not say that there is no validation set"; }
[ "$(grep -c "epoch [12]/2 .*(no validation set)" "$WORK/noval.log")" = 2 ] \
  || { cat "$WORK/noval.log"; fail "the epoch lines do not say that there is no validation set"; }
pass "no validation set: said so; the best epoch and early stopping follow the training loss"

# ---- case 7: a NaN loss on one of 2 ranks in epoch 2 stops both, nothing written, the epoch-1 checkpoint kept
diverge=("${train[@]}" --epochs 3 --patience 0 --output "$WORK/nan/model.h5")  # 9 steps per epoch on 2 ranks
start=$(date +%s)
S2CROP_TEST_NAN_LOSS=12:1 expect_failure nan_loss "training diverged in epoch 2/3, step 12: the loss is nan" -- \
  mpi 2 "${diverge[@]}"
[ $(($(date +%s) - start)) -le 30 ] || fail "nan_loss: the ranks took more than 30 s to stop"
[ "$(ls "$WORK/nan")" = model.h5.ckpt ] || fail "nan_loss: left $(ls "$WORK/nan") behind (expected the checkpoint folder only)"
[ "$(ls "$WORK/nan/model.h5.ckpt")" = "$(printf 'checkpoint.pt\ncheckpoint.txt')" ] \
  || fail "nan_loss: checkpoint folder holds $(ls "$WORK/nan/model.h5.ckpt")"
grep -qx "epoch 1" "$WORK/nan/model.h5.ckpt/checkpoint.txt" || fail "nan_loss: the epoch-1 checkpoint was replaced"
mpi 2 "${diverge[@]}" > "$WORK/nan-resume.log" 2>&1 || { cat "$WORK/nan-resume.log"; fail "nan_loss: the resume failed"; }
grep -q "resumed from .* after epoch 1$" "$WORK/nan-resume.log" \
  || { cat "$WORK/nan-resume.log"; fail "nan_loss: the same command did not resume from the epoch-1 checkpoint"; }
"$PY" - "$WORK/nan/model.h5" <<'PY' || fail "nan_loss: the resumed model is not finite"
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1], "r") as f:
    params = [f["parameters"][k][...] for k in f["parameters"]]
assert params and all(np.isfinite(p).all() for p in params)
PY
pass "nan_loss: the resumed run from the kept checkpoint ends with a finite model"
# The same loop for the other trainers: a NaN loss in the first step, no model, no checkpoint.
S2CROP_TEST_NAN_LOSS=1 expect_failure ndvi_nan_loss "training diverged in epoch 1/2, step 1: the loss is nan" -- \
  mpi 1 ndvi train --samples "$WORK/set.h5" --assume-clear --hidden 8 --layers 1 --threads 1 --epochs 2 \
  --output "$WORK/nan-ndvi/model.h5"
S2CROP_TEST_NAN_LOSS=2 expect_failure segment_nan_loss "training diverged in epoch 1/2, step 2: the loss is nan" -- \
  mpi 1 "${segment[@]}" --epochs 2 --output "$WORK/nan-segment/model.h5"
S2CROP_TEST_NAN_LOSS=1 expect_failure pretrain_nan_loss "training diverged in epoch 1/2, step 1: the loss is nan" -- \
  mpi 1 "${pretrain[@]}" --epochs 2 --output "$WORK/nan-pretrain/encoder.h5"
for d in nan-ndvi nan-segment nan-pretrain; do
  [ -z "$(ls -A "$WORK/$d/"*.ckpt 2>/dev/null)" ] && [ "$(ls "$WORK/$d" 2>/dev/null | grep -cv '\.ckpt$')" = 0 ] \
    || fail "$d: left $(ls -R "$WORK/$d") behind"
done
pass "ndvi train, segment train, pretrain: a NaN loss stops the run, nothing written"

# ---- case 11: a full disk while writing the checkpoint, then the model file. ulimit -f (KiB) makes writes past
# that size fail with EFBIG, as a full disk fails them with ENOSPC. The limit is set for s2crop alone (mpirun and
# PMIx need larger shared-memory files); its output reaches the log through mpirun, outside the limit.
limited() {  # NAME KIB COMMAND...: runs COMMAND on 1 rank under the file size limit, log in $WORK/NAME.log
  local name="$1" kib="$2" rc=0; shift 2
  timeout 60 "$MPIEXEC" -np 1 --oversubscribe bash -c 'ulimit -f "$0" && exec "$@"' "$kib" "$S2CROP" "$@" \
    > "$WORK/$name.log" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || { cat "$WORK/$name.log"; fail "$name: expected a failure, got exit $rc"; }
}
full=(train --samples "$WORK/set.h5" --ensemble 1 --hidden 64 --layers 2 --batch-size 32 --threads 1 --epochs 1
      --output "$WORK/full/model.h5")  # checkpoint ~0.9 MB, model ~0.2 MB
limited full_checkpoint 128 "${full[@]}"
grep -q "full/model.h5.ckpt/checkpoint.pt: cannot write the checkpoint: disk full? (File too large)" \
  "$WORK/full_checkpoint.log" || { cat "$WORK/full_checkpoint.log"; fail "full_checkpoint: no clear error"; }
[ -z "$(ls -A "$WORK/full/model.h5.ckpt")" ] && [ ! -e "$WORK/full/model.h5" ] \
  || fail "full_checkpoint: left $(ls -R "$WORK/full") behind"
pass "full_checkpoint: 'disk full?' naming the checkpoint, no temporary left"
mpi 1 "${full[@]}" > "$WORK/full-train.log" 2>&1 || { cat "$WORK/full-train.log"; fail "training without a limit failed"; }
rm "$WORK/full/model.h5"
limited full_model 128 "${full[@]}"
grep -q "full/model.h5: cannot write the model file: disk full? (File too large)" "$WORK/full_model.log" \
  || { cat "$WORK/full_model.log"; fail "full_model: no clear error"; }
[ "$(ls "$WORK/full")" = model.h5.ckpt ] || fail "full_model: left $(ls "$WORK/full") behind"
pass "full_model: 'disk full?' naming the model file, no partial file left"

# ---- an unwritable folder for the model or the checkpoints: found before the training
touch "$WORK/afile"
expect_failure model_folder "afile: cannot create the folder for the model file (--output" -- \
  mpi 2 "${train[@]}" --output "$WORK/afile/model.h5" --checkpoint-dir "$WORK/ck"
expect_failure checkpoint_folder "afile/ck: cannot create the folder for checkpoints (--checkpoint-dir)" -- \
  mpi 2 "${train[@]}" --output "$WORK/out/model.h5" --checkpoint-dir "$WORK/afile/ck"
for name in model_folder checkpoint_folder; do
  ! grep -q "epoch 1/" "$WORK/$name.log" || fail "$name: trained before finding the folder unwritable"
done
[ ! -e "$WORK/ck" ] && [ ! -e "$WORK/out" ] || fail "unwritable folders: left $(ls "$WORK") behind"
pass "unwritable output folders found before the training"
