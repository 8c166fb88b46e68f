#!/usr/bin/env bash
# CPU inference of the three predictors against PyTorch, one script (issue 17). Pixels/s per rank, 1 thread per
# rank, over the same composite tile with the same weights:
#   classify         LSTM 128 x 2: s2crop fp32 and bf16; PyTorch (bench/pytorch_lstm.py infer, batch 2048) as run,
#                    with s2crop's BLAS kernels (OPENBLAS_CORETYPE), and with s2crop's kernels and malloc settings
#                    (GLIBC_TUNABLES) given by hand; PyTorch's dynamic int8 (onednn, qnnpack) against s2crop fp32
#   segment predict  U-Net depth 3 width 16, blended windows of 128 px (overlap 32): s2crop against
#                    bench/pytorch_unet.py infer, same two PyTorch variants
#   ndvi predict     gap-fill LSTM 64 x 2 (bidirectional): s2crop against bench/pytorch_ndvi.py, same variants
# classify and ndvi predict run over a SIZE px tile in blocks of 256 px (so that 2 ranks share it), segment predict
# over a SEG_SIZE px tile (the small U-Net's run would otherwise be mostly start-up).
# BEFORE=/path/to/older/s2crop adds that binary's fp32 numbers (the same runs, alternating). 2 ranks: s2crop only.
# Models are trained for a few steps: throughput does not depend on the weights. Results go to bench/RESULTS.md.
#   bench/inference_bench.sh [WORK_DIR]    env: SIZE (multiple of 6, default 402) SEG_SIZE (1206) REPEAT (2) BEFORE
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
S2CROP="${S2CROP:-$ROOT/build/s2crop}"
WORK="${1:-$(mktemp -d /tmp/s2crop-inference-bench.XXXXXX)}"
SIZE="${SIZE:-402}" SEG_SIZE="${SEG_SIZE:-1206}" REPEAT="${REPEAT:-2}" BEFORE="${BEFORE:-}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
PY=/usr/bin/python3
MALLOC="glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824"  # as common/allocator.cpp
mkdir -p "$WORK" && cd "$WORK"

# ---- data and models (once per work folder)
if [ ! -f .ready ]; then
  mpirun -np 2 "$S2CROP" synth --out region --tiles 33UVP --size "$SIZE" --days 365 --revisit 10 > synth.log 2>&1
  mpirun -np 2 "$S2CROP" composite --input region/stac --output comp.h5 > comp.log 2>&1
  "$PY" "$ROOT/tests/make_training_set.py" set.h5 --samples 20000 --classes 16 > /dev/null
  "$S2CROP" train --samples set.h5 --output lstm.h5 --hidden 128 --layers 2 --epochs 1 --max-steps 20 \
    --val-fraction 0 --patience 0 --threads 1 --overwrite > lstm.log 2>&1
  mpirun -np 2 "$S2CROP" extract --composites comp.h5 --labels region/parcels.gpkg --output patches.h5 --patches 32 \
    --min-labelled 0 > patches.log 2>&1
  "$S2CROP" segment train --patches patches.h5 --depth 3 --width 16 --encoder plain --norm group --augment false \
    --val-fraction 0 --patience 0 --epochs 1 --max-steps 5 --threads 1 --output unet.h5 --overwrite > unet.log 2>&1
  mpirun -np 2 "$S2CROP" extract --composites comp.h5 --labels region/parcels.gpkg --per-class 0 --border 0 \
    --output samples.h5 > samples.log 2>&1
  "$S2CROP" ndvi train --task gapfill --samples samples.h5 --output ndvi.h5 --hidden 64 --epochs 1 --max-steps 3 \
    --threads 1 --overwrite > ndvi.log 2>&1
  touch .ready
fi
if [ ! -f .ready_seg ]; then
  mpirun -np 2 "$S2CROP" synth --out seg_region --tiles 33UVP --size "$SEG_SIZE" --days 365 --revisit 10 > seg_synth.log 2>&1
  mpirun -np 2 "$S2CROP" composite --input seg_region/stac --output seg_comp.h5 > seg_comp.log 2>&1
  touch .ready_seg
fi
CORE=$("$S2CROP" classify --composites comp.h5 --model lstm.h5 --output probe.h5 --overwrite --threads 1 2>&1 \
       | grep -o 'OpenBLAS kernels: [A-Za-z0-9]*' | awk '{print $3}' || true)
echo "bench: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), tile ${SIZE} px, 1 thread per rank," \
     "OpenBLAS kernels: s2crop $CORE, PyTorch as run $("$PY" -c 'import ctypes, torch
f = ctypes.CDLL("libopenblas.so.0").openblas_get_corename; f.restype = ctypes.c_char_p; print(f().decode())')"

rate() { grep -o '[0-9.e+]* per rank)' | grep -o '^[0-9.e+]*' | tail -1; }   # s2crop's log -> pixels/s per rank
py_rate() { grep -o 'inference: [0-9.]*' | grep -o '[0-9.]*$'; }
best() { printf '%s\n' "$@" | sort -g | tail -1; }
declare -A runs
add() { runs[$1]="${runs[$1]:-} $2"; }
for r in $(seq 1 "$REPEAT"); do
  for bin in "$S2CROP" $BEFORE; do
    tag=now; [ "$bin" = "$S2CROP" ] || tag=before
    add "classify $tag fp32 1" "$("$bin" classify --composites comp.h5 --model lstm.h5 --output "map_$tag.h5" \
      --block-size 256 --overwrite --threads 1 2>&1 | rate)"
    add "segment $tag fp32 1" "$("$bin" segment predict --composites seg_comp.h5 --model unet.h5 --output "seg_$tag.h5" \
      --window 128 --overlap 32 --overwrite --threads 1 2>&1 | rate)"
    add "ndvi $tag fp32 1" "$("$bin" ndvi predict --composites comp.h5 --model ndvi.h5 --output "ndvi_$tag.h5" \
      --block-size 256 --overwrite --threads 1 2>&1 | rate)"
    add "classify $tag fp32 2" "$(mpirun -np 2 "$bin" classify --composites comp.h5 --model lstm.h5 \
      --output "map2_$tag.h5" --block-size 256 --overwrite --threads 1 2>&1 | rate)"
  done
  add "classify now bf16 1" "$("$S2CROP" classify --composites comp.h5 --model lstm.h5 --output map_bf16.h5 \
    --block-size 256 --precision bf16 --overwrite --threads 1 2>&1 | rate)"
  add "classify now bf16 2" "$(mpirun -np 2 "$S2CROP" classify --composites comp.h5 --model lstm.h5 \
    --output map2_bf16.h5 --block-size 256 --precision bf16 --overwrite --threads 1 2>&1 | rate)"
  add "segment now fp32 2" "$(mpirun -np 2 "$S2CROP" segment predict --composites seg_comp.h5 --model unet.h5 \
    --output seg2.h5 --window 128 --overlap 32 --overwrite --threads 1 2>&1 | rate)"
  add "ndvi now fp32 2" "$(mpirun -np 2 "$S2CROP" ndvi predict --composites comp.h5 --model ndvi.h5 --output ndvi2.h5 \
    --block-size 256 --overwrite --threads 1 2>&1 | rate)"
  for variant in asrun kernels kernels+malloc; do
    env=(); [ "$variant" = asrun ] || env+=(OPENBLAS_CORETYPE="$CORE")
    [ "$variant" = kernels+malloc ] && env+=(GLIBC_TUNABLES="$MALLOC")
    add "classify pytorch-$variant fp32 1" "$(env "${env[@]}" "$PY" "$ROOT/bench/pytorch_lstm.py" infer comp.h5 lstm.h5 \
      --threads 1 --batch-size 2048 | py_rate)"
    add "ndvi pytorch-$variant fp32 1" "$(env "${env[@]}" "$PY" "$ROOT/bench/pytorch_ndvi.py" comp.h5 ndvi.h5 \
      --threads 1 | py_rate)"
    add "segment pytorch-$variant fp32 1" "$(env "${env[@]}" "$PY" "$ROOT/bench/pytorch_unet.py" infer seg_comp.h5 unet.h5 \
      --window 128 --overlap 32 --threads 1 | py_rate)"
  done
  # int8: what --precision int8 would be, PyTorch's dynamic quantisation on each quantized engine this LibTorch has
  # (s2crop refuses int8: see nn/device.cpp), with s2crop's kernels for its float parts.
  for engine in onednn qnnpack; do
    add "classify pytorch-int8-$engine int8 1" "$(OPENBLAS_CORETYPE="$CORE" "$PY" "$ROOT/bench/pytorch_lstm.py" infer \
      comp.h5 lstm.h5 --threads 1 --batch-size 2048 --int8 $engine --compare map_now.h5 2>/dev/null \
      | tee "int8_$engine.out" | py_rate)"
  done
done

agree=$("$PY" - <<'PY'
import h5py, numpy as np
def read(f):
    with h5py.File(f, "r") as h:
        return np.concatenate([h["tiles"][t]["class"][()].ravel() for t in sorted(h["tiles"])])
a, b = read("map_now.h5"), read("map_bf16.h5")
data = a != 255
print(f"{100 * (a[data] == b[data]).mean():.3f}")
PY
)
if [ -n "$BEFORE" ]; then
  for f in map seg ndvi; do
    # --values-of-a: every dataset of the older output, byte for byte (newer outputs add metadata, e.g. CF-1.8).
    "$PY" "$ROOT/tests/h5_compare.py" "${f}_before.h5" "${f}_now.h5" --values-of-a > /dev/null \
      && echo "$f: identical before and now" || echo "$f: DIFFERS before and now"
  done
fi

printf '\n%-9s %-24s %-5s %5s | %12s | %s\n' stage side prec ranks "px/s/rank" "runs"
for key in "${!runs[@]}"; do echo "$key"; done | sort | while read -r stage side prec ranks; do
  key="$stage $side $prec $ranks"
  # shellcheck disable=SC2086
  printf '%-9s %-24s %-5s %5s | %12.0f | %s\n' "$stage" "$side" "$prec" "$ranks" "$(best ${runs[$key]})" "${runs[$key]}"
done
ratio() {  # ratio STAGE SIDE_A PREC_A SIDE_B PREC_B
  # shellcheck disable=SC2086
  awk -v a="$(best ${runs["$1 $2 $3 1"]})" -v b="$(best ${runs["$1 $4 $5 1"]})" 'BEGIN { printf "%.2fx", a / b }'
}
echo
echo "classify fp32: s2crop / PyTorch same kernels $(ratio classify now fp32 pytorch-kernels fp32)," \
     "/ PyTorch as run $(ratio classify now fp32 pytorch-asrun fp32)," \
     "/ PyTorch same kernels and malloc $(ratio classify now fp32 pytorch-kernels+malloc fp32)"
echo "classify bf16: / s2crop fp32 now $(ratio classify now bf16 now fp32)$([ -n "$BEFORE" ] &&
     echo ", / s2crop fp32 before $(ratio classify now bf16 before fp32)"); classes agree with fp32 on $agree % of data pixels"
for engine in onednn qnnpack; do
  echo "classify int8 (PyTorch dynamic quantisation, $engine): / s2crop fp32 now" \
       "$(ratio classify pytorch-int8-$engine int8 now fp32); classes agree with s2crop fp32 on" \
       "$(grep -o '[0-9.]* of pixels with data' "int8_$engine.out" | awk '{printf "%.3f", 100 * $1}') % of data pixels"
done
echo "segment fp32: s2crop / PyTorch same kernels $(ratio segment now fp32 pytorch-kernels fp32)," \
     "/ PyTorch as run $(ratio segment now fp32 pytorch-asrun fp32)," \
     "/ PyTorch same kernels and malloc $(ratio segment now fp32 pytorch-kernels+malloc fp32)"
echo "ndvi fp32: s2crop / PyTorch same kernels $(ratio ndvi now fp32 pytorch-kernels fp32)," \
     "/ PyTorch as run $(ratio ndvi now fp32 pytorch-asrun fp32)," \
     "/ PyTorch same kernels and malloc $(ratio ndvi now fp32 pytorch-kernels+malloc fp32)"
if [ -n "$BEFORE" ]; then
  for s in classify segment ndvi; do echo "$s fp32: now / before $(ratio "$s" now fp32 before fp32)"; done
fi
