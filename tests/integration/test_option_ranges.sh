#!/usr/bin/env bash
# Options are declared once (src/cli/options.cpp, option_binder.hpp): the default is the settings struct's
# initialiser, and a value out of range is refused with the option's name before any work: the inputs named here
# do not exist, so a refusal that mentions the option (and no output) shows the range was checked first.
source "$(dirname "$0")/../lib.sh"
SRC="$S2CROP_SOURCE_DIR"
NOPE="$WORK/nope.h5"
OUT="$WORK/out"

# Shared options, several commands each.
expect_failure classify_block "--block-size must be 16-4096 (got 5)" -- \
  "$S2CROP" classify --composites "$NOPE" --model "$NOPE" --output "$OUT.h5" --block-size 5
expect_failure ndvi_predict_block "--block-size must be 16-4096 (got 8192)" -- \
  "$S2CROP" ndvi predict --composites "$NOPE" --model "$NOPE" --output "$OUT.h5" --block-size 8192
expect_failure mosaic_block "--block-size must be 16-8192 (got 0)" -- \
  "$S2CROP" mosaic --maps "$NOPE" --output "$OUT.tif" --block-size 0
expect_failure composite_block "--block-size must be 4-4096 (got -512)" -- \
  "$S2CROP" composite --input "$WORK/none" --output "$OUT.h5" --block-size -512
expect_failure composite_deflate "--deflate must be 0-9 (got 10)" -- \
  "$S2CROP" composite --input "$WORK/none" --output "$OUT.h5" --deflate 10
expect_failure segment_deflate "--deflate must be 0-9 (got -1)" -- \
  "$S2CROP" segment predict --composites "$NOPE" --model "$NOPE" --output "$OUT.h5" --deflate -1
expect_failure classify_threads "--threads must be at least 0 (got -2)" -- \
  "$S2CROP" classify --composites "$NOPE" --model "$NOPE" --output "$OUT.h5" --threads -2
expect_failure segment_evaluate_threads "--threads must be at least 0 (got -1)" -- \
  "$S2CROP" segment evaluate --model "$NOPE" --patches "$NOPE" --output "$OUT.json" --threads -1
expect_failure composite_method "--method must be median or mean (got 'foo')" -- \
  "$S2CROP" composite --input "$WORK/none" --output "$OUT.h5" --method foo
expect_failure import_method "--method must be median or mean (got 'mode')" -- \
  "$S2CROP" import-timesen2crop "$WORK/none" "$OUT.h5" --method mode
expect_failure import_on_error "--on-error must be fail or skip (got 'ignore')" -- \
  "$S2CROP" import-timesen2crop "$WORK/none" "$OUT.h5" --on-error ignore
# A config file's value is checked like the command line's.
printf 'deflate = 12\n' > "$WORK/bad.ini"
expect_failure ini_deflate "--deflate must be 0-9 (got 12)" -- \
  "$S2CROP" classify --config "$WORK/bad.ini" --composites "$NOPE" --model "$NOPE" --output "$OUT.h5"
# --print-config checks the values too (it checks an INI file without running anything).
expect_failure print_config_checks "--season-month must be 1-12 (got 13)" -- \
  "$S2CROP" composite --season-month 13 --print-config
ls "$WORK" | grep -q '^out' && fail "a refused command left output: $(ls "$WORK")"
pass "out-of-range shared options refused by name before any work (9 commands)"

# --seed is a whole number 0..2^64-1 everywhere; -1 was read as 2^64-1 by ndvi evaluate and extract.
expect_failure ndvi_evaluate_seed "--seed -1: must be a whole number" -- \
  "$S2CROP" ndvi evaluate --model "$NOPE" --samples "$NOPE" --output "$OUT.json" --seed -1
expect_failure extract_seed "--seed -1: must be a whole number" -- \
  "$S2CROP" extract --composites "$NOPE" --labels "$NOPE" --output "$OUT.h5" --seed -1
expect_failure synth_seed "--seed -1: must be a whole number" -- "$S2CROP" synth --out "$OUT" --seed -1
pass "--seed -1 refused by ndvi evaluate, extract and synth"

# plan reads each stage's --config file: one that is not a regular file (a pipe, /dev/stdin) would block it.
expect_failure plan_stdin_config "--config /dev/stdin is not a regular file" -- \
  "$S2CROP" plan "$SRC/jobs/demo.ini" --set "composite.args=--input x --config /dev/stdin"
pass "plan refuses a stage --config that is not a regular file"

# The default --print-config shows is the settings struct's initialiser (the one place of a default).
struct_default() {  # HEADER FIELD -> the initialiser of `FIELD = VALUE;` in HEADER
  sed -n "s/.*[ ,]$2 = \([^;,]*\)[;,].*/\1/p" "$SRC/include/s2crop/$1" | head -1
}
check_default() {  # COMMAND KEY HEADER FIELD
  local cmd="$1" key="$2" header="$3" field="$4" printed want
  # shellcheck disable=SC2086
  printed="$("$S2CROP" $cmd --print-config | sed -n "s/^$key = //p")"
  want="$(struct_default "$header" "$field")"
  [ -n "$want" ] || fail "no initialiser of $field in $header"
  [ "$printed" = "$want" ] || fail "s2crop $cmd --print-config: $key = '$printed', but $header has $field = $want"
}
check_default classify block-size infer/classify.hpp block_size
check_default classify batch-size infer/classify.hpp batch_size
check_default mosaic block-size pipeline/mosaic.hpp block_size
check_default composite dilation pipeline/composite_stage.hpp dilation
check_default "segment predict" window infer/segment.hpp window
check_default extract per-class samples/extract.hpp per_class
check_default train epochs train/trainer.hpp epochs
pass "--print-config shows the settings structs' defaults"
