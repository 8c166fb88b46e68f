#!/usr/bin/env bash
# Every kind of HDF5 file s2crop writes opens in the common readers: gdalinfo (the file and its subdatasets) and
# xarray.open_dataset with the netCDF4 and the h5netcdf engine (the root and every group holding data), showing the
# variables, dimensions, coordinate labels and attributes h5py shows (tests/check_output_readers.py). The files come
# from one tiny region: a composite, training sets (extract, import-timesen2crop), patch sets (extract --patches,
# import-bigearthnet when ../shared/data has its patches), models (train, ndvi train, segment train, pretrain), a
# class map with probabilities, NDVI gap-fill and forecast predictions, a segmentation map and segment evaluate's
# predictions. Empty lists (skipped_acquisitions, skipped, an NDVI model's bands, an encoder's class_names) are among
# the attributes: GDAL crashed on them; libnetcdf crashed on the fixed-length string coordinates month and band.
# Then GIS tools: gdalinfo's netCDF view of each tile variable has the CRS and geotransform of the COG export.
source "$(dirname "$0")/../lib.sh"
"$PY" -c "import xarray, netCDF4, h5netcdf" 2> /dev/null \
  || fail "needs python3-xarray, python3-netcdf4 and python3-h5netcdf for $PY (scripts/install-deps.sh)"
command -v gdalinfo > /dev/null || fail "needs gdalinfo (gdal-bin)"

synth_region "$WORK/region" --tiles 33UVP --size 48 --start 2018-09-01 \
  --timesen2crop "$WORK/ts2c/TimeSen2Crop" --timesen2crop-per-class 3
cd "$WORK"
step() {  # step NAME ARGS...: s2crop ARGS, logged to NAME.log
  local name="$1"; shift
  "$@" > "$WORK/$name.log" 2>&1 || { cat "$WORK/$name.log"; fail "$name failed"; }
}
step composite mpi 2 composite --input region/stac --output comp.h5 --block-size 24 --cog cog
step extract mpi 2 extract --composites comp.h5 --labels region/parcels.gpkg --per-class 20 --output set.h5
step patches mpi 2 extract --composites comp.h5 --labels region/parcels.gpkg --patches 16 --output patches.h5
step import_ts2c mpi 2 import-timesen2crop ts2c ts2c.h5
step train mpi 1 train --samples set.h5 --output model.h5 --hidden 8 --epochs 1 --threads 1
step classify mpi 2 classify --composites comp.h5 --model model.h5 --output map.h5 --probabilities --block-size 24 \
  --threads 1
for task in gapfill forecast; do  # no covariates: an empty band list
  step "ndvi_$task" mpi 1 ndvi train --task $task --horizon 2 --samples set.h5 --output "ndvi_$task.h5" --hidden 8 \
    --epochs 1 --threads 1
done
step ndvi_predict mpi 2 ndvi predict --composites comp.h5 --model ndvi_gapfill.h5 --output ndvi.h5 --block-size 24 \
  --threads 1
step ndvi_forecast mpi 2 ndvi predict --composites comp.h5 --model ndvi_forecast.h5 --origin 6 --output ndvi_f.h5 \
  --block-size 24 --threads 1
step segment_train mpi 1 segment train --patches patches.h5 --depth 2 --width 8 --epochs 1 --batch-size 4 --threads 1 \
  --output unet.h5
step segment_predict mpi 2 segment predict --composites comp.h5 --model unet.h5 --output segmap.h5 --threads 1
step segment_evaluate mpi 2 segment evaluate --model unet.h5 --patches patches.h5 --output eval.json \
  --predictions segpred.h5 --threads 1
step pretrain mpi 1 pretrain --patches patches.h5 --depth 2 --width 8 --projection 16 --epochs 1 --batch-size 4 \
  --reconstruction 0 --threads 1 --output encoder.h5
files=(composite=comp.h5 training_set=set.h5 training_set=ts2c.h5 patch_set=patches.h5 model=model.h5 map=map.h5
       model=ndvi_gapfill.h5 model=ndvi_forecast.h5 ndvi=ndvi.h5 ndvi_forecast=ndvi_f.h5 model=unet.h5
       segment_map=segmap.h5 predictions=segpred.h5 model=encoder.h5)
BEN="$SHARED_DATA/bigearthnet_s2_example/BigEarthNet-S2-Example"
if [ -d "$BEN" ]; then
  step import_bigearthnet mpi 2 import-bigearthnet --input "$BEN" --output ben.h5
  files+=(patch_set=ben.h5)
else
  echo "note: no BigEarthNet patches in $BEN: import-bigearthnet's patch set is not checked"
fi
pass "${#files[@]} output files written"

"$PY" "$TESTS_DIR/check_output_readers.py" "${files[@]}" || fail "a reader cannot open an output file"
pass "gdalinfo and xarray (netCDF4, h5netcdf) open every kind of output file"


cog=$(ls cog/33UVP/*.tif | head -1)
[ -f "$cog" ] || fail "composite --cog wrote no COG"
"$PY" "$TESTS_DIR/check_cf_georeference.py" "$cog" comp.h5:/tiles/33UVP/reflectance comp.h5:/tiles/33UVP/clear_count \
  map.h5:/tiles/33UVP/class map.h5:/tiles/33UVP/probability ndvi.h5:/tiles/33UVP/ndvi_filled \
  ndvi_f.h5:/tiles/33UVP/ndvi_forecast segmap.h5:/tiles/33UVP/class \
  || fail "GDAL's netCDF view of an output is not georeferenced like the COG export"
pass "gdalinfo (netCDF, CF-1.8 grid_mapping) places the composite, map, NDVI and segmentation outputs like the COG"
