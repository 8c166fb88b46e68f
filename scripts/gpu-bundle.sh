#!/usr/bin/env bash
# Prepares what a GPU machine without MPI, HDF5 or Boost needs to build and run s2crop's model stages
# (scripts/gpu-check.sh): the Debian packages of Open MPI, parallel HDF5 and Boost.Program_options with their run-time
# libraries, downloaded here into ${1:-gpu-bundle} (git-ignored), at most 60 MiB. The GPU machine brings the rest:
# compiler, CMake, ninja, CUDA with NCCL and LibTorch (inside its PyTorch). GDAL is not needed there: gpu-check.sh
# builds with -DS2CROP_WITH_GDAL=OFF (the model stages only).
#
#   bash scripts/gpu-bundle.sh [DIR]
#
# gpu-check.sh unpacks the packages into a staging folder and copies into / only the files the machine does not have
# (cp --no-clobber: nothing of the machine's own is replaced), so Open MPI, its wrappers and h5pcc find themselves at
# the paths Debian built them for.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/gpu-bundle}")"
LIMIT_MIB=60

# Build time: headers, CMake/pkg-config files, compiler wrappers. Run time: mpirun and its plugins, the libraries the
# s2crop binary, the Open MPI plugins and h5pcc need (ldd, mapped to packages), minus the C/C++ runtime every machine
# has (libc6, libstdc++6, libgcc-s1, zlib1g).
PACKAGES=(
  openmpi-bin openmpi-common libopenmpi3 libopenmpi-dev
  libpmix2 libhwloc15 libevent-core-2.1-7 libevent-pthreads-2.1-7 libfabric1 libucx0 libibverbs1 ibverbs-providers
  librdmacm1 libpsm2-2 libpsm-infinipath1 libnl-3-200 libnl-route-3-200 libnuma1 libmunge2 libudev1
  libhdf5-openmpi-103-1 libhdf5-openmpi-hl-100 libhdf5-openmpi-dev hdf5-helpers libsz2 libaec0
  libcurl4 libnghttp2-14 libssh2-1 libpsl5 librtmp1 libldap-2.5-0 libsasl2-2 libbrotli1 libzstd1
  libboost-program-options1.74.0 libboost-program-options1.74-dev libboost1.74-dev zlib1g-dev
)

mkdir -p "$OUT/debs"
rm -f "$OUT"/debs/*.deb
echo "gpu-bundle: downloading ${#PACKAGES[@]} Debian packages into $OUT/debs"
(cd "$OUT/debs" && apt-get download -qq "${PACKAGES[@]}" > "$OUT/download.log" 2>&1) || {
  # An apt index older than the mirror: refresh it once.
  apt-get update -qq > /dev/null 2>&1 || true
  (cd "$OUT/debs" && apt-get download -qq "${PACKAGES[@]}" > "$OUT/download.log" 2>&1) \
    || { cat "$OUT/download.log"; exit 1; }
}
n=$(ls "$OUT"/debs/*.deb | wc -l)
[ "$n" -eq "${#PACKAGES[@]}" ] || { echo "gpu-bundle: expected ${#PACKAGES[@]} packages, got $n" >&2; exit 1; }
bytes=$(du -cb "$OUT"/debs/*.deb | tail -1 | cut -f1)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
printf '%s\n' "${PACKAGES[@]}" > "$OUT/PACKAGES"
echo "gpu-bundle: $n packages, $mib MiB (limit $LIMIT_MIB MiB)"
awk -v b="$bytes" -v l="$LIMIT_MIB" 'BEGIN { exit !(b <= l * 1048576) }' \
  || { echo "gpu-bundle: the bundle is over $LIMIT_MIB MiB" >&2; exit 1; }
