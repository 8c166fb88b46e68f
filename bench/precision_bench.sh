#!/usr/bin/env bash
# Inference precision on the CPU: `classify --precision bf16` against fp32 in the same script, the same LSTM
# (128 x 2, trained briefly on tests/make_training_set.py data) over the same composite tile (scripts/gpu_check_data.py,
# 16 x 16 px parcels of the set's series), alternating runs. Prints pixels/s of each, the ratio and the share of
# pixels whose class agrees. Results go to bench/RESULTS.md by hand.
#   bench/precision_bench.sh [WORK_DIR]    env: SIZE (tile edge, default 768) THREADS (default: all cores) REPEAT (2)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
S2CROP="${S2CROP:-$ROOT/build/s2crop}"
WORK="${1:-$(mktemp -d /tmp/s2crop-precision-bench.XXXXXX)}"
SIZE="${SIZE:-768}" THREADS="${THREADS:-$(nproc)}" REPEAT="${REPEAT:-2}"
PY=/usr/bin/python3
mkdir -p "$WORK" && cd "$WORK"
[ -f set.h5 ] || "$PY" "$ROOT/tests/make_training_set.py" set.h5 --samples 20000 --classes 12 > /dev/null
[ -f comp.h5 ] || "$PY" "$ROOT/scripts/gpu_check_data.py" composites comp.h5 --set set.h5 --tile T:"$SIZE" > /dev/null
[ -f model.h5 ] || "$S2CROP" train --samples set.h5 --output model.h5 --hidden 128 --layers 2 --epochs 2 \
  --val-fraction 0 --patience 0 > train.log 2>&1
echo "bench: $SIZE x $SIZE px, LSTM 128 x 2, $THREADS thread(s), $(grep -m1 -o 'avx512_bf16\|amx_bf16' /proc/cpuinfo || echo 'no native bf16') on this CPU"
run() {  # run PRECISION -> pixels/s
  rm -rf "map_$1.h5" "map_$1.h5.parts"
  "$S2CROP" classify --composites comp.h5 --model model.h5 --output "map_$1.h5" --device cpu --precision "$1" \
    --threads "$THREADS" --block-size 512 2>&1 | grep -o '[0-9.e+]* pixels/s' | head -1 | awk '{print $1}'
}
declare -A best=([fp32]=0 [bf16]=0)
for r in $(seq "$REPEAT"); do
  for p in fp32 bf16; do
    v=$(run $p)
    echo "  run $r $p: $v pixels/s"
    best[$p]=$(awk -v a="${best[$p]}" -v b="$v" 'BEGIN { print (b > a ? b : a) }')
  done
done
agree=$("$PY" -c "
import h5py
a = h5py.File('map_fp32.h5', 'r')['tiles/T/class'][()]; b = h5py.File('map_bf16.h5', 'r')['tiles/T/class'][()]
print(f'{100 * (a == b).mean():.3f}')")
echo "fp32 ${best[fp32]} pixels/s, bf16 ${best[bf16]} pixels/s: bf16/fp32 $(awk -v a="${best[bf16]}" -v b="${best[fp32]}" 'BEGIN { printf "%.2f", a / b }')x; classes agree on $agree % of pixels"
