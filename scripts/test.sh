#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (unit, MPI with 1-3 ranks, integration, real data when
# ../shared/data is present). Exit code 0 only if all pass.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh"
cd "$ROOT/build"
# Integration tests start several MPI ranks each on a 2-core machine: run them one at a time.
ctest --output-on-failure --timeout 900 -j 1
