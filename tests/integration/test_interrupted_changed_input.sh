#!/usr/bin/env bash
# A run SIGKILLed at its first part file whose input is then changed in place (same path, same size) must not reuse
# the parts it left: the rerun refuses, naming the .parts folder, and with --overwrite computes every block again,
# ending with the file a fresh run on the changed input writes. (test_plausible_mistakes case 4 covers a finished
# run; test_resume covers an interrupted one whose inputs did not change.) For composite (a band file of one
# acquisition rewritten) and classify (the model file replaced by another model, then the composites rewritten).
source "$(dirname "$0")/../lib.sh"
synth_region "$WORK/region" --tiles 33UVP --size 216 --days 60
cp -r "$WORK/region/stac" "$WORK/stac"  # the copy whose files change

run_in() {  # run_in DIR ARGS...: s2crop ARGS on 2 ranks in DIR (outputs are relative: the same command everywhere)
  local dir="$1"; shift
  (cd "$dir" && mpi 2 "$@")
}
composite=(composite --input "$WORK/stac" --output out/c.h5 --block-size 16)
classify=(classify --composites "$WORK/comp.h5" --model "$WORK/model.h5" --output out/map.h5 --block-size 16 --threads 1)

# interrupt LABEL OUTPUT ARGS...: `s2crop ARGS` in $WORK/LABEL, SIGKILLed at its first part file. The block count is
# checked later, against the fresh run's (interrupt_blocks only needs an upper bound).
interrupt() {
  local label="$1" output="$2"; shift 2
  interrupt_blocks "$WORK/$label" "$output" 1000000 run_in "$WORK/$label" "$@"
  # On an idle machine this tiny run can write every part between the poll and the kill: every other part is
  # removed, so blocks are always left to do, as after a kill in the middle of a run.
  ls "$WORK/$label/$output".parts/*/*.part | awk 'NR % 2 == 0' | xargs -r rm -f
  PARTS_DONE=$(ls "$WORK/$label/$output".parts/*/*.part | wc -l)
}

# expect_no_reuse LABEL OUTPUT ARGS...: after the input change, the interrupted run in $WORK/LABEL is refused and its
# parts are left as they were; with --overwrite it computes every block and writes what a fresh run on the changed
# input writes. The effective options, --overwrite included, are stored in the output: the fresh run passes it too.
expect_no_reuse() {
  local label="$1" output="$2" dir="$WORK/$1" total; shift 2
  (cd "$dir" && expect_failure "${label}_refused" "$output.parts: holds blocks of an interrupted run" -- mpi 2 "$@")
  [ ! -e "$dir/$output" ] || fail "$label: the refused run wrote $output"
  [ "$(ls "$dir/$output".parts/*/*.part | wc -l)" -eq "$PARTS_DONE" ] || fail "$label: the refused run touched the parts"
  mkdir -p "$WORK/${label}_fresh"
  run_in "$WORK/${label}_fresh" "$@" --overwrite > "$WORK/${label}_fresh.log" 2>&1 \
    || { cat "$WORK/${label}_fresh.log"; fail "$label: fresh run on the changed input failed"; }
  total=$(grep -o '[0-9]* blocks of 16 px' "$WORK/${label}_fresh.log" | head -1 | cut -d' ' -f1)
  [ "$PARTS_DONE" -lt "$total" ] || fail "$label: every block was done before the kill"
  run_in "$dir" "$@" --overwrite > "$WORK/${label}_overwrite.log" 2>&1 \
    || { cat "$WORK/${label}_overwrite.log"; fail "$label: rerun with --overwrite failed"; }
  grep -q "$total blocks of 16 px, 0 already done, $total to compute" "$WORK/${label}_overwrite.log" \
    || { grep -F 'blocks of 16 px' "$WORK/${label}_overwrite.log"; fail "$label: --overwrite reused old parts"; }
  h5_same "$WORK/${label}_fresh/$output" "$dir/$output" \
    || fail "$label: the rerun with --overwrite differs from a fresh run on the changed input"
  [ ! -e "$dir/$output.parts" ] || fail "$label: parts left behind after success"
  pass "$label: killed with $PARTS_DONE/$total blocks, input changed: refused, then --overwrite recomputed all"
}

# ---- composite: one acquisition's B04 rewritten in place
interrupt composite out/c.h5 "${composite[@]}"
band="$(dirname "$(find "$WORK/stac" -name '*.json' | sort | head -1)")/B04.tif"
size_before=$(stat -c %s "$band")
"$PY" - "$band" <<'PY'
import sys
from osgeo import gdal
ds = gdal.Open(sys.argv[1], gdal.GA_Update)   # same path, same size: new pixels
a = ds.GetRasterBand(1).ReadAsArray()
ds.GetRasterBand(1).WriteArray((a // 2).astype(a.dtype)); ds = None
PY
[ "$(stat -c %s "$band")" -eq "$size_before" ] || fail "the band file changed size; the test means an in-place change"
expect_no_reuse composite out/c.h5 "${composite[@]}"
cp "$WORK/composite_fresh/out/c.h5" "$WORK/comp.h5"

# ---- classify: two models of the same architecture, trained on other samples
"$PY" "$TESTS_DIR/make_training_set.py" "$WORK/set_a.h5" --samples 400 --seed 1 > /dev/null
"$PY" "$TESTS_DIR/make_training_set.py" "$WORK/set_b.h5" --samples 400 --seed 2 > /dev/null
for m in a b; do
  mpi 1 train --samples "$WORK/set_$m.h5" --output "$WORK/model_$m.h5" --hidden 8 --epochs 1 --threads 1 \
    > "$WORK/train_$m.log" 2>&1 || { cat "$WORK/train_$m.log"; fail "train of model $m failed"; }
done
cmp -s "$WORK/model_a.h5" "$WORK/model_b.h5" && fail "the two models are the same file"

cp "$WORK/model_a.h5" "$WORK/model.h5"
interrupt classify_model out/map.h5 "${classify[@]}"
cp "$WORK/model_b.h5" "$WORK/model.h5"
expect_no_reuse classify_model out/map.h5 "${classify[@]}"

# ---- classify: the composites file rewritten in place (one reflectance value of one pixel)
interrupt classify_composites out/map.h5 "${classify[@]}"
"$PY" - "$WORK/comp.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    r = f["tiles/33UVP/reflectance"]
    at = (0, 0) + tuple(int(i) for i in np.argwhere(r[0, 0] != -32768)[0])
    v = int(r[at])
    r[at] = v + 1 if v < 32767 else v - 1
PY
expect_no_reuse classify_composites out/map.h5 "${classify[@]}"
