#!/usr/bin/env bash
# `s2crop segment train` runs the U-Net on the one data-parallel trainer, so it keeps its guarantees: with dropout
# off, 2 ranks with per-rank batch B/2 follow the loss trajectory of 1 rank with batch B (relative difference < 1e-4
# per step over 50 steps; augmentation is drawn per patch and step, identically on every rank), for the multiclass
# and the multilabel head (--reproducible: batched convolutions and float sums round differently for 8 patches on one
# rank and 4 + 4 on two, and Adam amplifies that through the ReLUs to ~5e-4 over 50 steps; with per-patch gradients
# summed in double the split no longer matters); the replicas stay bitwise identical; a run killed after a checkpoint and started again
# ends with exactly the model of an uninterrupted run (dropout on). A frozen encoder from --init stays unchanged.
# pretrain (SimSiam) learns without collapsing, resumes exactly, and its encoder is what segment train --init uses.
source "$(dirname "$0")/../lib.sh"
synth_region "$WORK/region" --tiles 32TQT,33UVP --size 96
composite_region
mpi 2 extract --composites "$WORK/comp.h5" --labels "$WORK/region/parcels.gpkg" --patches 16 --min-labelled 0.2 \
  --output "$WORK/patches.h5" > "$WORK/extract.log" 2>&1 || { cat "$WORK/extract.log"; fail "extract --patches failed"; }

for head in multiclass multilabel; do
  common=(segment train --patches "$WORK/patches.h5" --head "$head" --depth 2 --width 8 --dropout 0 --epochs 30 --reproducible
          --lr 3e-3 --max-steps 50 --val-fraction 0.2 --threads 1 --patience 0)
  [ "$head" = multilabel ] && common+=(--targets crop_type,field_boundary,cropland --loss focal)
  mpi 1 "${common[@]}" --batch-size 8 --output "$WORK/$head-one.h5" --step-log "$WORK/$head-one.tsv" \
    > "$WORK/$head-one.log" 2>&1 || { cat "$WORK/$head-one.log"; fail "$head: 1-rank training failed"; }
  mpi 2 "${common[@]}" --batch-size 4 --output "$WORK/$head-two.h5" --step-log "$WORK/$head-two.tsv" --check-replicas \
    > "$WORK/$head-two.log" 2>&1 || { cat "$WORK/$head-two.log"; fail "$head: 2-rank training failed"; }
  grep -q "global batch 8" "$WORK/$head-two.log" || fail "2 ranks x 4 should make a global batch of 8"
  "$PY" - "$WORK/$head-one.tsv" "$WORK/$head-two.tsv" "$head" <<'PY' || fail "$head: loss trajectories differ"
import sys
import numpy as np
a = np.genfromtxt(sys.argv[1], names=True, delimiter="\t")
b = np.genfromtxt(sys.argv[2], names=True, delimiter="\t")
assert len(a) == 50 and len(b) == 50, (len(a), len(b))
rel = np.abs(a["loss"] - b["loss"]) / np.abs(a["loss"])
print(f"ok: {sys.argv[3]}: 50 steps, loss {a['loss'][:5].mean():.4f} -> {a['loss'][-5:].mean():.4f}; "
      f"max relative difference 1 vs 2 ranks {rel.max():.2e}")
assert a["loss"][-5:].mean() < 0.9 * a["loss"][:5].mean(), "the loss did not go down: nothing was learned"
assert rel.max() < 1e-4, rel.max()
assert (b["replicas_identical"] == 1).all(), "replicas diverged"
print(f"ok: {sys.argv[3]}: parameters identical on both ranks after each of the 50 steps")
PY
done

# Resume: the same command, killed once a checkpoint exists, restarted, gives the uninterrupted run's model.
resume_cmd=(segment train --patches "$WORK/patches.h5" --depth 2 --width 8 --dropout 0.2 --epochs 6 --batch-size 4
            --threads 1 --patience 0 --val-fraction 0.2)
expect_training_resumes segment "${resume_cmd[@]}"
cp "$WORK/killed/model.h5" "$WORK/before.h5"
mpi 2 "${resume_cmd[@]}" --output "$WORK/killed/model.h5" > "$WORK/rerun.log" 2>&1 || { cat "$WORK/rerun.log"; fail "rerun failed"; }
grep -q "already trained with these data and settings: nothing to do" "$WORK/rerun.log" || { cat "$WORK/rerun.log"; fail "rerun did not say it had nothing to do"; }
cmp -s "$WORK/before.h5" "$WORK/killed/model.h5" || fail "the finished model was modified by a rerun"

# A frozen encoder taken from another model of the same architecture: unchanged after training; the decoder moves.
mpi 2 segment train --patches "$WORK/patches.h5" --depth 2 --width 8 --epochs 2 --batch-size 4 --threads 1 \
  --init "$WORK/ref/model.h5" --freeze-encoder --output "$WORK/frozen.h5" > "$WORK/frozen.log" 2>&1 \
  || { cat "$WORK/frozen.log"; fail "training with a frozen encoder failed"; }
"$PY" - "$WORK/ref/model.h5" "$WORK/frozen.h5" <<'PY' || fail "frozen encoder"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1])["parameters"], h5py.File(sys.argv[2])["parameters"]
enc = [k for k in a if k.startswith("encoder")]
dec = [k for k in a if not k.startswith("encoder")]
assert enc and dec
assert all(np.array_equal(a[k][()], b[k][()]) for k in enc), "a frozen encoder parameter changed"
assert any(not np.array_equal(a[k][()], b[k][()]) for k in dec), "the decoder did not train"
print(f"ok: {len(enc)} encoder tensors unchanged, decoder trained")
PY

# Bad input: clear errors, nothing written.
expect_failure batch_norm "--norm batch" -- mpi 2 segment train --patches "$WORK/patches.h5" --norm batch --output "$WORK/x.h5"
expect_failure init_not_model "not an s2crop model file" -- mpi 2 segment train --patches "$WORK/patches.h5" \
  --init "$WORK/comp.h5" --output "$WORK/x.h5"
expect_failure not_patches "not an s2crop patch set" -- mpi 2 segment train --patches "$WORK/comp.h5" --output "$WORK/x.h5"
[ ! -e "$WORK/x.h5" ] || fail "a model was written for bad input"
pass "bad input: batch norm, an --init that is no model, a file that is not a patch set: clear errors"

# Self-supervised pre-training on the same trainer: the views come to agree without collapsing and the dropped
# months are reconstructed (the dense objective, the default: pixel VICReg + masked-month reconstruction; and global
# SimSiam), a killed run resumes to the uninterrupted encoder, and segment train starts from (and can freeze, or
# fine-tune at a lower rate) the encoder and decoder it wrote.
mpi 2 extract --composites "$WORK/comp.h5" --labels "$WORK/region/parcels.gpkg" --patches 16 --patch-stride 8 \
  --min-labelled 0 --output "$WORK/unlabelled.h5" > "$WORK/extract-all.log" 2>&1 || { cat "$WORK/extract-all.log"; fail "extract of every patch failed"; }
pre_cmd=(pretrain --patches "$WORK/unlabelled.h5" --depth 2 --width 8 --projection 32 --epochs 8 --batch-size 8
         --lr 3e-3 --threads 1 --val-fraction 0.2)
mkdir -p "$WORK/pre"
mpi 2 "${pre_cmd[@]}" --output "$WORK/pre/encoder.h5" > "$WORK/pre.log" 2>&1 || { cat "$WORK/pre.log"; fail "pretrain failed"; }
"$PY" - "$WORK/pre.log" "$WORK/pre/encoder.h5" <<'PY' || { cat "$WORK/pre.log"; fail "pre-training did not learn or collapsed"; }
import re, sys, h5py
pattern = r"val dense loss (-?[0-9.]+) \(VICReg (-?[0-9.]+).*?reconstruction ([0-9.]+).*projection spread ([0-9.]+)"
epochs = [tuple(map(float, e)) for e in re.findall(pattern, open(sys.argv[1]).read())]
assert len(epochs) == 8, epochs
first, last = epochs[0], epochs[-1]
print(f"ok: dense pre-training: validation loss {first[0]:.3f} -> {min(e[0] for e in epochs):.3f} (VICReg {first[1]:.3f} -> "
      f"{last[1]:.3f}, masked-month reconstruction {first[2]:.3f} -> {last[2]:.3f}), projection spread {last[3]:.3f}")
assert min(e[0] for e in epochs) < first[0] - 0.2, "the dense loss did not fall"
assert min(e[1] for e in epochs) < first[1] - 0.2, "the views did not come to agree"
assert min(e[2] for e in epochs) < 0.97 * first[2], "the dropped months were not learnt"
assert last[3] > 0.02, "the projections collapsed to a constant"
f = h5py.File(sys.argv[2])
assert f.attrs["kind"] == "unet_encoder", f.attrs["kind"]
names = list(f["parameters"])
enc = [n for n in names if n.startswith("encoder.levels.")]
dec = [n for n in names if n.startswith("decoder.")]
assert enc and dec and len(enc) + len(dec) == len(names), names
print(f"ok: the pre-trained file holds {len(enc)} encoder and {len(dec)} decoder tensors (kind unet_encoder) and nothing else")
PY
mpi 2 pretrain --patches "$WORK/unlabelled.h5" --depth 2 --width 8 --projection 32 --epochs 6 --batch-size 8 --lr 3e-3 \
  --threads 1 --val-fraction 0.2 --objective global --drop-months 0.2 --output "$WORK/pre/global.h5" > "$WORK/pre-global.log" 2>&1 \
  || { cat "$WORK/pre-global.log"; fail "pretrain --objective global failed"; }
"$PY" - "$WORK/pre-global.log" <<'PY' || { cat "$WORK/pre-global.log"; fail "global SimSiam did not learn or collapsed"; }
import re, sys
epochs = [(float(a), float(b)) for a, b in re.findall(r"val SimSiam loss (-?[0-9.]+) .*projection spread ([0-9.]+)", open(sys.argv[1]).read())]
assert len(epochs) == 6, epochs
print(f"ok: global SimSiam: validation loss {epochs[0][0]:.3f} -> {min(e[0] for e in epochs):.3f} (-1: views agree), projection spread {epochs[-1][1]:.3f}")
assert min(e[0] for e in epochs) < epochs[0][0] - 0.1 and epochs[-1][1] > 0.02
PY
rm -rf "$WORK/ref" "$WORK/killed"
expect_training_resumes pretrain "${pre_cmd[@]}"
mpi 2 segment train --patches "$WORK/patches.h5" --depth 2 --width 8 --epochs 1 --batch-size 4 --threads 1 \
  --init "$WORK/pre/encoder.h5" --freeze-encoder --output "$WORK/from_pre.h5" > "$WORK/from_pre.log" 2>&1 \
  || { cat "$WORK/from_pre.log"; fail "segment train from the pre-trained encoder failed"; }
grep -q "encoder and decoder from $WORK/pre/encoder.h5 (frozen)" "$WORK/from_pre.log" \
  || { cat "$WORK/from_pre.log"; fail "segment train --init did not report the pre-trained encoder and decoder"; }
"$PY" - "$WORK/pre/encoder.h5" "$WORK/from_pre.h5" <<'PY' || fail "the pre-trained encoder was not loaded"
import sys, h5py, numpy as np
e, u = h5py.File(sys.argv[1])["parameters"], h5py.File(sys.argv[2])["parameters"]
enc = [k for k in e if k.startswith("encoder.")]
assert enc and all(np.array_equal(e[k][()], u[k][()]) for k in enc)
print(f"ok: segment train --init --freeze-encoder kept all {len(enc)} pre-trained encoder tensors")
PY
# Fine-tuning at a tenth of the rate moves the encoder less than at the full rate, from the same start.
for lr in 1 0.1; do
  mpi 2 segment train --patches "$WORK/patches.h5" --depth 2 --width 8 --epochs 2 --batch-size 4 --threads 1 \
    --init "$WORK/pre/encoder.h5" --encoder-lr "$lr" --output "$WORK/tuned-$lr.h5" > "$WORK/tuned-$lr.log" 2>&1 \
    || { cat "$WORK/tuned-$lr.log"; fail "segment train --encoder-lr $lr failed"; }
done
"$PY" - "$WORK/pre/encoder.h5" "$WORK/tuned-1.h5" "$WORK/tuned-0.1.h5" <<'PY' || fail "--encoder-lr did not scale the encoder's updates"
import sys, h5py, numpy as np
e = h5py.File(sys.argv[1])["parameters"]
def moved(path):
    u = h5py.File(path)["parameters"]
    return sum(float(np.abs(u[k][()] - e[k][()]).sum()) for k in e if k.startswith("encoder."))
full, tenth = moved(sys.argv[2]), moved(sys.argv[3])
print(f"ok: --encoder-lr 0.1 moved the pre-trained encoder by {tenth:.3g} (L1), --encoder-lr 1 by {full:.3g}")
assert 0 < tenth < 0.5 * full
PY
expect_failure other_width "encoder of another architecture" -- mpi 2 segment train --patches "$WORK/patches.h5" \
  --depth 2 --width 16 --init "$WORK/pre/encoder.h5" --output "$WORK/x.h5"
expect_failure batch_of_one "--batch-size must be at least 2" -- mpi 2 pretrain --patches "$WORK/patches.h5" \
  --batch-size 1 --output "$WORK/x.h5"
expect_failure one_month_reconstruction "at least 2 --months" -- mpi 2 pretrain --patches "$WORK/patches.h5" \
  --months 10 --output "$WORK/x.h5"
[ ! -e "$WORK/x.h5" ] || fail "a model was written for bad input"
