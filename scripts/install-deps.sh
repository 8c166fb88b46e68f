#!/usr/bin/env bash
# Installs s2crop's build and run dependencies from Debian/Ubuntu packages (needs root or sudo).
# Idempotent: does nothing when everything is already there.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  openmpi-bin libopenmpi-dev            # MPI (mpirun, mpicxx)
  libhdf5-openmpi-dev hdf5-tools        # parallel HDF5 (MPI-IO) + h5dump/h5diff
  libgdal-dev gdal-bin                  # GDAL/OGR: GeoTIFF, COG, JPEG2000, GeoPackage
  libboost-program-options-dev
  libpng-dev
  libdeflate-dev                        # fast DEFLATE for the output chunks (optional: zlib otherwise)
  libgtest-dev googletest
  libtorch-dev                          # LibTorch (CPU) for the model stages
  libopencv-ml-dev                      # OpenCV's RTrees: the random forest of train --model rf
  libopenblas0-pthread                  # optimised BLAS behind LibTorch (Debian defaults to reference BLAS: ~3x slower)
  python3-torch                         # the PyTorch baseline of the training/inference benchmarks
  python3-numpy python3-gdal python3-h5py   # NumPy reference, test checks (called as /usr/bin/python3)
  python3-xarray python3-netcdf4 python3-h5netcdf   # the readers outputs must open in (test_output_readers.sh)
  procps time                           # pkill / peak-memory measurements in tests and benches
  clang libclang-rt-14-dev              # libFuzzer + sanitizers for the fuzz targets (scripts/fuzz.sh, fuzz smoke test)
  slurm-wlm munge                       # a real local Slurm cluster for the Slurm test (tests/slurm_cluster.sh)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
