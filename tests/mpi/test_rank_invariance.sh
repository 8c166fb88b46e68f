#!/usr/bin/env bash
# The composite HDF5 output is identical for 1, 2 and 3 ranks, and has the documented layout.
source "$(dirname "$0")/../lib.sh"
synth_region "$WORK/region"
for n in 1 2 3; do
  mkdir -p "$WORK/r$n"
  # Same relative output path in every run, so the stored configuration is identical too.
  (cd "$WORK/r$n" && mpi $n composite --input "$WORK/region/stac" --output out/composites.h5 --block-size 32 \
      > run.log 2>&1) || { cat "$WORK/r$n/run.log"; fail "composite on $n ranks failed"; }
  grep -q "to compute on $n rank(s)" "$WORK/r$n/run.log" || fail "log of the $n-rank run does not report $n ranks"
done
h5_same "$WORK/r1/out/composites.h5" "$WORK/r2/out/composites.h5" || fail "1 vs 2 ranks differ"
h5_same "$WORK/r1/out/composites.h5" "$WORK/r3/out/composites.h5" || fail "1 vs 3 ranks differ"
pass "bit-identical datasets and attributes for 1, 2 and 3 ranks"
"$PY" "$TESTS_DIR/check_composite_layout.py" "$WORK/r2/out/composites.h5" 32TQT,33UVP 96 || fail "layout"
pass "documented layout"
