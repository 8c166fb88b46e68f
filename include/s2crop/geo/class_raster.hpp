#pragma once
// Class maps as Cloud-Optimized GeoTIFF for GIS users: one uint8 band with a colour table, a name per class and
// the no-data value set, overviews by mode so zoomed-out views keep the dominant class.
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "s2crop/geo/grid.hpp"

namespace s2crop::geo {

// `classes` holds grid.width x grid.height values (row-major), each an index into `names`/`colours` or `nodata`.
// Written atomically (temporary name, then rename; the category names' .aux.xml side file too). Throws OutputError.
void write_class_cog(const std::string& path, const Grid& grid, const std::uint8_t* classes,
                     const std::vector<std::string>& names, const std::vector<std::array<std::uint8_t, 3>>& colours,
                     std::uint8_t nodata = 255);

// The same for a class raster larger than memory: `read_block` fills one window (row-major) of a block grid of
// `block_size` pixels from the top-left, clipped at the edges; `metadata` becomes dataset metadata (GDAL_METADATA).
// An exception from `read_block` propagates as is, and nothing is moved into place.
void write_class_cog(const std::string& path, const Grid& grid,
                     const std::function<void(const Window& window, std::uint8_t* out)>& read_block, int block_size,
                     const std::vector<std::string>& names, const std::vector<std::array<std::uint8_t, 3>>& colours,
                     std::uint8_t nodata = 255,
                     const std::vector<std::pair<std::string, std::string>>& metadata = {});

}  // namespace s2crop::geo
