#!/usr/bin/env bash
# Configures and builds s2crop into ${BUILD_DIR:-build} (Release, Ninja). Extra arguments go to cmake.
# Where CUDA with NCCL is installed (${CUDA_ROOT:-/usr/local/cuda}), the NCCL gradient communicator is built in
# (it falls back to MPI at run time on machines without a GPU); S2CROP_WITH_NCCL=OFF turns it off.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
CUDA_ROOT="${CUDA_ROOT:-/usr/local/cuda}"
NCCL=OFF
[ -f "$CUDA_ROOT/include/nccl.h" ] && [ -f "$CUDA_ROOT/include/cuda_runtime.h" ] && NCCL=ON
NCCL="${S2CROP_WITH_NCCL:-$NCCL}"
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DS2CROP_WITH_NCCL="$NCCL" \
  -DS2CROP_CUDA_ROOT="$CUDA_ROOT" "$@" > "$BUILD_DIR.cmake.log" 2>&1 \
  || { cat "$BUILD_DIR.cmake.log"; exit 1; }
echo "build: NCCL communicator $NCCL"
ninja -C "$BUILD_DIR" -j "${JOBS:-$(nproc)}"
