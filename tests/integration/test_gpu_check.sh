#!/usr/bin/env bash
# scripts/gpu-check.sh on this machine: without a GPU it runs its CPU side (LSTM and U-Net training, 1 vs 2 ranks,
# classify, bf16 vs fp32 maps) on inputs it writes with h5py alone, prints its one table and exits 0 only when every
# check holds; scripts/gpu-bundle.sh prepares the GPU machine's MPI/HDF5/Boost packages within 60 MiB.
source "$(dirname "$0")/../lib.sh"
S2CROP_GPU_CHECK_CPU_ONLY=1 S2CROP="$S2CROP" PYTHON="$PY" bash "$S2CROP_SOURCE_DIR/scripts/gpu-check.sh" "$WORK/check" \
  > "$WORK/check.log" 2>&1 || { cat "$WORK/check.log"; fail "gpu-check.sh failed"; }
for row in "(1) LSTM" "(2) data parallel" "(3) classify" "(4) U-Net" "(5) bf16 vs fp32" "checks: all hold"; do
  grep -qF "$row" "$WORK/check.log" || { cat "$WORK/check.log"; fail "the table has no row '$row'"; }
done
grep -q "GPU none (CPU side only)" "$WORK/check.log" || fail "the table does not say it ran without a GPU"
"$PY" - "$WORK/check/table.md" <<'PY' || fail "table values"
import re, sys
t = open(sys.argv[1]).read()
rows = {r.split("|")[1].strip()[:3]: [c.strip() for c in r.split("|")[1:-1]] for r in t.splitlines() if r.startswith("| (")}
assert float(rows["(1)"][2]) > 0 and float(rows["(3)"][2]) > 0 and float(rows["(4)"][2]) > 0, rows
assert float(re.search(r"loss rel. diff ([0-9.e+-]+)", rows["(2)"][4]).group(1)) <= 1e-3
# (5) on the CPU: the agreement where the CPU has bf16, the refusal where it has not.
assert rows["(5)"][2] == "refused (CPU without bf16)" or float(rows["(5)"][2]) >= 99.9, rows["(5)"]
print("ok: CPU samples/s", rows["(1)"][2], "pixels/s", rows["(3)"][2], "patches/s", rows["(4)"][2],
      "bf16", rows["(5)"][2])
PY
pass "gpu-check.sh CPU side"

if bash "$S2CROP_SOURCE_DIR/scripts/gpu-bundle.sh" "$WORK/bundle" > "$WORK/bundle.log" 2>&1; then
  cat "$WORK/bundle.log"
  size=$(du -cb "$WORK"/bundle/debs/*.deb | tail -1 | cut -f1)
  [ "$size" -le $((60 * 1024 * 1024)) ] || fail "bundle is $size bytes, over 60 MiB"
  for pkg in libopenmpi-dev libhdf5-openmpi-dev libboost-program-options1.74-dev openmpi-bin; do
    ls "$WORK"/bundle/debs/${pkg}_*.deb > /dev/null 2>&1 || fail "bundle lacks $pkg"
  done
  pass "gpu-bundle.sh: $((size / 1024 / 1024)) MiB"
elif grep -qi "temporary failure\|could not resolve\|failed to fetch\|unable to locate" "$WORK/bundle.log"; then
  cat "$WORK/bundle.log"
  echo "SKIP (bundle part): no Debian mirror reachable to download the bundle's packages"
else
  cat "$WORK/bundle.log"; fail "gpu-bundle.sh failed"
fi
