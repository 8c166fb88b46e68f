#!/usr/bin/env bash
# The GPU check of issue 14, one command, one table: on a machine with an NVIDIA GPU and a PyTorch install (CUDA,
# nvcc, CMake, ninja; no MPI, HDF5, GDAL or Boost: those come from the bundle of scripts/gpu-bundle.sh) it builds
# s2crop's model stages against PyTorch's LibTorch and measures, each against the CPU of the same machine in the same
# run:
#   (1) LSTM training, 50 steps, CUDA vs CPU: samples/s, and the loss trajectories within 1e-3 relative;
#   (2) data parallel on the GPU: 1 rank with NCCL, and 2 ranks sharing the one GPU over MPI (per-rank batch B/2),
#       loss trajectories equal to the 1-rank run (within 1e-3) and the replicas bitwise identical (--check-replicas);
#   (3) classify: a 10980 x 10980 tile (12 months x 10 bands, LSTM 128 x 2) on the GPU, HDF5 reads and writes
#       included, in pixels/s, against all CPU cores on a 1098 x 1098 tile of the same file;
#   (4) U-Net training, patches/s GPU vs CPU;
#   (5) bf16 vs fp32 class maps: share of pixels that agree (GPU and CPU).
# Without a GPU (or with S2CROP_GPU_CHECK_CPU_ONLY=1) it runs the CPU side at a small size, says so, and still checks
# (2) (over MPI on the CPU) and (5) on the CPU: that run is a test (tests/integration/test_gpu_check.sh).
#
#   bash scripts/gpu-check.sh [WORKDIR]
# Environment: S2CROP=path of an s2crop binary to use instead of building one; BUNDLE=the gpu-bundle folder
# (default: gpu-bundle/ of this tree); PYTHON=a python with numpy and h5py (default: python3, or /usr/bin/python3).
# Exit status: 0 when every check holds (timing targets are reported, not enforced), 1 otherwise.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="$(realpath -m "${1:-/tmp/s2crop-gpu-check}")"
mkdir -p "$W"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
T0=$SECONDS
say() { echo "gpu-check [$((SECONDS - T0)) s]: $*"; }
die() { echo "gpu-check: FAILED: $*" >&2; exit 1; }

PYTHON="${PYTHON:-}"
for p in python3 /usr/bin/python3; do
  [ -n "$PYTHON" ] && break
  "$p" -c 'import h5py, numpy' 2> /dev/null && PYTHON="$p"
done
[ -n "$PYTHON" ] || die "no python with numpy and h5py"

GPU=0
if [ "${S2CROP_GPU_CHECK_CPU_ONLY:-0}" != 1 ] && command -v nvidia-smi > /dev/null && nvidia-smi -L 2> /dev/null | grep -q GPU; then
  GPU=1
fi
CORES=$(nproc)

# ---- the binary: given, or built here against PyTorch's LibTorch with the bundle's MPI, HDF5 and Boost
S2CROP="${S2CROP:-}"
if [ -z "$S2CROP" ]; then
  BUNDLE="${BUNDLE:-$ROOT/gpu-bundle}"
  if ! command -v mpicxx > /dev/null || [ ! -e /usr/include/hdf5/openmpi/hdf5.h ]; then
    [ -d "$BUNDLE/debs" ] || die "no MPI/HDF5 here and no bundle in $BUNDLE (make it with scripts/gpu-bundle.sh)"
    say "installing the bundle's $(ls "$BUNDLE"/debs/*.deb | wc -l) packages (files the machine lacks only)"
    stage="$W/bundle-root"
    rm -rf "$stage" && mkdir -p "$stage"
    for d in "$BUNDLE"/debs/*.deb; do dpkg -x "$d" "$stage"; done
    cp -a --no-clobber "$stage"/. / 2> /dev/null || cp -an "$stage"/. /
    # Debian's alternatives links (mpicxx, mpirun, h5pcc) are made by maintainer scripts, not in the packages.
    for tool in mpicc mpicxx mpirun mpiexec; do
      [ -e /usr/bin/$tool ] || ln -sf "/usr/bin/$tool.openmpi" /usr/bin/$tool
    done
    [ -e /usr/bin/h5pcc ] || ln -sf /usr/bin/h5pcc.openmpi /usr/bin/h5pcc
    ldconfig
  fi
  TORCH_PREFIX="$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2> /dev/null || true)"
  [ -n "$TORCH_PREFIX" ] || die "no PyTorch (for its LibTorch) in $PYTHON"
  nccl=()
  NCCL_DIR="$("$PYTHON" -c 'import nvidia.nccl, os; print(list(nvidia.nccl.__path__)[0])' 2> /dev/null || true)"
  if [ -n "$NCCL_DIR" ] && [ -e "$NCCL_DIR/include/nccl.h" ]; then
    nccl=(-DS2CROP_WITH_NCCL=ON -DNCCL_INCLUDE_DIR="$NCCL_DIR/include"
          -DNCCL_LIBRARY="$(ls "$NCCL_DIR"/lib/libnccl.so* | head -1)")
  elif [ -e /usr/local/cuda/include/nccl.h ]; then
    nccl=(-DS2CROP_WITH_NCCL=ON)
  fi
  say "building s2crop (model stages, no GDAL) against $TORCH_PREFIX ${nccl[*]:+with NCCL}"
  cmake -S "$ROOT" -B "$W/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DS2CROP_WITH_GDAL=OFF \
    -DS2CROP_BUILD_TESTS=OFF -DS2CROP_BUILD_BENCH=OFF -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
    -DS2CROP_CUDA_ROOT=/usr/local/cuda "${nccl[@]}" > "$W/cmake.log" 2>&1 || { tail -40 "$W/cmake.log"; die "cmake"; }
  ninja -C "$W/build" -j "$CORES" > "$W/build.log" 2>&1 || { grep -A8 "error" "$W/build.log" | head -60; die "build"; }
  S2CROP="$W/build/s2crop"
fi
S2CROP="$(realpath "$S2CROP")"
say "s2crop: $S2CROP; GPU: $([ $GPU = 1 ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1 || echo 'none: CPU side only')"
run() { "$S2CROP" "$@"; }
mpi() { local n="$1"; shift; mpirun -np "$n" --oversubscribe --bind-to none "$S2CROP" "$@"; }
# timed LOG cmd...: runs cmd with its output into LOG, prints its wall seconds (at least 1), fails with it
timed() {
  local log="$1" t=$SECONDS rc=0
  shift
  "$@" > "$log" 2>&1 || rc=$?
  echo $((SECONDS - t > 0 ? SECONDS - t : 1))
  return $rc
}

# ---- inputs (h5py: no GDAL needed)
if [ $GPU = 1 ]; then BIG=10980 SMALL=1098 SAMPLES=60000 PATCHES=512 PSIZE=64 USTEPS=20; else
  BIG=256 SMALL=160 SAMPLES=26000 PATCHES=48 PSIZE=32 USTEPS=4; fi
cd "$W"
rm -rf runs && mkdir -p runs
"$PYTHON" "$ROOT/tests/make_training_set.py" set.h5 --samples $SAMPLES --classes 8 > /dev/null
"$PYTHON" "$ROOT/scripts/gpu_check_data.py" composites comp.h5 --set set.h5 --tile BIG:$BIG --tile SMALL:$SMALL > /dev/null
"$PYTHON" "$ROOT/scripts/gpu_check_data.py" patches patches.h5 --set set.h5 --patches $PATCHES --size $PSIZE > /dev/null
say "inputs: training set of $SAMPLES series, composites $BIG^2 + $SMALL^2 px, $PATCHES patches of $PSIZE px"

declare -A R  # results
ok=1
check() { if "$PYTHON" -c "$1"; then :; else ok=0; fi; }

# ---- (1) LSTM training, 50 steps in one epoch (SAMPLES >= 50 x 512: the model of (3) and (5) is trained that long)
lstm=(train --samples set.h5 --hidden 128 --layers 2 --dropout 0 --epochs 1 --max-steps 50 --batch-size 512
      --val-fraction 0 --patience 0 --overwrite)
t_cpu=$(timed runs/lstm_cpu.log run "${lstm[@]}" --device cpu --output runs/lstm_cpu.h5 --step-log runs/lstm_cpu.tsv) \
  || { tail runs/lstm_cpu.log; die "(1) LSTM training on the CPU"; }
R[lstm_cpu]=$(awk -v t="$t_cpu" 'BEGIN { printf "%.0f", 50 * 512 / (t > 0 ? t : 1) }')
if [ $GPU = 1 ]; then
  t_gpu=$(timed runs/lstm_gpu.log run "${lstm[@]}" --device cuda --output runs/lstm_gpu.h5 --step-log runs/lstm_gpu.tsv) \
    || { tail runs/lstm_gpu.log; die "(1) LSTM training on the GPU"; }
  R[lstm_gpu]=$(awk -v t="$t_gpu" 'BEGIN { printf "%.0f", 50 * 512 / (t > 0 ? t : 1) }')
  R[lstm_rel]=$("$PYTHON" -c "
import numpy as np
a = np.genfromtxt('runs/lstm_cpu.tsv', names=True, delimiter='\t'); b = np.genfromtxt('runs/lstm_gpu.tsv', names=True, delimiter='\t')
print(f'{(np.abs(a[\"loss\"] - b[\"loss\"]) / np.abs(a[\"loss\"])).max():.1e}')")
  check "import sys; sys.exit(0 if float('${R[lstm_rel]}') <= 1e-3 else 1)"
fi

# ---- (2) data parallel: 1 rank (NCCL on the GPU) vs 2 ranks on the one device over MPI, per-rank batch B/2
dp=(train --samples set.h5 --hidden 64 --layers 2 --dropout 0 --epochs 1 --max-steps 50 --val-fraction 0 --patience 0
    --threads 2 --overwrite)
dev=cpu; backend=mpi
[ $GPU = 1 ] && { dev=cuda; grep -q "NCCL communicator enabled" "$W/cmake.log" 2> /dev/null && backend=nccl; }
mpi 1 "${dp[@]}" --device $dev --backend $backend --batch-size 256 --output runs/dp1.h5 --step-log runs/dp1.tsv \
  > runs/dp1.log 2>&1 || { tail runs/dp1.log; die "(2) 1-rank training"; }
mpi 2 "${dp[@]}" --device $dev --backend mpi --batch-size 128 --check-replicas --output runs/dp2.h5 \
  --step-log runs/dp2.tsv > runs/dp2.log 2>&1 || { tail runs/dp2.log; die "(2) 2-rank training"; }
R[dp_backend]="1 rank $(grep -o 'MPI: [A-Z]*\|NCCL[^:]*: [A-Z]*' runs/dp1.log | head -1 | cut -d: -f1) on $dev, 2 ranks MPI on $dev"
R[dp_rel]=$("$PYTHON" -c "
import numpy as np
a = np.genfromtxt('runs/dp1.tsv', names=True, delimiter='\t'); b = np.genfromtxt('runs/dp2.tsv', names=True, delimiter='\t')
assert (b['replicas_identical'] == 1).all()
print(f'{(np.abs(a[\"loss\"] - b[\"loss\"]) / np.abs(a[\"loss\"])).max():.1e}')") || R[dp_rel]="replicas differ"
check "import sys; sys.exit(0 if '${R[dp_rel]}' != 'replicas differ' and float('${R[dp_rel]}') <= 1e-3 else 1)"

# ---- (3) classify, (5) bf16 agreement: an LSTM 128 x 2 (the one of (1), trained on the CPU)
classify() {  # classify NAME TILE DEVICE PRECISION
  rm -rf "runs/$1.h5" "runs/$1.h5.parts"
  local t
  t=$(timed "runs/$1.log" run classify --composites comp.h5 --model runs/lstm_cpu.h5 --output "runs/$1.h5" \
      --tiles "$2" --device "$3" --precision "$4" --block-size 1024) || { tail "runs/$1.log"; die "classify $*"; }
  awk -v t="$t" -v n="$5" 'BEGIN { printf "%.0f", n / (t > 0 ? t : 1) }'
}
R[cls_cpu]=$(classify cpu_small SMALL cpu fp32 $((SMALL * SMALL)))
agree() {
  "$PYTHON" -c "
import h5py, numpy as np
a = h5py.File('runs/$1.h5', 'r')['tiles/$3/class'][()]; b = h5py.File('runs/$2.h5', 'r')['tiles/$3/class'][()]
print(f'{100 * (a == b).mean():.3f}')"
}
# bf16 on the CPU needs AVX512-BF16 / AMX (x86) or BF16 (Arm); elsewhere s2crop refuses it, and that is checked.
if grep -qE '^(flags|Features)\s*:.*\b(avx512_bf16|amx_bf16|bf16)\b' /proc/cpuinfo; then
  classify cpu_small_bf16 SMALL cpu bf16 1 > /dev/null
  R[bf16_cpu]=$(agree cpu_small cpu_small_bf16 SMALL)
  check "import sys; sys.exit(0 if float('${R[bf16_cpu]}') >= 99.9 else 1)"
else
  rm -rf runs/cpu_small_bf16.h5
  if run classify --composites comp.h5 --model runs/lstm_cpu.h5 --output runs/cpu_small_bf16.h5 --tiles SMALL \
       --device cpu --precision bf16 > runs/cpu_small_bf16.log 2>&1; then
    ok=0; R[bf16_cpu]="not refused on a CPU without bf16"
  elif grep -q "needs AVX512-BF16 or AMX" runs/cpu_small_bf16.log && [ ! -e runs/cpu_small_bf16.h5 ]; then
    R[bf16_cpu]="refused (CPU without bf16)"
  else
    ok=0; R[bf16_cpu]="failed: $(grep -m1 error runs/cpu_small_bf16.log | cut -c1-120)"
  fi
fi
if [ $GPU = 1 ]; then
  R[cls_gpu]=$(classify gpu_big BIG cuda fp32 $((BIG * BIG)))
  R[cls_gpu_s]=$(grep -o 'wrote runs/gpu_big.h5 in [0-9:]*' runs/gpu_big.log | awk '{print $NF}')
  classify gpu_small SMALL cuda fp32 1 > /dev/null
  classify gpu_small_bf16 SMALL cuda bf16 1 > /dev/null
  R[bf16_gpu]=$(agree gpu_small gpu_small_bf16 SMALL)
  R[gpu_vs_cpu_map]=$(agree gpu_small cpu_small SMALL)
  check "import sys; sys.exit(0 if float('${R[bf16_gpu]}') >= 99.9 and float('${R[gpu_vs_cpu_map]}') >= 99.9 else 1)"
fi

# ---- (4) U-Net training
unet=(segment train --patches patches.h5 --epochs 1 --max-steps $USTEPS --batch-size 16 --width 32 --depth 3
      --val-fraction 0 --patience 0 --overwrite)
t=$(timed runs/unet_cpu.log run "${unet[@]}" --device cpu --output runs/unet_cpu.h5) \
  || { tail runs/unet_cpu.log; die "(4) U-Net training on the CPU"; }
R[unet_cpu]=$(awk -v t="$t" -v n=$((USTEPS * 16)) 'BEGIN { printf "%.1f", n / (t > 0 ? t : 1) }')
if [ $GPU = 1 ]; then
  t=$(timed runs/unet_gpu.log run "${unet[@]}" --device cuda --output runs/unet_gpu.h5) \
    || { tail runs/unet_gpu.log; die "(4) U-Net training on the GPU"; }
  R[unet_gpu]=$(awk -v t="$t" -v n=$((USTEPS * 16)) 'BEGIN { printf "%.1f", n / (t > 0 ? t : 1) }')
fi

# ---- the table
ratio() { [ -n "${1:-}" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / (b > 0 ? b : 1) }' || echo "n/a"; }
gpu_name=$([ $GPU = 1 ] && nvidia-smi --query-gpu=name --format=csv,noheader | head -1 || echo "none (CPU side only)")
{
  echo "s2crop gpu-check: GPU $gpu_name, CPU $CORES cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  echo
  echo "| check | GPU | CPU ($CORES cores) | GPU/CPU | holds |"
  echo "|---|---|---|---|---|"
  echo "| (1) LSTM 128x2 training, 50 steps x 512 (samples/s) | ${R[lstm_gpu]:-n/a} | ${R[lstm_cpu]} | $(ratio "${R[lstm_gpu]:-}" "${R[lstm_cpu]}") | loss rel. diff ${R[lstm_rel]:-n/a} (<= 1e-3; target >= 20x) |"
  echo "| (2) data parallel: ${R[dp_backend]} | | | | loss rel. diff ${R[dp_rel]} (<= 1e-3), replicas identical |"
  echo "| (3) classify, pixels/s incl. HDF5 I/O (GPU ${BIG}^2 tile$( [ -n "${R[cls_gpu_s]:-}" ] && echo " in ${R[cls_gpu_s]}"), CPU ${SMALL}^2) | ${R[cls_gpu]:-n/a} | ${R[cls_cpu]} | $(ratio "${R[cls_gpu]:-}" "${R[cls_cpu]}") | target: full tile < 60 s |"
  echo "| (4) U-Net training, width 32, ${PSIZE}px patches (patches/s) | ${R[unet_gpu]:-n/a} | ${R[unet_cpu]} | $(ratio "${R[unet_gpu]:-}" "${R[unet_cpu]}") | target >= 10x |"
  echo "| (5) bf16 vs fp32 class map, % pixels equal | ${R[bf16_gpu]:-n/a} | ${R[bf16_cpu]} | | >= 99.9 %$( [ -n "${R[gpu_vs_cpu_map]:-}" ] && echo "; GPU vs CPU fp32 map ${R[gpu_vs_cpu_map]} %") |"
  echo
  echo "checks: $([ $ok = 1 ] && echo "all hold" || echo "SOME FAIL"); $((SECONDS - T0)) s in all"
} | tee "$W/table.md"
[ $ok = 1 ]
