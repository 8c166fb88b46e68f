#!/usr/bin/env bash
# Builds s2crop against Debian 13 (trixie)'s LibTorch 2.x inside a debootstrap chroot on this machine and runs its
# unit tests there, on the CPU device: the proof that the code builds with any LibTorch from 1.13 (Debian 12, what
# CI uses) to 2.x. Not part of CI (it downloads and installs about 2 GB into the chroot and builds everything once).
#
#   bash scripts/libtorch2-check.sh [CHROOT_DIR]     (root; default CHROOT_DIR: build-libtorch2/chroot)
#
# The chroot is kept between runs (packages are installed once); the working tree (tracked and untracked files that
# git does not ignore) is copied into it each run, built in /s2crop/build there with ccache. Environment:
#   JOBS=N               build jobs (default: all cores)
#   MIRROR=URL           Debian mirror (default http://deb.debian.org/debian)
#   UNIT_FILTER=REGEX    ctest -R filter for the unit tests (default: all tests labelled unit)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHROOT="$(realpath -m "${1:-$ROOT/build-libtorch2/chroot}")"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
JOBS="${JOBS:-$(nproc)}"
[ "$(id -u)" -eq 0 ] || { echo "libtorch2-check: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
command -v debootstrap > /dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }

PACKAGES=(build-essential cmake ninja-build pkg-config ccache git
  openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools libgdal-dev gdal-bin libboost-program-options-dev
  libpng-dev libgtest-dev googletest libtorch-dev procps)

if [ ! -x "$CHROOT/usr/bin/apt-get" ]; then
  echo "libtorch2-check: debootstrap trixie into $CHROOT"
  mkdir -p "$CHROOT"
  debootstrap --variant=minbase trixie "$CHROOT" "$MIRROR" > "$CHROOT.debootstrap.log" 2>&1 \
    || { tail -30 "$CHROOT.debootstrap.log"; exit 1; }
fi

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2> /dev/null || true; done
}
trap cleanup EXIT
bind() {  # bind $1 onto the same path in the chroot
  mkdir -p "$CHROOT$1"
  mount --bind "$1" "$CHROOT$1"
  mounted+=("$CHROOT$1")
}
mount -t proc proc "$CHROOT/proc" && mounted+=("$CHROOT/proc")
bind /dev
bind /dev/pts
bind /sys
mkdir -p "$CHROOT/dev/shm"
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"

in_chroot() { chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 CCACHE_DIR=/root/.ccache "$@"; }

missing=$(in_chroot dpkg-query -W -f='${Package} ${Status}\n' "${PACKAGES[@]}" 2>&1 | grep -vc "install ok installed" || true)
if [ "$missing" != 0 ]; then
  echo "libtorch2-check: apt-get install into the chroot (${#PACKAGES[@]} packages and their dependencies)"
  in_chroot apt-get update -qq
  in_chroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" \
    > "$CHROOT.apt.log" 2>&1 || { tail -30 "$CHROOT.apt.log"; exit 1; }
fi
echo "libtorch2-check: LibTorch $(in_chroot dpkg-query -W -f='${Version}' libtorch-dev) from trixie," \
  "g++ $(in_chroot g++ -dumpversion), cmake $(in_chroot cmake --version | head -1 | awk '{print $3}')"

echo "libtorch2-check: copying the working tree into $CHROOT/s2crop"
mkdir -p "$CHROOT/s2crop/src"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf -) | (cd "$CHROOT/s2crop/src" && rm -rf ./* && tar -m -xf -)  # -m: fresh mtimes, so ninja rebuilds what changed (ccache keeps it fast)

echo "libtorch2-check: building (NCCL off: trixie's libtorch-dev is CPU-only) with $JOBS jobs"
in_chroot cmake -S /s2crop/src -B /s2crop/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DS2CROP_WITH_NCCL=OFF \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache > "$CHROOT.cmake.log" 2>&1 \
  || { tail -40 "$CHROOT.cmake.log"; exit 1; }
grep -i "torch" "$CHROOT.cmake.log" | head -5 || true
in_chroot ninja -C /s2crop/build -j "$JOBS" > "$CHROOT.build.log" 2>&1 \
  || { grep -B2 -A12 "error" "$CHROOT.build.log" | head -80; exit 1; }
echo "libtorch2-check: build OK; running the unit tests"
in_chroot sh -c "cd /s2crop/build && ctest -L unit -j $JOBS --output-on-failure ${UNIT_FILTER:+-R '$UNIT_FILTER'}" \
  > "$CHROOT.ctest.log" 2>&1 && rc=0 || rc=$?
tail -15 "$CHROOT.ctest.log"
in_chroot /s2crop/build/s2crop --version 2> /dev/null | head -3 || true
exit $rc
