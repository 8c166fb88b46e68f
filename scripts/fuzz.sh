#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (AddressSanitizer + UndefinedBehaviorSanitizer, leak detection
# on) and runs each for a bounded time on a copy of its seed corpus, one target after the other.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default 300 s, every target (fuzz_stac_item, fuzz_mtd, ...)
#
# Exit code 0 when no target found anything; 1 when one crashed, hung (-timeout), leaked or ran out of memory:
# the reproducer's path is printed (re-run it with `build-fuzz/fuzz/<target> <reproducer>`); 2 for a build problem;
# 3 when clang or libFuzzer is missing.
# Environment: FUZZ_BUILD_DIR (default <checkout>/build-fuzz), FUZZ_WORK (runs, logs and reproducers; default
# $FUZZ_BUILD_DIR/runs), JOBS (parallel compile jobs, default 2), FUZZ_OPT (optimisation when the build folder is
# configured: -O1, the default, runs faster; -O0 compiles in about half the time).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_TARGET="${1:-300}"
shift || true
ALL_TARGETS=(fuzz_stac_item fuzz_mtd fuzz_timesen2crop fuzz_job_definition fuzz_config_ini)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
WORK="${FUZZ_WORK:-$BUILD/runs}"
JOBS="${JOBS:-2}"

case "$SECONDS_PER_TARGET" in
  ''|*[!0-9]*) echo "fuzz.sh: SECONDS_PER_TARGET must be a whole number of seconds (got '$SECONDS_PER_TARGET')" >&2; exit 2 ;;
esac
if ! command -v clang >/dev/null || ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang/clang++ not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 3
fi
probe="$(mktemp -d)"
printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
  'extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }' > "$probe/probe.cpp"
if ! clang++ -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" 2>"$probe/err"; then
  cat "$probe/err" >&2
  rm -rf "$probe"
  echo "fuzz.sh: clang++ cannot link -fsanitize=fuzzer (Debian: apt-get install libclang-rt-14-dev)" >&2
  exit 3
fi
rm -rf "$probe"

# ---- build (a separate folder: clang, sanitizers; only the fuzz targets are compiled) ----
if [ ! -f "$BUILD/build.ninja" ]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # Debug: no -DNDEBUG (assertions stay on); fuzz/CMakeLists.txt adds -O1 and the sanitizers.
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DS2CROP_BUILD_FUZZ=ON \
    -DS2CROP_FUZZ_OPT="${FUZZ_OPT:--O1}" -DS2CROP_BUILD_TESTS=OFF -DS2CROP_BUILD_BENCH=OFF "${launcher[@]}" \
    > "$BUILD.configure.log" 2>&1 \
    || { cat "$BUILD.configure.log" >&2; echo "fuzz.sh: configuring $BUILD failed" >&2; exit 2; }
fi
cmake --build "$BUILD" --target "${TARGETS[@]}" -j "$JOBS" > "$BUILD.build.log" 2>&1 \
  || { tail -50 "$BUILD.build.log" >&2; echo "fuzz.sh: building the fuzz targets failed (log: $BUILD.build.log)" >&2; exit 2; }

# ---- run, one target at a time ----
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# fuzz_config_ini writes each input to a temporary file: tmpfs is much faster than a disk.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
mkdir -p "$WORK"
findings=0
summary=()
for target in "${TARGETS[@]}"; do
  name="${target#fuzz_}"
  seeds="$ROOT/fuzz/corpus/$name"
  [ -d "$seeds" ] || { echo "fuzz.sh: no seed corpus $seeds for $target" >&2; exit 2; }
  run="$WORK/$target"
  rm -rf "$run"
  mkdir -p "$run/corpus" "$run/artifacts"
  cp "$seeds"/* "$run/corpus/"
  dict=()
  [ -f "$ROOT/fuzz/dict/$name.dict" ] && dict=(-dict="$ROOT/fuzz/dict/$name.dict")
  echo "fuzz.sh: $target for ${SECONDS_PER_TARGET} s (log: $run/fuzz.log)"
  rc=0
  # The outer timeout only guards against a fuzzer that does not stop by itself (-timeout handles hung inputs).
  (cd "$run" && timeout --kill-after=30 $((SECONDS_PER_TARGET + 300)) "$BUILD/fuzz/$target" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -detect_leaks=1 -print_final_stats=1 \
    -artifact_prefix="$run/artifacts/" "${dict[@]}" "$run/corpus" > "$run/fuzz.log" 2>&1) || rc=$?
  done_line="$(grep -a -E '^#[0-9]+[[:space:]]+DONE' "$run/fuzz.log" | tail -1 || true)"
  execs="$(grep -a -o 'stat::number_of_executed_units: *[0-9]*' "$run/fuzz.log" | grep -o '[0-9]*$' || true)"
  cov="$(sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\)\/.*/cov \1, features \2, corpus \3/p' <<< "$done_line")"
  artifacts=("$run"/artifacts/*)
  if [ "$rc" -ne 0 ] || [ -e "${artifacts[0]}" ]; then
    findings=$((findings + 1))
    echo "fuzz.sh: FINDING in $target (exit $rc):" >&2
    grep -a -E 'ERROR: |runtime error|SUMMARY: ' "$run/fuzz.log" | head -5 >&2 || true
    for a in "${artifacts[@]}"; do [ -e "$a" ] && echo "  reproducer: $a (re-run: $BUILD/fuzz/$target $a)" >&2; done
    echo "  log: $run/fuzz.log" >&2
    summary+=("$target: FINDING (exit $rc) after ${execs:-?} executions")
  else
    summary+=("$target: ok, ${SECONDS_PER_TARGET} s, ${execs:-?} executions, ${cov:-no DONE line}")
  fi
done
echo "fuzz.sh: summary"
printf '  %s\n' "${summary[@]}"
[ "$findings" -eq 0 ] || { echo "fuzz.sh: $findings target(s) with findings" >&2; exit 1; }
