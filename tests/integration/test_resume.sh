#!/usr/bin/env bash
# A composite run killed with SIGKILL (all ranks, at several points) and restarted with the same command computes
# only the missing blocks, and its output is identical to an uninterrupted run.
source "$(dirname "$0")/../lib.sh"
synth_region "$WORK/region"

run() {  # run DIR: the one command, always the same
  (cd "$1" && mpi 2 composite --input "$WORK/region/stac" --output out/c.h5 --block-size 16 --cog out/cog)
}
mkdir -p "$WORK/ref"
run "$WORK/ref" > "$WORK/ref.log" 2>&1 || { cat "$WORK/ref.log"; fail "reference run failed"; }
total=$(grep -o '[0-9]* blocks of 16 px' "$WORK/ref.log" | cut -d' ' -f1)
[ "$total" -gt 20 ] || fail "expected many blocks, got $total"

# kill_when DIR CONDITION: start the run, SIGKILL every process of it as soon as CONDITION holds
kill_when() {
  local dir="$1" cond="$2"
  mkdir -p "$dir"
  run "$dir" > "$dir/first.log" 2>&1 &
  local pid=$! i
  for i in $(seq 1 3000); do
    if (cd "$dir" && eval "$cond"); then
      pkill -9 -f -- "--input $WORK/region/stac --output out/c.h5" || true
      break
    fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
  done
  wait $pid 2>/dev/null || true
  sleep 0.2
  ! pgrep -f -- "--input $WORK/region/stac --output out/c.h5" > /dev/null || fail "ranks survived the kill"
}
parts() { ls "$1"/out/c.h5.parts/*/*.part 2>/dev/null | wc -l; }

check_point=0
for cond in '[ $(ls out/c.h5.parts/*/*.part 2>/dev/null | wc -l) -ge 1 ]' \
            "[ \$(ls out/c.h5.parts/*/*.part 2>/dev/null | wc -l) -ge $((total / 2)) ]" \
            '[ -e out/c.h5.partial.h5 ]' \
            '[ -e out/cog/33UVP ] && ls out/cog/33UVP/*.tif >/dev/null 2>&1'; do
  check_point=$((check_point + 1))
  dir="$WORK/kill$check_point"
  kill_when "$dir" "$cond"
  [ ! -e "$dir/out/c.h5" ] || fail "point $check_point: the run finished before the kill; the test did not interrupt it"
  done_before=$(parts "$dir")
  run "$dir" > "$dir/second.log" 2>&1 || { cat "$dir/second.log"; fail "restart after kill point $check_point failed"; }
  grep -q "$done_before already done, $((total - done_before)) to compute" "$dir/second.log" \
    || { grep plan: "$dir/second.log"; fail "point $check_point: restart did not resume from the $done_before finished blocks"; }
  h5_same "$WORK/ref/out/c.h5" "$dir/out/c.h5" || fail "point $check_point: resumed output differs"
  for f in "$WORK"/ref/out/cog/*/*.tif; do
    cmp -s "$f" "$dir/out/cog/${f#$WORK/ref/out/cog/}" || fail "point $check_point: COG $(basename "$f") differs"
  done
  [ ! -e "$dir/out/c.h5.parts" ] || fail "intermediate blocks left behind after success"
  pass "kill point $check_point: $done_before/$total blocks kept, restart computed the rest, output identical"
done

# Resuming on another number of ranks (a requeued job that got a different allocation) gives the same result.
dir="$WORK/reranked"
kill_when "$dir" "[ \$(ls out/c.h5.parts/*/*.part 2>/dev/null | wc -l) -ge $((total / 3)) ]"
[ ! -e "$dir/out/c.h5" ] || fail "re-ranked: the run finished before the kill"
done_before=$(parts "$dir")
(cd "$dir" && mpi 3 composite --input "$WORK/region/stac" --output out/c.h5 --block-size 16 --cog out/cog) \
  > "$dir/second.log" 2>&1 || { cat "$dir/second.log"; fail "restart on 3 ranks failed"; }
grep -q "$done_before already done, $((total - done_before)) to compute on 3 rank(s)" "$dir/second.log" \
  || { grep plan: "$dir/second.log"; fail "restart on 3 ranks did not resume"; }
h5_same "$WORK/ref/out/c.h5" "$dir/out/c.h5" || fail "resumed on 3 ranks: output differs"
pass "killed on 2 ranks with $done_before/$total blocks, resumed on 3 ranks, output identical"

# A part damaged after the kill (same size, flipped bytes: what a node crash can leave) is recomputed, not trusted.
dir="$WORK/damaged"
kill_when "$dir" "[ \$(ls out/c.h5.parts/*/*.part 2>/dev/null | wc -l) -ge $((total / 3)) ]"
victim=$(ls "$dir"/out/c.h5.parts/*/*.part | head -1)
printf '\xde\xad\xbe\xef' | dd of="$victim" bs=1 seek=100 conv=notrunc status=none
done_before=$(( $(parts "$dir") - 1 ))
run "$dir" > "$dir/second.log" 2>&1 || { cat "$dir/second.log"; fail "restart with a damaged part failed"; }
grep -q "checksum" "$dir/second.log" || fail "the damaged part was not reported"
grep -q "$done_before already done" "$dir/second.log" || fail "the damaged part was counted as done"
h5_same "$WORK/ref/out/c.h5" "$dir/out/c.h5" || fail "output differs after recomputing a damaged part"
pass "a damaged part is detected by its checksum and recomputed"

# Rerunning a finished job is a no-op, not a recomputation.
run "$WORK/ref" > "$WORK/again.log" 2>&1 || fail "rerun of a complete job failed"
grep -q "already complete" "$WORK/again.log" || fail "rerun of a complete job did not recognise it"
pass "rerun of a complete job does nothing"
