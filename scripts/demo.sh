#!/usr/bin/env bash
# The main job on the bundled demo region: generate a synthetic Sentinel-2 L2A region (3 tiles in UTM zones 32
# and 33, one season at 5-day revisit), then build the monthly composites on 2 MPI ranks.
#   scripts/demo.sh [OUT_DIR]      (default: ./demo-out)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/demo-out}"
RANKS="${RANKS:-2}"

"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh"
S2CROP="$ROOT/build/s2crop"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

mkdir -p "$OUT"
if [ ! -f "$OUT/region/region.json" ]; then
  echo "== synth: demo region -> $OUT/region"
  mpirun -np "$RANKS" "$S2CROP" synth --config "$ROOT/configs/synth.ini" --out "$OUT/region"
fi
echo "== composite on $RANKS ranks -> $OUT/composites.h5"
mpirun -np "$RANKS" "$S2CROP" composite --config "$ROOT/configs/composite.ini" \
  --input "$OUT/region/stac" --output "$OUT/composites.h5" --cog "$OUT/cog" --quicklook "$OUT/quicklooks"

echo
echo "Demo finished."
echo "  composites (HDF5): $OUT/composites.h5   (h5ls -r $OUT/composites.h5)"
echo "  COGs per month:    $OUT/cog/<tile>/<tile>_<YYYY-MM>.tif"
echo "  quicklooks (PNG):  $(ls "$OUT"/quicklooks/*.png | tr '\n' ' ')"
echo "  synthetic inputs:  $OUT/region (STAC items + COGs, parcels.gpkg, labels/)"
