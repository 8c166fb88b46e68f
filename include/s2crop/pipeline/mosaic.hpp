#pragma once
// `s2crop mosaic`: per-tile class maps (one or more map files from `s2crop classify`, tiles in any UTM zones) ->
// one Cloud-Optimized GeoTIFF in one CRS (EPSG:3035 by default), optionally with a confidence COG beside it.
//
// Lifecycle (collective over MPI_COMM_WORLD; the same shape as composite and classify):
//   plan      rank 0 checks every map file (exists, is an s2crop map, same class names, has the requested tiles)
//             before anything is written; every rank then derives the same plan: the mosaic grid (union of the
//             tiles' outlines in the target CRS, densified edges, aligned to multiples of the resolution like
//             gdalwarp -tap), cut into square blocks in row-major order; a block whose area meets a tile outline is a
//             unit of work, listing those tiles in name order.
//   compute   units not yet done are balanced over the ranks by cost (pixels x tiles). For each unit a rank warps
//             every listed tile onto the block with GDAL's warper (nearest neighbour, exact transform, class and
//             confidence from the same source pixel; see geo/warp.hpp), merges them with the overlap rule below
//             and saves class + confidence as one part file <output>.parts/<block>.part (CRC-32, temporary name
//             then rename), so a SIGKILL loses at most the blocks in flight.
//   assemble  rank 0 streams the parts into <output> (and the confidence COG) through a temporary name and a
//             rename, then removes the parts. A rerun after a kill computes only the missing blocks; a rerun of a
//             finished mosaic with the same inputs and options does nothing; other inputs or options are refused
//             unless --overwrite.
// Pixel values depend only on the inputs, the CRS, the resolution and the tiles: not on the rank count, the
// block size or where a run was interrupted.
//
// Overlap rule (tiles overlap along their 9.8 km margins and across UTM zone borders): a pixel takes the class of
// the tile with the highest confidence there; equal confidence goes to the tile whose name sorts first; a tile's
// no-data (class 255) never wins over a class. Output no-data is 255 in both rasters: pixels outside every tile and
// pixels no tile has a class for.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/geo/grid.hpp"
#include "s2crop/parallel/mpi.hpp"

namespace s2crop::pipeline {

inline constexpr std::uint8_t kMosaicNoData = 255;

struct MosaicSettings {
  std::vector<std::string> maps;     // class-map HDF5 files
  std::string output;                // class COG
  std::string confidence_output;     // optional confidence COG (uint8, top probability x 100)
  std::string crs = "EPSG:3035";
  double resolution = 10;            // metres (units of the target CRS)
  std::vector<std::string> tiles;    // only these tiles (empty: every tile of every map)
  int block_size = 1024;             // block edge in output pixels: the unit of work and of resume
  bool overwrite = false;
  std::string config_text;           // effective configuration, stored in the COGs' metadata
};

void run_mosaic(const MosaicSettings& settings, const parallel::MpiContext& mpi);

// ---- pure pieces (unit tested)

// The mosaic grid in `crs_wkt`: the bounds of every tile grid's outline (densified), aligned to the resolution.
geo::Grid mosaic_grid(const std::vector<geo::Grid>& tiles, const std::string& crs_wkt, double resolution);

// For every block of `blocks` (on `grid`), the indices of the tiles whose outline meets the block (grown by one
// pixel so boundary rounding never drops a tile); blocks no tile touches get an empty list.
std::vector<std::vector<std::size_t>> tiles_per_block(const geo::Grid& grid, const std::vector<geo::Window>& blocks,
                                                      const std::vector<geo::Grid>& tiles);

// Merges one tile's values (warped onto a block: class, confidence) into the block's running result, `winner`
// holding the index (name order) of the tile each pixel's value comes from. The overlap rule above, in a form that
// does not depend on the order tiles are merged in: a class replaces no data; a higher confidence replaces a
// lower one; at equal confidence the lower tile index wins.
void merge_tile(std::size_t n, const std::uint8_t* tile_class, const std::uint8_t* tile_confidence,
                std::uint16_t tile_index, std::uint8_t* cls, std::uint8_t* confidence, std::uint16_t* winner);

}  // namespace s2crop::pipeline
