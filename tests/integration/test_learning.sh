#!/usr/bin/env bash
# Learning is real: the demo chain (synth -> composite -> extract -> train on 32TQT + 33TUM -> classify 33UVP ->
# assess) on the demo region. On the held-out tile the LSTM must reach OA >= 0.88 and beat the per-month
# nearest-centroid baseline by a clear margin (>= 0.1 OA), and the synthetic classes must be confusable enough that
# the baseline stays under 0.8. The random forest (train --model rf) maps the same tile through classify, and
# assess --compare puts both models side by side on the held-out samples. About 5 minutes on 2 cores.
source "$(dirname "$0")/../lib.sh"
R="$S2CROP_SOURCE_DIR"
mpi 2 synth --config "$R/configs/synth.ini" --out "$WORK/region" > "$WORK/synth.log" 2>&1 || { cat "$WORK/synth.log"; fail synth; }
mpi 2 composite --config "$R/configs/composite.ini" --input "$WORK/region/stac" --output "$WORK/c.h5" > "$WORK/c.log" 2>&1 \
  || { cat "$WORK/c.log"; fail composite; }
mpi 2 extract --config "$R/configs/extract.ini" --composites "$WORK/c.h5" --labels "$WORK/region/parcels.gpkg" \
  --output "$WORK/s.h5" > "$WORK/e.log" 2>&1 || { cat "$WORK/e.log"; fail extract; }
mpi 2 train --config "$R/configs/demo-train.ini" --samples "$WORK/s.h5" --tiles 32TQT,33TUM --output "$WORK/m.h5" \
  > "$WORK/t.log" 2>&1 || { cat "$WORK/t.log"; fail train; }
mpi 2 classify --config "$R/configs/classify.ini" --composites "$WORK/c.h5" --model "$WORK/m.h5" --tiles 33UVP \
  --output "$WORK/map.h5" > "$WORK/k.log" 2>&1 || { cat "$WORK/k.log"; fail classify; }
mpi 2 assess --map "$WORK/map.h5" --reference "$WORK/region/labels" --tiles 33UVP --output-dir "$WORK/acc" \
  > "$WORK/a.log" 2>&1 || { cat "$WORK/a.log"; fail assess; }
"$PY" "$R/scripts/centroid_baseline.py" "$WORK/s.h5" --train-tiles 32TQT,33TUM --test-tiles 33UVP --json "$WORK/b.json"
"$PY" - "$WORK/acc/accuracy.json" "$WORK/b.json" <<'PY' || fail "learning below the bar"
import json, sys
acc, base = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
oa, f1, b = acc["overall_accuracy"], acc["macro_f1"], base["oa"]
print(f"ok: held-out 33UVP: LSTM OA {oa:.4f} macro-F1 {f1:.4f}; nearest-centroid OA {b:.4f} macro-F1 {base['macro_f1']:.4f}")
assert b < 0.8, "baseline too good: the synthetic classes are too easy"
assert oa >= 0.88, oa
assert oa - b >= 0.1, (oa, b)
PY
mpi 2 train --model rf --trees 100 --samples "$WORK/s.h5" --tiles 32TQT,33TUM --output "$WORK/rf.h5" \
  > "$WORK/rf.log" 2>&1 || { cat "$WORK/rf.log"; fail "train --model rf"; }
mpi 2 classify --config "$R/configs/classify.ini" --composites "$WORK/c.h5" --model "$WORK/rf.h5" --tiles 33UVP \
  --output "$WORK/rfmap.h5" > "$WORK/rfk.log" 2>&1 || { cat "$WORK/rfk.log"; fail "classify with the forest"; }
grep -q "random forest, 16 classes" "$WORK/rfk.log" || { cat "$WORK/rfk.log"; fail "classify does not name the forest"; }
mpi 1 assess --map "$WORK/rfmap.h5" --reference "$WORK/region/labels" --tiles 33UVP --output-dir "$WORK/rfacc" \
  > "$WORK/rfa.log" 2>&1 || { cat "$WORK/rfa.log"; fail "assess the forest's map"; }
mpi 1 assess --compare "$WORK/m.h5,$WORK/rf.h5" --samples "$WORK/s.h5" --tiles 33UVP --output-dir "$WORK/cmp" \
  > "$WORK/cmp.log" 2>&1 || { cat "$WORK/cmp.log"; fail "assess --compare"; }
grep "minus" "$WORK/cmp.log"
"$PY" - "$WORK/rfacc/accuracy.json" "$WORK/cmp/compare.json" "$WORK/b.json" <<'PY' || fail "the forest's map"
import json, sys
rf, cmp, base = (json.load(open(p)) for p in sys.argv[1:4])
oa = rf["overall_accuracy"]
print(f"ok: held-out 33UVP: random forest map OA {oa:.4f} macro-F1 {rf['macro_f1']:.4f}")
assert oa > base["oa"] + 0.05, (oa, base["oa"])   # the forest learnt the classes too
names = [m["name"] for m in cmp["models"]]
assert names == ["m (LSTM)", "rf (random forest)"], names
PY
