// s2crop mosaic: per-tile class maps (any UTM zones, one or more map files) -> one COG in one CRS.
#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/pipeline/mosaic.hpp"

namespace s2crop::cli {

int run_mosaic(int argc, char** argv, const parallel::MpiContext& mpi) {
  pipeline::MosaicSettings s;
  po::options_description opts("Mosaic options");
  opts.add_options()
      ("maps", po::value<std::vector<std::string>>()->composing(),
       "class map HDF5 files from 's2crop classify', comma-separated or repeated; they must share their class "
       "names, and a tile may appear in one of them only");
  OptionBinder b(opts);
  b.add_unset("output,o", s.output,
              "class mosaic to write: a Cloud-Optimized GeoTIFF (uint8, 255 = no data) with the maps' colour table "
              "and class names, tiled, DEFLATE, overviews by mode")
      .add("confidence-output", s.confidence_output,
           "also write the confidence of each mosaic pixel (top probability x 100, 255 = no data) as a COG here")
      .add("crs", s.crs, "CRS of the mosaic: EPSG code, WKT or PROJ string (default: ETRS89-LAEA Europe)")
      .add("resolution", s.resolution,
           "pixel size in units of --crs (metres for EPSG:3035); the grid's edges are multiples of it (like gdalwarp "
           "-tap) and it covers the union of the tiles",
           Range<double>::above(0));
  add_tiles(b, s.tiles, "only these tiles, comma-separated (default: every tile of every map)");
  add_block_size(b, s.block_size, pipeline::kMosaicBlockSizes,
                 "block edge in output pixels: the unit of work spread over the ranks and of resume; memory per rank "
                 "follows it (values never depend on it)");
  add_overwrite(b, s.overwrite,
                "replace an existing mosaic (or the blocks of an interrupted run) made from other maps or options");
  po::variables_map vm;
  if (!parse_options("mosaic", "--maps MAP.h5[,MAP2.h5...] --output MOSAIC.tif [options]",
                     "Warps the per-tile class maps of one or more map files (tiles in any UTM zones) into one\n"
                     "Cloud-Optimized GeoTIFF in one CRS with GDAL's warper: nearest neighbour for class and\n"
                     "confidence alike (both from the same source pixel), exact coordinate transformation, so every\n"
                     "pixel whose centre lies in a tile gets a value. Where tiles overlap the pixel takes the class\n"
                     "of the tile with the higher confidence; equal confidence goes to the tile whose name sorts\n"
                     "first; a class always beats a tile's no data. The output grid is cut into blocks balanced over\n"
                     "the MPI ranks; the result is the same for any rank count and block size. A killed run resumes\n"
                     "where it stopped when started again; a finished mosaic is not redone.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  if (vm.count("maps"))
    for (auto& item : vm["maps"].as<std::vector<std::string>>())
      for (auto& path : split_list(item)) s.maps.push_back(path);
  s.config_text = effective_config(vm);
  pipeline::run_mosaic(s, mpi);
  return 0;
}

}  // namespace s2crop::cli
