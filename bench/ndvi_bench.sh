#!/usr/bin/env bash
# NDVI model prediction throughput next to the crop-type classifier's, same machine, 1 rank, same thread count:
#   ndvi predict  pixels/s per rank of 's2crop ndvi predict' (gap-fill, bidirectional, and forecast) over a composite
#                 tile: block reads, NDVI, features and model, the same per-block machinery as classify
#   ndvi series   the same models' forward over the in-memory series of a sample set (as logged by 'ndvi evaluate')
#   classifier    pixels/s per rank of 's2crop classify' over the same composite tile (block reads included)
# Models are barely trained (a few steps): throughput does not depend on the weights. Results go to
# bench/RESULTS.md by hand.   bench/ndvi_bench.sh [WORK_DIR]    env: THREADS (1) HIDDEN (64) SIZE (480)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
S2CROP="${S2CROP:-$ROOT/build/s2crop}"
WORK="${1:-$(mktemp -d /tmp/s2crop-ndvi-bench.XXXXXX)}"
THREADS="${THREADS:-1}" HIDDEN="${HIDDEN:-64}" SIZE="${SIZE:-480}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
mkdir -p "$WORK"
cd "$WORK"
[ -f c.h5 ] || { mpirun -np 2 "$S2CROP" synth --out region --tiles 33UVP --size "$SIZE" --days 365 --seed 7 > synth.log 2>&1
                 mpirun -np 2 "$S2CROP" composite --input region/stac --output c.h5 > c.log 2>&1; }
[ -f s.h5 ] || mpirun -np 2 "$S2CROP" extract --composites c.h5 --labels region/parcels.gpkg --per-class 0 \
                 --border 0 --output s.h5 > e.log 2>&1
n=$(/usr/bin/python3 -c "import h5py; print(h5py.File('s.h5')['x'].shape[0])")
echo "bench: $(nproc --all) cores, $THREADS thread(s), tile ${SIZE}x${SIZE} px, $n labelled series"
for task in gapfill forecast; do
  "$S2CROP" ndvi train --task "$task" --horizon 2 --samples s.h5 --output "n-$task.h5" --hidden "$HIDDEN" --epochs 1 \
    --max-steps 3 --threads "$THREADS" --overwrite > "t-$task.log" 2>&1
  rate=$("$S2CROP" ndvi evaluate --model "n-$task.h5" --samples s.h5 --output "n-$task.json" --threads "$THREADS" 2>&1 \
         | grep -o '([0-9.e+]* pixels/s' | grep -o '[0-9][0-9.e+]*')
  echo "ndvi $task (LSTM $HIDDEN x 2$([ "$task" = gapfill ] && echo ', bidirectional')), series in memory: $rate pixels/s per rank"
  rate=$("$S2CROP" ndvi predict --composites c.h5 --model "n-$task.h5" --output "p-$task.h5" --threads "$THREADS" \
         --overwrite 2>&1 | grep -o '[0-9.e+]* per rank' | grep -o '^[0-9.e+]*')
  echo "ndvi $task, ndvi predict over the tile incl. block reads: $rate pixels/s per rank"
done
"$S2CROP" train --samples s.h5 --output cls.h5 --hidden 128 --epochs 1 --max-steps 3 --threads "$THREADS" --overwrite \
  > t-cls.log 2>&1
rate=$("$S2CROP" classify --composites c.h5 --model cls.h5 --output map.h5 --threads "$THREADS" --overwrite 2>&1 \
       | grep -o '[0-9.e+]* per rank' | grep -o '^[0-9.e+]*')
echo "classifier (LSTM 128 x 2, classify incl. block reads): $rate pixels/s per rank"
