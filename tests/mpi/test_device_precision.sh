#!/usr/bin/env bash
# --device and --precision on 2 ranks: where LibTorch has no GPU, `auto` is the CPU and its maps and models are
# bit for bit those of `--device cpu`; bf16 class maps agree with fp32 maps on at least 99.9 % of the data pixels (and
# bf16 NDVI within 0.02) and classify logs its sampled agreement; fp16 on the CPU, bf16 on a CPU without native bf16,
# int8 and `--device cuda` without a GPU stop every rank with one clear message, promptly, writing nothing.
source "$(dirname "$0")/../lib.sh"
synth_region "$WORK/region" --tiles 33UVP,32TQT --size 96
composite_region
# A model of the region itself (its parcels' samples): a map of confident pixels, as a real model makes.
mpi 2 extract --composites "$WORK/comp.h5" --labels "$WORK/region/parcels.gpkg" --output "$WORK/set.h5" \
  > "$WORK/extract.log" 2>&1 || { cat "$WORK/extract.log"; fail "extract failed"; }
mpi 2 train --samples "$WORK/set.h5" --output "$WORK/model.h5" --hidden 32 --epochs 3 --threads 1 \
  > "$WORK/train.log" 2>&1 || { cat "$WORK/train.log"; fail "train failed"; }
grep -q "training: device cpu on rank 0" "$WORK/train.log" || { cat "$WORK/train.log"; fail "the log does not say the device"; }
grep -q "rank 1 on device cpu" "$WORK/train.log" || fail "the log does not say rank 1's device"
gpu_visible=0
grep -q "0 of 2 rank(s) on a GPU" "$WORK/train.log" || gpu_visible=1

classify() {  # classify OUT [options]
  local out="$1"; shift
  mpi 2 classify --composites "$WORK/comp.h5" --model "$WORK/model.h5" --output "$out" --block-size 32 --threads 1 \
    --probabilities "$@" > "$out.log" 2>&1 || { cat "$out.log"; fail "classify $* failed"; }
}
classify "$WORK/auto.h5"
# bf16 on the CPU needs AVX512-BF16 / AMX (x86) or BF16 (Arm): elsewhere it is refused, and that is what is tested.
native_bf16=0
grep -qE '^(flags|Features)\s*:.*\b(avx512_bf16|amx_bf16|bf16)\b' /proc/cpuinfo && native_bf16=1
if [ $native_bf16 = 0 ] && [ $gpu_visible = 0 ]; then
  expect_failure "bf16 on a CPU without bf16" "needs AVX512-BF16 or AMX" -- \
    mpi 2 classify --composites "$WORK/comp.h5" --model "$WORK/model.h5" --output "$WORK/bf16.h5" --precision bf16
  [ ! -e "$WORK/bf16.h5" ] || fail "the bf16 refusal wrote a map"
  pass "bf16 refused on this CPU (no AVX512-BF16/AMX): the agreement checks need such a CPU and are skipped"
else
classify "$WORK/bf16.h5" --precision bf16
if [ $gpu_visible = 0 ]; then
  # The run's own check: every 64th pixel of a batch classified again in fp32, counted on both ranks.
  line=$(grep -o 'bf16 agrees with fp32 on [0-9.]* % of [0-9]* pixels' "$WORK/bf16.h5.log") \
    || { cat "$WORK/bf16.h5.log"; fail "the bf16 log does not report its agreement with fp32"; }
  echo "log: $line"
  checked=$(echo "$line" | awk '{print $(NF-1)}')
  "$PY" - "$WORK/auto.h5" "$checked" <<'PY' || fail "the bf16 log's sample is not every 64th pixel of the map"
import sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    data = sum(int((f["tiles"][t]["class"][()] != 255).sum()) for t in f["tiles"])
blocks = 2 * 3 * 3  # 2 tiles of 96 px in blocks of 32 px: one batch each, every batch adds at most one sample
checked = int(sys.argv[2])
assert data / 64 <= checked <= data / 64 + blocks, (checked, data)
print(f"ok: {checked} pixels checked of {data} with data")
PY
fi
if [ $gpu_visible = 0 ]; then
  classify "$WORK/cpu.h5" --device cpu --precision fp32
  h5_same "$WORK/auto.h5" "$WORK/cpu.h5" > /dev/null 2>&1 \
    || "$PY" "$TESTS_DIR/h5_compare.py" "$WORK/auto.h5" "$WORK/cpu.h5" --ignore-attr config \
    || fail "--device cpu --precision fp32 differs from the default map"
  mpi 2 train --samples "$WORK/set.h5" --output "$WORK/model_cpu.h5" --hidden 32 --epochs 3 --threads 1 --device cpu \
    > "$WORK/train_cpu.log" 2>&1 || { cat "$WORK/train_cpu.log"; fail "train --device cpu failed"; }
  "$PY" "$TESTS_DIR/h5_compare.py" "$WORK/model.h5" "$WORK/model_cpu.h5" --ignore-attr config \
    || fail "train --device cpu differs from the default (auto) on a machine without GPU"
  pass "auto = --device cpu here: identical map and model"
fi
"$PY" - "$WORK/auto.h5" "$WORK/bf16.h5" <<'PY' || fail "bf16 map disagrees with the fp32 map"
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    assert a.attrs["run_fingerprint"] != b.attrs["run_fingerprint"], "a bf16 map must not pass for the fp32 one"
    same = total = 0
    worst = 0
    for tile in a["tiles"]:
        ca, cb = a["tiles"][tile]["class"][()], b["tiles"][tile]["class"][()]
        assert ((ca == 255) == (cb == 255)).all(), "no-data differs"
        ok = ca != 255
        same += int((ca[ok] == cb[ok]).sum())
        total += int(ok.sum())
        pa, pb = a["tiles"][tile]["probability"][()].astype(int), b["tiles"][tile]["probability"][()].astype(int)
        worst = max(worst, int(np.abs(pa - pb).max()))
    share = same / total
    print(f"ok: bf16 vs fp32 classes agree on {same} of {total} data pixels ({100 * share:.3f} %), "
          f"probabilities within {worst} points")
    assert total > 10000 and share >= 0.999
PY
pass "bf16 class map agrees with fp32"

# NDVI gap-fill model: bf16 within 0.02 NDVI of fp32 where both predict.
mpi 2 ndvi train --task gapfill --samples "$WORK/set.h5" --assume-clear --output "$WORK/ndvi.h5" --hidden 16 \
  --epochs 1 --threads 1 > "$WORK/ndvi_train.log" 2>&1 || { cat "$WORK/ndvi_train.log"; fail "ndvi train failed"; }
for p in fp32 bf16; do
  mpi 2 ndvi predict --composites "$WORK/comp.h5" --model "$WORK/ndvi.h5" --output "$WORK/ndvi_$p.h5" \
    --block-size 48 --threads 1 --precision $p > "$WORK/ndvi_$p.log" 2>&1 || { cat "$WORK/ndvi_$p.log"; fail "ndvi predict $p"; }
done
"$PY" - "$WORK/ndvi_fp32.h5" "$WORK/ndvi_bf16.h5" <<'PY' || fail "bf16 NDVI disagrees with fp32"
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    worst = 0
    for tile in a["tiles"]:
        va, vb = a["tiles"][tile]["ndvi_predicted"][()].astype(int), b["tiles"][tile]["ndvi_predicted"][()].astype(int)
        assert ((va == -32768) == (vb == -32768)).all()
        ok = va != -32768
        worst = max(worst, int(np.abs(va[ok] - vb[ok]).max()))
    print(f"ok: bf16 NDVI within {worst / 10000:.4f} of fp32")
    assert 0 < worst <= 200, worst
PY
if [ $gpu_visible = 0 ]; then
  # The run's own check samples the same predictions: its largest difference is at most the whole map's.
  logged=$(grep -o 'bf16 is within [0-9.]* NDVI of fp32 on [0-9]* pixels' "$WORK/ndvi_bf16.log") \
    || { cat "$WORK/ndvi_bf16.log"; fail "the bf16 NDVI log does not report its difference from fp32"; }
  echo "log: $logged"
  "$PY" - "$WORK/ndvi_fp32.h5" "$WORK/ndvi_bf16.h5" "$(echo "$logged" | awk '{print $4}')" <<'PY' \
    || fail "the bf16 NDVI log's difference is not the maps' difference"
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    worst = 0
    for tile in a["tiles"]:
        va, vb = a["tiles"][tile]["ndvi_predicted"][()].astype(int), b["tiles"][tile]["ndvi_predicted"][()].astype(int)
        ok = va != -32768
        worst = max(worst, int(np.abs(va[ok] - vb[ok]).max()))
logged = round(float(sys.argv[3]) * 10000)
assert 0 < logged <= worst, (logged, worst)
print(f"ok: logged {logged / 10000:.4f} <= whole map {worst / 10000:.4f}")
PY
fi
fi  # native bf16

# Refusals on every rank, nothing written.
expect_failure "int8" "int8 is not offered" -- \
  mpi 2 classify --composites "$WORK/comp.h5" --model "$WORK/model.h5" --output "$WORK/int8.h5" --precision int8
grep -q "99.9 %" "$WORK/int8.log" || fail "the int8 refusal does not say why"
[ ! -e "$WORK/int8.h5" ] || fail "int8 refusal wrote a map"
expect_failure "fp16 on the CPU" "fp16 needs a GPU" -- \
  mpi 2 classify --composites "$WORK/comp.h5" --model "$WORK/model.h5" --output "$WORK/fp16.h5" --precision fp16 --device cpu
[ ! -e "$WORK/fp16.h5" ] || fail "fp16 refusal wrote a map"
expect_failure "a bad --device" "--device must be auto, cpu, cuda or cuda:N" -- \
  mpi 2 classify --composites "$WORK/comp.h5" --model "$WORK/model.h5" --output "$WORK/bad.h5" --device gpu0
if [ $gpu_visible = 0 ]; then
  start=$SECONDS
  expect_failure "--device cuda without a GPU (classify)" "(rank 0 on" -- \
    mpi 2 classify --composites "$WORK/comp.h5" --model "$WORK/model.h5" --output "$WORK/cuda.h5" --device cuda
  grep -qF -- "--device cuda: " "$WORK/--device cuda without a GPU (classify).log" || fail "the message names no option"
  expect_failure "--device cuda:1 without a GPU (train)" "--device cuda:1: " -- \
    mpi 2 train --samples "$WORK/set.h5" --output "$WORK/cuda_model.h5" --device cuda:1
  [ $((SECONDS - start)) -lt 100 ] || fail "the refusals took $((SECONDS - start)) s: a rank waited"
  [ ! -e "$WORK/cuda.h5" ] && [ ! -e "$WORK/cuda_model.h5" ] || fail "a refused run wrote an output"
fi
pass "device and precision refusals"
