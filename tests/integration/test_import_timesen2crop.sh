#!/usr/bin/env bash
# import-timesen2crop on a synthetic region written in the TimeSen2Crop layout by `synth --timesen2crop`:
# identical output for 1 and 3 ranks, the documented layout, series equal to `s2crop composite` at the same pixels,
# and clean failures (file and line named, no output left) on malformed input.
source "$(dirname "$0")/../lib.sh"

# TimeSen2Crop's own season (Sep 2018 - Aug 2019), inside a top folder as in the zip.
synth_region "$WORK/region" --start 2018-09-01 --timesen2crop "$WORK/zip/TimeSen2Crop" --timesen2crop-per-class 12
TS="$WORK/zip/TimeSen2Crop"
[ -f "$TS/33UVP/dates.csv" ] && [ -f "$TS/pixels.tsv" ] || fail "synth did not write the TimeSen2Crop layout"
[ ! -e "$TS/.staging" ] || fail "synth left its staging folder behind"
files=$(find "$TS" -name '*.csv' ! -name dates.csv | wc -l)
[ "$files" -eq $(($(wc -l < "$TS/pixels.tsv") - 1)) ] || fail "pixels.tsv does not list every CSV ($files)"
pass "synth wrote $files pixel CSVs in the TimeSen2Crop layout"

# The TimeSen2Crop files do not depend on synth's rank count either.
mpi 1 synth --out "$WORK/region1" --tiles 32TQT,33UVP --size 96 --days 365 --seed 7 --start 2018-09-01 \
  --timesen2crop "$WORK/ts2c_1rank" --timesen2crop-per-class 12 > "$WORK/synth1.log" 2>&1 \
  || { cat "$WORK/synth1.log"; fail "1-rank synth failed"; }
diff -r "$TS" "$WORK/ts2c_1rank" > /dev/null || fail "synth --timesen2crop differs between 1 and 2 ranks"
pass "synth --timesen2crop identical for 1 and 2 ranks"

for n in 1 3; do
  mkdir -p "$WORK/r$n"
  (cd "$WORK/r$n" && mpi $n import-timesen2crop "$WORK/zip" out/train.h5 > run.log 2>&1) \
    || { cat "$WORK/r$n/run.log"; fail "import on $n ranks failed"; }
done
grep -q "import-timesen2crop: $files/$files files" "$WORK/r3/run.log" || { cat "$WORK/r3/run.log"; fail "no progress line"; }
grep -q "tile 33UVP: .* samples; 0 pixels dropped" "$WORK/r3/run.log" || fail "no per-tile summary"
h5_same "$WORK/r1/out/train.h5" "$WORK/r3/out/train.h5" || fail "1 vs 3 ranks differ"
pass "identical training sets from 1 and 3 ranks"

mpi 2 composite --input "$WORK/region/stac" --output "$WORK/composites.h5" --dilation 0 --block-size 48 \
  > "$WORK/composite.log" 2>&1 || { cat "$WORK/composite.log"; fail "composite failed"; }
"$PY" "$TESTS_DIR/check_timesen2crop_import.py" "$WORK/r3/out/train.h5" "$TS" "$WORK/composites.h5" \
  || fail "imported series do not match the composites"
pass "layout, class counts and series equal to the composites at the same pixels"

# A malformed CSV in the middle of the global order: every rank stops, the message names file and line.
cp -r "$WORK/zip" "$WORK/bad"
bad="$WORK/bad/TimeSen2Crop/33UVP/$(awk -F'\t' '$1 == "33UVP" {print $2 "/" $3; exit}' "$TS/pixels.tsv" | cut -d/ -f1,4)"
[ -f "$bad" ] || fail "cannot pick a file to corrupt ($bad)"
sed -i '5s/^[0-9-]*,/12x4,/' "$bad"
expect_failure malformed "$bad: line 5: column B1: '12x4' is not an integer" -- \
  mpi 3 import-timesen2crop "$WORK/bad" "$WORK/bad.h5"
[ -z "$(ls "$WORK" | grep '^bad\.h5')" ] || fail "a failed import left $(ls "$WORK" | grep '^bad\.h5')"
pass "no output left after the failure"

# --on-error skip leaves it out and records it.
mpi 3 import-timesen2crop "$WORK/bad" "$WORK/skip.h5" --on-error skip > "$WORK/skip.log" 2>&1 \
  || { cat "$WORK/skip.log"; fail "import with --on-error skip failed"; }
grep -q "skipped 1 malformed sample file" "$WORK/skip.log" || { cat "$WORK/skip.log"; fail "skip not logged"; }
"$PY" - "$WORK/skip.h5" "$bad" "$files" <<'PY' || fail "skipped file not recorded"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
assert f.attrs["skipped_count"] == 1 and sys.argv[2] + ": line 5" in f.attrs["skipped"][0], f.attrs["skipped"]
assert f["y"].shape[0] == int(sys.argv[3]) - 1
PY
pass "--on-error skip: file left out and listed in the attribute skipped"

expect_failure exists "exists already; use --overwrite" -- mpi 2 import-timesen2crop "$WORK/zip" "$WORK/skip.h5"
expect_failure not_a_tree "not a TimeSen2Crop tree" -- mpi 2 import-timesen2crop "$WORK/region/labels" "$WORK/x.h5"
mpi 2 import-timesen2crop --root "$WORK/zip" --output "$WORK/skip.h5" --overwrite > "$WORK/over.log" 2>&1 \
  || { cat "$WORK/over.log"; fail "--overwrite failed"; }
"$PY" -c "import h5py,sys; assert h5py.File(sys.argv[1])['y'].shape[0] == int(sys.argv[2])" "$WORK/skip.h5" "$files" \
  || fail "--overwrite did not replace the file"
pass "existing output refused without --overwrite, replaced with it"
