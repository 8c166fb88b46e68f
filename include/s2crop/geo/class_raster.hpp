#pragma once
// Class maps as Cloud-Optimized GeoTIFF for GIS users: one uint8 band with a colour table, a name per class and
// the no-data value set, overviews by mode so zoomed-out views keep the dominant class.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/geo/grid.hpp"

namespace s2crop::geo {

// `classes` holds grid.width x grid.height values (row-major), each an index into `names`/`colours` or `nodata`.
// Written atomically (temporary name, then rename; the category names' .aux.xml side file too). Throws OutputError.
void write_class_cog(const std::string& path, const Grid& grid, const std::uint8_t* classes,
                     const std::vector<std::string>& names, const std::vector<std::array<std::uint8_t, 3>>& colours,
                     std::uint8_t nodata = 255);

}  // namespace s2crop::geo
