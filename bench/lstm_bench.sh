#!/usr/bin/env bash
# LSTM classifier benchmarks, s2crop against an idiomatic PyTorch script of the same model (bench/pytorch_lstm.py,
# Debian's python3-torch + python3-h5py) on the same HDF5 data with the same thread count, side by side:
#   training    samples/s over a whole run, data loading included (same model, batch, optimiser, epochs)
#   inference   pixels/s classifying the same composite file with the same trained weights (+ agreement)
#   scaling     s2crop training on 1 -> 2 ranks (1 thread each)
# Prints ratios; the runs alternate so that machine noise hits both sides. Results go to bench/RESULTS.md by hand.
#   bench/lstm_bench.sh [WORK_DIR]    env: SAMPLES (default 30000) EPOCHS (2) THREADS (1) REPEAT (2)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
S2CROP="${S2CROP:-$ROOT/build/s2crop}"
WORK="${1:-$(mktemp -d /tmp/s2crop-lstm-bench.XXXXXX)}"
SAMPLES="${SAMPLES:-30000}" EPOCHS="${EPOCHS:-2}" THREADS="${THREADS:-1}" REPEAT="${REPEAT:-2}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
PY=/usr/bin/python3
mkdir -p "$WORK"
cd "$WORK"
echo "bench: $(nproc --all) cores, $THREADS thread(s) per process, $SAMPLES samples x $EPOCHS epochs, work dir $WORK"
[ -f set.h5 ] || "$PY" "$ROOT/tests/make_training_set.py" set.h5 --samples "$SAMPLES" --classes 16 > /dev/null
common=(--samples set.h5 --hidden 128 --layers 2 --dropout 0.2 --epochs "$EPOCHS"
        --val-fraction 0 --patience 0 --lr-schedule none --overwrite)
ours() { "$S2CROP" train "${common[@]}" --batch-size 128 --threads "$THREADS" --output "model$1.h5" 2>&1 \
         | grep -o 'incl. data loading: [0-9.]*' | grep -o '[0-9.]*$'; }
theirs() { "$PY" "$ROOT/bench/pytorch_lstm.py" train set.h5 --epochs "$EPOCHS" --threads "$THREADS" --loader "$1" \
           | grep -o 'throughput: [0-9.]*' | grep -o '[0-9.]*$'; }
# s2crop re-executes itself with OPENBLAS_CORETYPE set when OpenBLAS picked kernels older than the CPU (common on
# VMs); PyTorch as users run it does not. The baseline is measured both ways: as run, and with s2crop's choice.
CORE=$("$S2CROP" train --samples set.h5 --output probe.h5 --epochs 1 --max-steps 1 --hidden 8 --overwrite 2>&1 \
       | grep -o 'OpenBLAS kernels: [A-Za-z0-9]*' | awk '{print $3}' || true)
echo "OpenBLAS kernels used by s2crop: ${CORE:-unknown}; by PyTorch as run: $("$PY" -c 'import ctypes, torch
f = ctypes.CDLL("libopenblas.so.0").openblas_get_corename; f.restype = ctypes.c_char_p; print(f().decode())' \
  2>/dev/null || echo unknown)"
theirs_tuned() { OPENBLAS_CORETYPE="$CORE" theirs "$1"; }
best() { sort -g | tail -1; }
s_runs=(); p_runs=(); t_runs=(); k_runs=()
for r in $(seq 1 "$REPEAT"); do
  s_runs+=("$(ours "")"); p_runs+=("$(theirs per-sample)"); t_runs+=("$(theirs tensor)")
  k_runs+=("$(theirs_tuned per-sample)")
done
s=$(printf '%s\n' "${s_runs[@]}" | best); p=$(printf '%s\n' "${p_runs[@]}" | best); t=$(printf '%s\n' "${t_runs[@]}" | best)
k=$(printf '%s\n' "${k_runs[@]}" | best)
echo "training (samples/s, best of $REPEAT): s2crop $s | PyTorch per-sample Dataset $p | PyTorch TensorDataset $t | PyTorch per-sample with OPENBLAS_CORETYPE=$CORE $k"
awk -v s="$s" -v p="$p" -v t="$t" -v k="$k" 'BEGIN { printf "  ratio s2crop / PyTorch per-sample: %.2fx, / TensorDataset: %.2fx, / per-sample with the same BLAS kernels: %.2fx\n", s/p, s/t, s/k }'

# Inference: a composite file of one synthetic tile, classified with the trained weights by both.
if [ ! -f comp.h5 ]; then
  "$S2CROP" synth --out region --tiles 33UVP --size "${TILE_SIZE:-400}" --days 365 --revisit 10 > /dev/null 2>&1
  "$S2CROP" composite --input region/stac --output comp.h5 > /dev/null 2>&1
fi
si=(); pi=(); ki=()
for r in $(seq 1 "$REPEAT"); do
  si+=("$("$S2CROP" classify --composites comp.h5 --model model.h5 --output map.h5 --overwrite --threads "$THREADS" \
          2>&1 | grep -o '([0-9.e+]* pixels/s' | grep -o '[0-9][0-9.e+]*')")
  out=$("$PY" "$ROOT/bench/pytorch_lstm.py" infer comp.h5 model.h5 --threads "$THREADS" --batch-size 2048 --compare map.h5)
  pi+=("$(echo "$out" | grep -o 'inference: [0-9.]*' | grep -o '[0-9.]*$')")
  ki+=("$(OPENBLAS_CORETYPE="$CORE" "$PY" "$ROOT/bench/pytorch_lstm.py" infer comp.h5 model.h5 --threads "$THREADS" \
          --batch-size 2048 | grep -o 'inference: [0-9.]*' | grep -o '[0-9.]*$')")
  agree=$(echo "$out" | grep -o 'map: [0-9.]*' | grep -o '[0-9.]*$')
done
si_best=$(printf '%s\n' "${si[@]}" | best); pi_best=$(printf '%s\n' "${pi[@]}" | best)
ki_best=$(printf '%s\n' "${ki[@]}" | best)
echo "inference (pixels/s, best of $REPEAT): s2crop $si_best | PyTorch $pi_best | PyTorch with OPENBLAS_CORETYPE=$CORE $ki_best; maps agree on $agree of the pixels"
awk -v s="$si_best" -v p="$pi_best" -v k="$ki_best" 'BEGIN { printf "  ratio s2crop / PyTorch: %.2fx, / PyTorch with the same BLAS kernels: %.2fx\n", s/p, s/k }'

# Scaling: 1 -> 2 ranks, one thread each, the same global batch per step (per-rank batch halves).
one=$(mpirun -np 1 "$S2CROP" train "${common[@]}" --batch-size 128 --threads 1 --output m1.h5 2>&1 \
      | grep -o 'incl. data loading: [0-9.]*' | grep -o '[0-9.]*$')
two=$(mpirun -np 2 "$S2CROP" train "${common[@]}" --batch-size 64 --threads 1 --output m2.h5 2>&1 \
      | grep -o 'incl. data loading: [0-9.]*' | grep -o '[0-9.]*$')
two_weak=$(mpirun -np 2 "$S2CROP" train "${common[@]}" --batch-size 128 --threads 1 --output m3.h5 2>&1 \
      | grep -o 'incl. data loading: [0-9.]*' | grep -o '[0-9.]*$')
echo "scaling (samples/s): 1 rank x batch 128: $one | 2 ranks x batch 128 (global 256): $two_weak | 2 ranks x 64: $two"
awk -v a="$one" -v b="$two_weak" -v c="$two" \
  'BEGIN { printf "  speed-up 1 -> 2 ranks: %.2fx with the per-rank batch kept (the default), %.2fx with the global batch kept\n", b/a, c/a }'
