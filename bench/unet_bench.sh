#!/usr/bin/env bash
# U-Net segmentation benchmarks, s2crop against an idiomatic PyTorch script of the same network (bench/pytorch_unet.py,
# Debian's python3-torch + python3-h5py) on the same data with the same thread count, side by side:
#   parity     the PyTorch model loads s2crop's model file (same names and shapes), its seeded initialisation equals
#              s2crop's, and the first full-batch loss and one AdamW step agree (exit status 1 otherwise)
#   training   patches/s (and pixels/s) over a whole run, data loading included (same patch set, network, batch,
#              optimiser, epochs; no augmentation, constant lr, no validation)
#   inference  pixels/s per rank over a composite file by blended sliding windows (window 128, overlap 32), s2crop
#              segment predict next to the same windows and blending in PyTorch (+ agreement of the maps); s2crop's
#              side only where its `segment predict` exists
# Prints ratios; the runs alternate so that machine noise hits both sides. Results go to bench/RESULTS.md by hand.
#   bench/unet_bench.sh [WORK_DIR]
#   env: PATCHES (patch set; default: synthesised), COMPOSITES (composite file for inference; default: the one the
#        patch set was made from when synthesised), TILES (inference tiles, default all), EPOCHS (2) BATCH (32)
#        THREADS (1) REPEAT (3), SEGMENT_TRAIN_CMD / SEGMENT_PREDICT_CMD (default "segment train" / "segment predict")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
S2CROP="${S2CROP:-$ROOT/build/s2crop}"
WORK="${1:-$(mktemp -d /tmp/s2crop-unet-bench.XXXXXX)}"
EPOCHS="${EPOCHS:-2}" BATCH="${BATCH:-32}" THREADS="${THREADS:-1}" REPEAT="${REPEAT:-3}" TILES="${TILES:-}"
read -r -a TRAIN_CMD <<< "${SEGMENT_TRAIN_CMD:-segment train}"
read -r -a PREDICT_CMD <<< "${SEGMENT_PREDICT_CMD:-segment predict}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
PY=/usr/bin/python3
BENCH_PY="$ROOT/bench/pytorch_unet.py"
mkdir -p "$WORK"
cd "$WORK"

# Data: a synthetic region of 3 tiles of 384 px -> composites -> 432 patches of 32 px (12 months x 10 bands), as
# tests/mpi/test_segment_train_data_parallel.sh makes them.
if [ -z "${PATCHES:-}" ]; then
  if [ ! -f patches.h5 ]; then
    mpirun -np 2 "$S2CROP" synth --out region --size 384 > /dev/null 2>&1
    mpirun -np 2 "$S2CROP" composite --input region/stac --output comp.h5 > /dev/null 2>&1
    mpirun -np 2 "$S2CROP" extract --composites comp.h5 --labels region/parcels.gpkg --output patches.h5 \
      --patches 32 --min-labelled 0 > /dev/null 2>&1
  fi
  PATCHES="$WORK/patches.h5" COMPOSITES="${COMPOSITES:-$WORK/comp.h5}"
fi
n_patches=$("$PY" -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r'); print(f['x'].shape[0], f.attrs['patch_size'])" "$PATCHES")
echo "bench: $(nproc --all) cores, $THREADS thread(s) per process, patch set $PATCHES ($n_patches px), $EPOCHS epochs," \
     "batch $BATCH, work dir $WORK"
common=(--patches "$PATCHES" --depth 3 --width 16 --encoder plain --norm group --augment false --lr-schedule none
        --val-fraction 0 --patience 0 --threads "$THREADS" --overwrite)

# ---- parity: s2crop's initial weights (lr 0) and one full-batch step, checked by the PyTorch model
n=${n_patches%% *}
"$S2CROP" "${TRAIN_CMD[@]}" "${common[@]}" --epochs 1 --max-steps 1 --batch-size "$n" --lr 0 --output init.h5 \
  --step-log init.tsv > parity-init.log 2>&1
"$S2CROP" "${TRAIN_CMD[@]}" "${common[@]}" --epochs 1 --max-steps 1 --batch-size "$n" --output step.h5 \
  --step-log step.tsv > parity-step.log 2>&1
"$PY" "$BENCH_PY" parity "$PATCHES" --init init.h5 --stepped step.h5 --step-log step.tsv --threads "$THREADS"

# ---- training
# s2crop re-executes itself with OPENBLAS_CORETYPE set when OpenBLAS picked kernels older than the CPU (common on
# VMs); PyTorch as users run it does not. The baseline is measured both ways: as run, and with s2crop's choice.
CORE=$(grep -o 'OpenBLAS kernels: [A-Za-z0-9]*' parity-init.log | awk '{print $3}' || true)
echo "OpenBLAS kernels used by s2crop: ${CORE:-unknown}; by PyTorch as run: $("$PY" -c 'import ctypes, torch
f = ctypes.CDLL("libopenblas.so.0").openblas_get_corename; f.restype = ctypes.c_char_p; print(f().decode())' \
  2>/dev/null || echo unknown)"
ours() { "$S2CROP" "${TRAIN_CMD[@]}" "${common[@]}" --epochs "$EPOCHS" --batch-size "$BATCH" --output model.h5 2>&1 \
         | grep -o 'incl. data loading: [0-9.]*' | grep -o '[0-9.]*$'; }
theirs() { "$PY" "$BENCH_PY" train "$PATCHES" --epochs "$EPOCHS" --batch-size "$BATCH" --threads "$THREADS" \
           | grep -o 'throughput: [0-9.]*' | grep -o '[0-9.]*$'; }
theirs_tuned() { OPENBLAS_CORETYPE="$CORE" theirs; }
best() { sort -g | tail -1; }
s_runs=(); p_runs=(); k_runs=()
for r in $(seq 1 "$REPEAT"); do
  s_runs+=("$(ours)"); p_runs+=("$(theirs)"); k_runs+=("$(theirs_tuned)")
done
s=$(printf '%s\n' "${s_runs[@]}" | best); p=$(printf '%s\n' "${p_runs[@]}" | best); k=$(printf '%s\n' "${k_runs[@]}" | best)
px=$(echo "$n_patches" | awk '{print $2 * $2}')
echo "training runs (patches/s): s2crop ${s_runs[*]} | PyTorch ${p_runs[*]} | PyTorch OPENBLAS_CORETYPE=$CORE ${k_runs[*]}"
echo "training (patches/s incl. data loading, best of $REPEAT): s2crop $s | PyTorch $p | PyTorch with OPENBLAS_CORETYPE=$CORE $k"
awk -v s="$s" -v p="$p" -v k="$k" -v px="$px" 'BEGIN {
  printf "  pixels/s per rank: s2crop %.0f | PyTorch %.0f | PyTorch same kernels %.0f\n", s * px, p * px, k * px
  printf "  ratio s2crop / PyTorch: %.2fx, / PyTorch with the same BLAS kernels: %.2fx\n", s / p, s / k }'

# ---- sliding-window inference over the composite file, with the last trained model
if [ -z "${COMPOSITES:-}" ]; then
  echo "inference: skipped (no COMPOSITES given)"
  exit 0
fi
tiles_opt=(); [ -n "$TILES" ] && tiles_opt=(--tiles "$TILES")
have_predict=0
"$S2CROP" "${PREDICT_CMD[@]}" --help > /dev/null 2>&1 && have_predict=1
si=(); pi=(); ki=(); agree=""
for r in $(seq 1 "$REPEAT"); do
  compare=()
  if [ "$have_predict" = 1 ]; then
    si+=("$("$S2CROP" "${PREDICT_CMD[@]}" --composites "$COMPOSITES" --model model.h5 --output map.h5 "${tiles_opt[@]}" \
            --window 128 --overlap 32 --threads "$THREADS" --overwrite 2>&1 \
            | grep -o '[0-9.e+]* per rank)' | grep -o '^[0-9.e+]*' | tail -1)")
    compare=(--compare map.h5)
  fi
  out=$("$PY" "$BENCH_PY" infer "$COMPOSITES" model.h5 "${tiles_opt[@]}" --window 128 --overlap 32 \
        --threads "$THREADS" "${compare[@]}")
  pi+=("$(echo "$out" | grep -o 'inference: [0-9.]*' | grep -o '[0-9.]*$')")
  agree=$(echo "$out" | grep -o 'map: [0-9.]*' | grep -o '[0-9.]*$' || true)
  ki+=("$(OPENBLAS_CORETYPE="$CORE" "$PY" "$BENCH_PY" infer "$COMPOSITES" model.h5 "${tiles_opt[@]}" --window 128 \
          --overlap 32 --threads "$THREADS" | grep -o 'inference: [0-9.]*' | grep -o '[0-9.]*$')")
done
pi_best=$(printf '%s\n' "${pi[@]}" | best); ki_best=$(printf '%s\n' "${ki[@]}" | best)
echo "inference runs (pixels/s): s2crop ${si[*]:-n/a} | PyTorch ${pi[*]} | PyTorch OPENBLAS_CORETYPE=$CORE ${ki[*]}"
if [ "$have_predict" = 1 ]; then
  si_best=$(printf '%s\n' "${si[@]}" | best)
  echo "inference (pixels/s per rank, best of $REPEAT): s2crop $si_best | PyTorch $pi_best | PyTorch with OPENBLAS_CORETYPE=$CORE $ki_best; maps agree on ${agree:-?} of the pixels"
  awk -v s="$si_best" -v p="$pi_best" -v k="$ki_best" 'BEGIN { printf "  ratio s2crop / PyTorch: %.2fx, / PyTorch with the same BLAS kernels: %.2fx\n", s/p, s/k }'
else
  echo "inference (pixels/s, best of $REPEAT): PyTorch $pi_best | PyTorch with OPENBLAS_CORETYPE=$CORE $ki_best;" \
       "s2crop: '${PREDICT_CMD[*]}' is not in this build, no ratio"
fi
