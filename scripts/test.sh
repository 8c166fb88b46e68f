#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (unit, MPI with 1-3 ranks, integration, real data when
# ../shared/data is present). Exit code 0 only if all pass.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh"
cd "$ROOT/build"
# Unit tests are short processes (most of each is loading LibTorch): two at a time. The MPI, integration and Slurm
# tests keep both cores busy themselves: one at a time. Both sets run even if the first fails.
status=0
ctest --output-on-failure --timeout 900 -L unit -j 2 || status=1
ctest --output-on-failure --timeout 900 -LE unit -j 1 || status=1
exit "$status"
