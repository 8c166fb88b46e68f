#!/usr/bin/env bash
# The models a user can choose. train --model rf: the same forest on 1, 2 and 3 ranks (every tree seeded by the seed
# and its index alone), a rerun with nothing to do, clear refusals of options that do not apply. The LSTM on a small
# set: an ensemble of 5 by default (--ensemble auto), killed between members and resumed to the same model. assess
# --compare of the two on the same held-out tile, with intervals. (Both classifying a map: test_learning.sh.)
source "$(dirname "$0")/../lib.sh"
"$PY" -c "import h5py, numpy" 2>/dev/null || skip "h5py/numpy missing for $PY"
"$PY" "$TESTS_DIR/make_training_set.py" "$WORK/set.h5" --samples 1200 --tiles 33UVP,33TUM,32TQT > /dev/null

for r in 1 2 3; do
  mpi $r train --model rf --samples "$WORK/set.h5" --tiles 33TUM,32TQT --trees 30 --threads 1 \
    --output "$WORK/rf$r.h5" > "$WORK/rf$r.log" 2>&1 || { cat "$WORK/rf$r.log"; fail "rf training on $r ranks"; }
done
grep -q "model random forest (OpenCV RTrees): 30 trees" "$WORK/rf3.log" || { cat "$WORK/rf3.log"; fail "rf log line"; }
grep -q "wrote .*rf3.h5 (30 trees" "$WORK/rf3.log" || { cat "$WORK/rf3.log"; fail "rf wrote line"; }
# h5diff passes datasets of different lengths as "not comparable" with exit 0: compared here array by array.
same_forest() {
  "$PY" - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    sys.exit(0 if all(np.array_equal(a["forest"][k][()], b["forest"][k][()]) for k in a["forest"]) else 1)
PY
}
for r in 2 3; do
  same_forest "$WORK/rf1.h5" "$WORK/rf$r.h5" || fail "the forest grown on $r ranks differs from 1 rank's"
done
"$PY" - "$WORK/rf1.h5" <<'PY' || fail "forest file"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["kind"] == "rf", f.attrs["kind"]
    g = f["forest"]
    assert len(g["roots"]) == 30 and g["feature"].shape == g["threshold"].shape
    leaves = g["feature"][()] < 0
    assert leaves.sum() > 30 and (g["leaf_class"][()][leaves] < len(f.attrs["class_names"])).all()
print("ok: the forest file holds 30 trees")
PY
# Another seed, another forest.
mpi 1 train --model rf --samples "$WORK/set.h5" --tiles 33TUM,32TQT --trees 30 --threads 1 --seed 7 \
  --output "$WORK/rf_seed7.h5" > /dev/null 2>&1 || fail "rf seed 7"
same_forest "$WORK/rf1.h5" "$WORK/rf_seed7.h5" && fail "--seed does not change the forest"
# The same command again: nothing to do, the file untouched.
before=$(stat -c %Y "$WORK/rf1.h5")
mpi 1 train --model rf --samples "$WORK/set.h5" --tiles 33TUM,32TQT --trees 30 --threads 1 \
  --output "$WORK/rf1.h5" > "$WORK/again.log" 2>&1 || { cat "$WORK/again.log"; fail "rerun"; }
grep -q "already trained" "$WORK/again.log" || { cat "$WORK/again.log"; fail "rerun did not say it had nothing to do"; }
[ "$(stat -c %Y "$WORK/rf1.h5")" = "$before" ] || fail "rerun rewrote the model"
pass "the same forest on 1, 2 and 3 ranks; a rerun has nothing to do"

expect_failure trees0 "--trees 0: must be at least 1" -- mpi 1 train --model rf --samples "$WORK/set.h5" \
  --output "$WORK/x.h5" --trees 0
expect_failure depth "--max-depth 100: at most 64" -- mpi 1 train --model rf --samples "$WORK/set.h5" \
  --output "$WORK/x.h5" --max-depth 100
expect_failure hidden_rf "--hidden applies to --model lstm, not to --model rf" -- mpi 1 train --model rf \
  --samples "$WORK/set.h5" --output "$WORK/x.h5" --hidden 64
expect_failure trees_lstm "--trees applies to --model rf, not to --model lstm" -- mpi 1 train \
  --samples "$WORK/set.h5" --output "$WORK/x.h5" --trees 10
expect_failure model_svm "--model svm: must be lstm" -- mpi 1 train --model svm --samples "$WORK/set.h5" \
  --output "$WORK/x.h5"
[ -e "$WORK/x.h5" ] && fail "a refused training left a model file"

# An LSTM beside the forest. 720 training samples: --ensemble auto trains 5 members.
lstm=(train --samples "$WORK/set.h5" --tiles 33TUM,32TQT --hidden 16 --epochs 3 --threads 1)
mpi 1 "${lstm[@]}" --output "$WORK/lstm.h5" > "$WORK/lstm.log" 2>&1 || { cat "$WORK/lstm.log"; fail "lstm training"; }
grep -q -- "--ensemble auto: 5 member(s) for 7[0-9][0-9] training samples" "$WORK/lstm.log" \
  || { cat "$WORK/lstm.log"; fail "no ensemble decision in the log"; }
[ ! -e "$WORK/lstm.h5.members" ] && [ ! -e "$WORK/lstm.h5.ckpt" ] || fail "the members' files were left behind"
"$PY" - "$WORK/lstm.h5" <<'PY' || fail "ensemble file"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["ensemble"] == 5, f.attrs["ensemble"]
    assert sorted(f["members"]) == ["1", "2", "3", "4"]
    names = sorted(f["parameters"])
    assert all(sorted(f["members"][k]) == names for k in f["members"])
    w = [f["parameters"]["head.weight"][()]] + [f["members"][k]["head.weight"][()] for k in "1234"]
    assert all(not np.array_equal(w[0], v) for v in w[1:]), "members with the same weights"
print("ok: an ensemble of 5 LSTMs with their own weights")
PY
# Killed once the second member is written, then the same command: the finished members are kept, the result is the
# uninterrupted run's.
( mpi 1 "${lstm[@]}" --output "$WORK/killed.h5" > "$WORK/killed1.log" 2>&1 ) &
pid=$!
for _ in $(seq 600); do [ -e "$WORK/killed.h5.members/member-1.h5" ] && break; sleep 0.1; done
[ -e "$WORK/killed.h5.members/member-1.h5" ] || { cat "$WORK/killed1.log"; fail "member 1 never written"; }
kill_tree $pid; wait $pid 2>/dev/null || true
[ ! -e "$WORK/killed.h5" ] || fail "a killed ensemble left a model file"
mpi 1 "${lstm[@]}" --output "$WORK/killed.h5" > "$WORK/killed2.log" 2>&1 || { cat "$WORK/killed2.log"; fail "restart"; }
grep -q "member-0.h5 is already trained" "$WORK/killed2.log" || { cat "$WORK/killed2.log"; fail "member 0 retrained"; }
"$PY" - "$WORK/lstm.h5" "$WORK/killed.h5" <<'PY' || fail "the restarted ensemble differs from the uninterrupted one"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    groups = ["parameters"] + [f"members/{k}" for k in a["members"]]
    assert all(np.array_equal(a[g][n][()], b[g][n][()]) for g in groups for n in a[g]), "parameters differ"
PY
pass "ensemble: killed between members, restarted, the same model"
mpi 1 assess --compare "$WORK/lstm.h5,$WORK/rf1.h5" --samples "$WORK/set.h5" --tiles 33UVP --bootstrap 500 \
  --output-dir "$WORK/cmp" > "$WORK/cmp.log" 2>&1 || { cat "$WORK/cmp.log"; fail "assess --compare"; }
grep -q "assess: lstm (LSTM) minus rf1 (random forest): OA" "$WORK/cmp.log" || { cat "$WORK/cmp.log"; fail "difference line"; }
"$PY" - "$WORK/cmp/compare.json" "$WORK/set.h5" <<'PY' || fail "compare.json"
import json, sys, h5py, numpy as np
c = json.load(open(sys.argv[1]))
with h5py.File(sys.argv[2], "r") as f:
    tiles = [t.decode() if isinstance(t, bytes) else t for t in f.attrs["tiles"]]
    held = f["tile"][()] == tiles.index("33UVP")
    parcels = len(np.unique(f["parcel"][()][held]))
assert c["samples"] == int(held.sum()) and c["units"] == parcels and c["unit"] == "parcel", c
assert [m["name"] for m in c["models"]] == ["lstm (LSTM)", "rf1 (random forest)"]
for m in c["models"]:
    for k in ("overall_accuracy", "kappa", "macro_f1"):
        v, (lo, hi) = m[k]["value"], m[k]["ci95"]
        assert lo <= v <= hi and hi - lo > 0, (m["name"], k, v, lo, hi)
d = c["differences"][0]
assert abs(d["overall_accuracy"]["value"] - (c["models"][0]["overall_accuracy"]["value"] -
                                             c["models"][1]["overall_accuracy"]["value"])) < 1e-9
print("ok: compare.json: intervals around every estimate, units = held-out parcels")
PY
[ -f "$WORK/cmp/compare.md" ] || fail "compare.md missing"
expect_failure self "a model compared with itself" -- mpi 1 assess --compare "$WORK/rf1.h5,$WORK/rf1.h5" \
  --samples "$WORK/set.h5" --output-dir "$WORK/cmp2"
expect_failure one "--compare needs at least 2 models" -- mpi 1 assess --compare "$WORK/rf1.h5" \
  --samples "$WORK/set.h5" --output-dir "$WORK/cmp2"
pass "assess --compare reports intervals; bad comparisons are refused"
