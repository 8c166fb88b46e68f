#!/usr/bin/env bash
# Compositing benchmark: s2crop composite throughput (acquisition-band-pixels per second per rank) on one demo-size
# tile, as ratios measured in the same run against
#   (a) the I/O floor: reading the same input files whole with GDAL (bench_read_floor), and
#   (b) the NumPy reference compositor (bench/numpy_composite.py) on the same plan, checked to give the same result,
# plus the 1 -> 2 rank speed-up and peak memory per rank for several block sizes, tile sizes and series lengths.
# Results are recorded in bench/RESULTS.md.
#
#   bench/composite_bench.sh            # ~6-8 minutes on 2 cores; inputs are generated once into bench/work/
#
# Environment: BENCH_WORK (scratch and cached inputs, default bench/work), S2CROP (binary, default build/s2crop),
# BUILD_DIR (default build), MPIEXEC (default mpirun), PYTHON (default /usr/bin/python3: Debian's numpy/gdal/h5py),
# REPEAT (timed repetitions, best taken, default 3), NUMPY_REPEAT (default 2).
#
# The page cache cannot be dropped without privileges, so every timing is taken WARM: the inputs are read once
# before timing, and every measurement is the best of REPEAT runs. The floor therefore measures decoding (DEFLATE
# + predictor) and GDAL overhead, not disk speed - which is what the stage competes with on a warm node.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
W="${BENCH_WORK:-$here/work}"
mkdir -p "$W"
W="$(cd "$W" && pwd)"
BUILD_DIR="${BUILD_DIR:-$root/build}"
S2CROP="${S2CROP:-$BUILD_DIR/s2crop}"
MPIEXEC="${MPIEXEC:-mpirun}"
PYTHON="${PYTHON:-/usr/bin/python3}"
REPEAT="${REPEAT:-3}"
NUMPY_REPEAT="${NUMPY_REPEAT:-2}"
TILE=33UVP
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$root"

say() { printf '\n== %s\n' "$*"; }
die() { printf 'composite_bench: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
[ -x "$S2CROP" ] || die "no s2crop binary at $S2CROP (build it: ninja -C build)"
"$PYTHON" -c 'import numpy, h5py; from osgeo import gdal' 2>/dev/null ||
  die "$PYTHON lacks numpy/h5py/gdal (Debian: python3-numpy python3-h5py python3-gdal)"

# ---------------------------------------------------------------- the read-floor binary
FLOOR="$BUILD_DIR/bench/bench_read_floor"
if [ -f "$BUILD_DIR/build.ninja" ] && grep -q 'bench_read_floor' "$BUILD_DIR/build.ninja"; then
  ninja -C "$BUILD_DIR" bench_read_floor >/dev/null
else
  # The main build has S2CROP_BUILD_BENCH=OFF: build the bench on its own against its libs2crop_core.a, without
  # touching the main build's configuration.
  FLOOR="$W/build/bench_read_floor"
  ninja -C "$BUILD_DIR" s2crop_core >/dev/null
  [ -f "$W/build/build.ninja" ] ||
    cmake -S "$here" -B "$W/build" -G Ninja -DS2CROP_BUILD_DIR="$BUILD_DIR" >"$W/build.log" 2>&1 ||
    die "configuring the bench failed, see $W/build.log"
  ninja -C "$W/build" >>"$W/build.log" 2>&1 || die "building bench_read_floor failed, see $W/build.log"
fi

# ---------------------------------------------------------------- (1) inputs, generated once
synth() {  # name size days
  local dir="$W/$1"
  if [ ! -f "$dir/.complete" ]; then
    say "generating $1: synth --tiles $TILE --size $2 --days $3"
    rm -rf "$dir"
    "$MPIEXEC" --oversubscribe -np 2 "$S2CROP" synth --out "$dir" --tiles "$TILE" --size "$2" --days "$3" \
      >"$W/synth_$1.log" 2>&1 || die "synth failed, see $W/synth_$1.log"
    touch "$dir/.complete"
  fi
}
synth region 1098 365
synth region_552 552 365
synth region_182d 1098 182

# ---------------------------------------------------------------- (2) the plan
"$S2CROP" composite --input "$W/region" --output "$W/out/r1.h5" --list >"$W/plan.tsv" 2>"$W/list.log" ||
  die "composite --list failed, see $W/list.log"
n_acq=$(grep -vc '^#' "$W/plan.tsv")

# ---------------------------------------------------------------- (3) warm the page cache
say "warming the page cache (cannot drop it without privileges: all timings below are warm, best of $REPEAT)"
find "$W/region" "$W/region_552" "$W/region_182d" -type f -exec cat {} + >/dev/null
mkdir -p "$W/out"

# ---------------------------------------------------------------- helpers
best() { sort -g | head -1; }
# composite NP BLOCK REGION OUT [extra args]: runs s2crop composite, leaves compute s, wall s, peak MiB in globals.
composite() {
  local np=$1 block=$2 region=$3 out=$4
  shift 4
  local log="$W/out/$(basename "$out" .h5).log" t0 t1
  t0=$(now)
  "$MPIEXEC" --oversubscribe -np "$np" "$S2CROP" composite --input "$W/$region" --output "$out" --overwrite \
    --block-size "$block" "$@" >"$log" 2>&1 || die "s2crop composite failed, see $log"
  t1=$(now)
  C_WALL=$(echo "$t1 - $t0" | bc -l)
  C_COMPUTE=$(sed -n 's/.*composited [0-9]* blocks in \([0-9.]*\) s.*/\1/p' "$log")
  C_PEAK=$(sed -n 's/.*peak memory per rank after compositing (MiB): //p' "$log")
  C_BLOCKS=$(sed -n 's/.*composited \([0-9]*\) blocks.*/\1/p' "$log")
  [ -n "$C_COMPUTE" ] && [ -n "$C_PEAK" ] || die "no timing/memory line in $log"
}

# ---------------------------------------------------------------- (4) read floor
say "read floor: bench_read_floor (whole bands, GDAL, 1 process), best of $REPEAT"
floor_line=$("$FLOOR" "$W/plan.tsv" --repeat "$REPEAT" 2>/dev/null)
echo "$floor_line"
floor_s=$(sed -n 's/.*, \([0-9.]*\) s, .*/\1/p' <<<"$floor_line")
blockwise_line=$("$FLOOR" "$W/plan.tsv" --repeat "$REPEAT" --block-size 512 2>/dev/null)
echo "$blockwise_line"
blockwise_s=$(sed -n 's/.*, \([0-9.]*\) s, .*/\1/p' <<<"$blockwise_line")
# The machine's own 2-process ceiling: two floors at once (each should take about as long as one alone).
"$FLOOR" "$W/plan.tsv" 2>/dev/null >"$W/floor_a.txt" &
"$FLOOR" "$W/plan.tsv" 2>/dev/null >"$W/floor_b.txt" &
wait
pair_s=$(sed -n 's/.*, \([0-9.]*\) s, .*/\1/p' "$W/floor_a.txt" "$W/floor_b.txt" | sort -g | tail -1)
echo "two read floors at once: slower one $pair_s s (machine ceiling for 2 ranks: 2 x one alone / this)"

# ---------------------------------------------------------------- (5) (6) s2crop composite, 1 and 2 ranks
for np in 1 2; do
  say "s2crop composite, $np rank(s), block 512, best of $REPEAT"
  cs=() ws=()
  for i in $(seq "$REPEAT"); do
    composite "$np" 512 region "$W/out/r$np.h5"
    printf '  run %d: compute %.3f s, wall %.2f s, peak MiB per rank: %s\n' "$i" "$C_COMPUTE" "$C_WALL" "$C_PEAK"
    cs+=("$C_COMPUTE") ws+=("$C_WALL")
  done
  eval "compute_$np=$(printf '%s\n' "${cs[@]}" | best)"
  eval "wall_$np=$(printf '%s\n' "${ws[@]}" | best)"
  eval "peak_$np=\"$C_PEAK\""
  blocks=$C_BLOCKS
done
# Every dataset must be equal (the attributes name the output file, so they differ by design).
"$PYTHON" - "$W/out/r1.h5" "$W/out/r2.h5" <<'EOF' || die "the 2-rank output differs from the 1-rank output"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
names = []
a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
bad = [n for n in names if n not in b or not np.array_equal(a[n][...], b[n][...])]
print("  2-rank output: " + (f"DIFFERS in {bad}" if bad else f"all {len(names)} datasets identical to the 1-rank output"))
sys.exit(1 if bad else 0)
EOF

# ---------------------------------------------------------------- (7) NumPy reference, checked
say "NumPy reference (bench/numpy_composite.py), best of $NUMPY_REPEAT, checked against the 1-rank output"
ns=()
for i in $(seq "$NUMPY_REPEAT"); do
  out=$("$PYTHON" "$here/numpy_composite.py" "$W/plan.tsv" --compare "$W/out/r1.h5") || {
    echo "$out"
    die "NumPy reference and s2crop DIFFER"
  }
  echo "$out" | sed 's/^/  /'
  grep -q '^identical to' <<<"$out" || die "NumPy reference printed no 'identical' verdict"
  ns+=("$(sed -n 's/^numpy reference: .* tile(s), \([0-9.]*\) s, .*/\1/p' <<<"$out")")
done
numpy_s=$(printf '%s\n' "${ns[@]}" | best)

# ---------------------------------------------------------------- (9) memory
say "memory per rank vs block size, tile size and series length (1 rank; 2 ranks for block 512)"
mem_rows=()
mem_run() {  # label np block region
  composite "$2" "$3" "$4" "$W/out/mem.h5"
  local acq
  acq=$(sed -n 's/.*plan: .* tile(s), \([0-9]*\) acquisitions.*/\1/p' "$W/out/mem.log")
  mem_rows+=("$1|$2|$3|$4|$acq|$C_BLOCKS|$C_PEAK")
  printf '  %-28s ranks %d block %4d: %s acquisitions, %s blocks, peak MiB per rank: %s\n' "$1" "$2" "$3" "$acq" \
    "$C_BLOCKS" "$C_PEAK"
}
mem_run "1098 px, 365 d" 1 256 region
mem_run "1098 px, 365 d" 1 512 region
mem_run "1098 px, 365 d" 1 1024 region
mem_run "552 px, 365 d" 1 512 region_552
mem_run "1098 px, 182 d" 1 512 region_182d
mem_run "1098 px, 365 d" 2 512 region

# ---------------------------------------------------------------- (8) the table
say "results"
# acquisition-band-pixels, counted as the stage does: acquisitions x bands x tile pixels (10 m)
abp=$(awk -F'\t' '$1=="#tile"{w=$3;h=$4} $1!~/^#/{n+=(NF-7)*w*h} END{printf "%.0f", n}' "$W/plan.tsv")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
"$PYTHON" - "$abp" "$floor_s" "$blockwise_s" "$compute_1" "$wall_1" "$compute_2" "$wall_2" "$numpy_s" \
  "$pair_s" "$n_acq" "$blocks" "$(nproc)" "$cpu" "${mem_rows[@]}" <<'EOF'
import sys
a = sys.argv[1:]
abp, floor, blockwise, c1, w1, c2, w2, npy, pair = map(float, a[:9])
n_acq, blocks, ncpu, cpu = a[9], a[10], a[11], a[12]
mem = [r.split("|") for r in a[13:]]
tp = lambda s, ranks=1: abp / s / ranks
print(f"tile 33UVP 1098 x 1098 px (10 m), {n_acq} acquisitions x 10 bands = {abp:.4g} acquisition-band-pixels; "
      f"{blocks} blocks of 512; {ncpu} cores ({cpu}); warm page cache, best of repeated runs")
print()
print("| measurement | time (s) | acquisition-band-pixels/s per rank (per core) |")
print("|---|---:|---:|")
print(f"| read floor: GDAL whole-band reads of all inputs, 1 process | {floor:.2f} | {tp(floor):.3g} |")
print(f"| GDAL block-wise reads (512) of all inputs, 1 process | {blockwise:.2f} | {tp(blockwise):.3g} |")
print(f"| s2crop composite, 1 rank, compute phase | {c1:.2f} | {tp(c1):.3g} |")
print(f"| s2crop composite, 1 rank, whole run (incl. planning, HDF5 write) | {w1:.2f} | {tp(w1):.3g} |")
print(f"| s2crop composite, 2 ranks, compute phase | {c2:.2f} | {tp(c2, 2):.3g} |")
print(f"| s2crop composite, 2 ranks, whole run | {w2:.2f} | {tp(w2, 2):.3g} |")
print(f"| NumPy reference compositor, 1 process (identical result) | {npy:.2f} | {tp(npy):.3g} |")
print()
r_floor, r_numpy, r_speed = c1 / floor, npy / c1, c1 / c2
rows = [("s2crop (1 rank) time / read-floor time", r_floor, "<= 1.5", r_floor <= 1.5),
        ("NumPy time / s2crop (1 rank) time, per core", r_numpy, ">= 5", r_numpy >= 5),
        ("speed-up 1 -> 2 ranks (compute phase)", r_speed, ">= 1.7", r_speed >= 1.7)]
print("| ratio | measured | goal | |")
print("|---|---:|---:|---|")
for name, v, goal, ok in rows:
    print(f"| {name} | {v:.2f}x | {goal} | {'PASS' if ok else 'MISS'} |")
print(f"| (speed-up 1 -> 2 ranks, whole run) | {w1 / w2:.2f}x | | |")
print(f"| (machine ceiling: 2 read floors at once vs one) | {2 * floor / pair:.2f}x | | |")
print()
print("| tile, series | ranks | block | acquisitions | blocks | peak RSS per rank after compositing (MiB) |")
print("|---|---:|---:|---:|---:|---|")
for label, np_, block, region, acq, nblocks, peak in mem:
    print(f"| {label} | {np_} | {block} | {acq} | {nblocks} | {peak} |")
peak = {(r[0], r[1], r[2]): max(float(v) for v in r[6].split()) for r in mem}
b256, b512, b1024 = (peak[("1098 px, 365 d", "1", b)] for b in ("256", "512", "1024"))
small, half = peak[("552 px, 365 d", "1", "512")], peak[("1098 px, 182 d", "1", "512")]
grows = b256 < b512 < b1024
bounded = small <= b512 * 1.1 and half <= b512 * 1.1
print()
print(f"memory follows block size (256 < 512 < 1024: {b256:.0f} < {b512:.0f} < {b1024:.0f} MiB): "
      f"{'PASS' if grows else 'MISS'}")
print(f"memory not driven by tile size or dates (block 512: 1098 px 365 d {b512:.0f}, 552 px {small:.0f}, "
      f"182 d {half:.0f} MiB, each <= 1.1 x the first): {'PASS' if bounded else 'MISS'}")
EOF
