#!/usr/bin/env bash
# Compositing a full Sentinel-2 tile (10980 x 10980 px, 6 dates) as users have it: COGs (STAC) and SAFE with JPEG
# 2000 bands (Copernicus Data Space), on 1 and 2 ranks. For each run: the compute phase (reading and compositing,
# then compressing the output's chunks and writing them into the HDF5 file: "pack", per rank), the whole run, bytes written by every rank (/usr/bin/time %O) against the output's size, and peak memory per rank;
# against the floors of the same files measured in the same script: every input read once with GDAL
# (bench_read_floor) and the output compressed and written once (bench_write_floor), divided by the rank count.
# Results are recorded in bench/RESULTS.md.
#
#   bench/full_tile_bench.sh       # ~40 minutes on 2 cores, ~8 GB of inputs generated once into bench/work/full_tile
#
# Environment: BENCH_WORK (default bench/work), SIZE (tile edge, default 10980), DATES (default 6), S2CROP, BUILD_DIR,
# MPIEXEC, LAYOUTS (default "stac safe"), RANKS (default "1 2").
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$root/build}"
S2CROP="${S2CROP:-$BUILD_DIR/s2crop}"
MPIEXEC="${MPIEXEC:-mpirun}"
SIZE="${SIZE:-10980}"
DATES="${DATES:-6}"
LAYOUTS="${LAYOUTS:-stac safe}"
RANKS="${RANKS:-1 2}"
W="${BENCH_WORK:-$here/work}/full_tile_${SIZE}_${DATES}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
die() { printf 'full_tile_bench: %s\n' "$*" >&2; exit 1; }
[ -x "$S2CROP" ] || die "no s2crop binary at $S2CROP"
ninja -C "$BUILD_DIR" bench_read_floor bench_write_floor > /dev/null || die "build bench_read_floor/bench_write_floor"
mkdir -p "$W"

if [ ! -f "$W/region/.complete" ]; then
  rm -rf "$W/region"
  echo "== generating a $SIZE px tile with $DATES dates as COGs and SAFE/JP2 (once)"
  "$MPIEXEC" -n 2 --oversubscribe "$S2CROP" synth --out "$W/region" --tiles 33UVP --size "$SIZE" \
    --days $((5 * DATES)) --revisit 5 --gap-fraction 0 --cloud-cover 0.3 --start 2022-06-01 --layout both --safe-jp2 \
    > "$W/synth.log" 2>&1 || { tail "$W/synth.log"; die "synth failed"; }
  touch "$W/region/.complete"
fi

printf '\n%-6s %5s | %8s %8s %8s | %8s %8s %6s | %9s %9s %5s | %s\n' layout ranks compute "(pack)" \
  whole "floor r" "floor w" ratio written output x "peak MiB/rank"
for layout in $LAYOUTS; do
  "$S2CROP" composite --input "$W/region/$layout" --output "$W/x.h5" --list > "$W/plan_$layout.tsv" 2> /dev/null
  # One thread, as a rank bound to its core by mpirun has: GDAL decodes several JPEG 2000 tiles of one request in
  # parallel on every core it sees (GDAL_NUM_THREADS=ALL_CPUS), which would halve this floor on 2 cores.
  read_floor=$(GDAL_NUM_THREADS=1 "$BUILD_DIR/bench/bench_read_floor" "$W/plan_$layout.tsv" | grep -v checksum | sed -n 's/.* \([0-9.]*\) s, .*/\1/p' | tail -1)
  write_floor=""
  for ranks in $RANKS; do
    out="$W/out_${layout}_$ranks.h5"
    rm -rf "$out" "$out".parts "$out".lock
    /usr/bin/time -f "%e %O" -o "$W/time_${layout}_$ranks" "$MPIEXEC" -n "$ranks" --oversubscribe "$S2CROP" composite \
      --input "$W/region/$layout" --output "$out" > "$W/log_${layout}_$ranks" 2>&1 \
      || { tail "$W/log_${layout}_$ranks"; die "composite $layout on $ranks rank(s) failed"; }
    log="$W/log_${layout}_$ranks"
    compute=$(sed -n 's/.*composited [0-9]* blocks in \([0-9.]*\) s.*/\1/p' "$log")
    pack=$(sed -n 's/.*compressing the blocks and writing their chunks took \([0-9.]*\) s per rank.*/\1/p' "$log")
    peak=$(sed -n 's/.*peak memory per rank after compositing (MiB): //p' "$log")
    read -r whole blocks < "$W/time_${layout}_$ranks"
    size=$(stat -c %s "$out")
    [ -n "$write_floor" ] ||
      write_floor=$("$BUILD_DIR/bench/bench_write_floor" "$out" "$W/write_floor.bin" | sed -n 's/.* in \([0-9.]*\) s$/\1/p')
    awk -v l="$layout" -v r="$ranks" -v c="$compute" -v p="$pack" -v w="$whole" -v fr="$read_floor" \
      -v fw="$write_floor" -v b="$blocks" -v s="$size" -v m="$peak" 'BEGIN {
      floor = (fr + fw) / r
      printf "%-6s %5d | %7.1fs %7.1fs %7.1fs | %7.1fs %7.1fs %5.2fx | %7.2fGB %7.2fGB %4.2fx | %s\n",
        l, r, c, p, w, fr / r, fw / r, w / floor, b * 512 / 1e9, s / 1e9, b * 512 / s, m }'
    grep -h "block size\|memory per rank up to about" "$log" | sed 's/^[^]]*] /    /' | head -2
  done
done
echo
echo "floor r / floor w: reading every input once (GDAL, one process) and compressing + writing the output once,"
echo "divided by the ranks; ratio = whole run / (floor r + floor w); x = bytes written / output size."
