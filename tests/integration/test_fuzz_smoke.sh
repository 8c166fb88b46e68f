#!/usr/bin/env bash
# A short run (20 s) of every libFuzzer target of fuzz/ through scripts/fuzz.sh: the parsers of user files (STAC
# item, MTD_MSIL2A.xml, TimeSen2Crop CSV and dates, job definitions, --config INI) must not crash, hang, leak or
# hit undefined behaviour on the mutated seed corpora. Builds the targets with clang in the build folder
# (build-fuzz next to the s2crop binary, kept between runs). Skipped only where clang or libFuzzer is missing.
source "$(dirname "$0")/../lib.sh"

command -v clang++ >/dev/null || skip "clang++ not installed (Debian: clang libclang-rt-14-dev): no fuzzing"
probe="$WORK/probe.cpp"
printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
  'extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }' > "$probe"
clang++ -fsanitize=fuzzer,address,undefined "$probe" -o "$WORK/probe" > "$WORK/probe.log" 2>&1 \
  || skip "clang++ cannot link libFuzzer (Debian: libclang-rt-14-dev): no fuzzing"

export FUZZ_BUILD_DIR="$(dirname "$S2CROP")/build-fuzz"
export FUZZ_WORK="$WORK/fuzz"
export FUZZ_OPT=-O0  # compiles in half the time of -O1: the build is most of this test's time
rc=0
"$S2CROP_SOURCE_DIR/scripts/fuzz.sh" "${FUZZ_SMOKE_SECONDS:-20}" > "$WORK/fuzz.out" 2>&1 || rc=$?
cat "$WORK/fuzz.out"
case "$rc" in
  0) pass "every fuzz target ran ${FUZZ_SMOKE_SECONDS:-20} s without a finding" ;;
  1) KEEP_WORK=1; fail "fuzzing found a crash, hang, leak or undefined behaviour (reproducers kept under $FUZZ_WORK)" ;;
  3) skip "clang/libFuzzer not usable" ;;
  *) fail "scripts/fuzz.sh failed (exit $rc)" ;;
esac
