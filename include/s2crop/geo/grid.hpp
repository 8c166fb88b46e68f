#pragma once
// The raster grid of a tile (CRS, geotransform, size) and its cutting into blocks: the unit of parallel work.
#include <array>
#include <string>
#include <vector>

namespace s2crop::geo {

struct Window {
  int x0 = 0, y0 = 0, width = 0, height = 0;
  long long pixels() const { return static_cast<long long>(width) * height; }
};

struct Grid {
  std::string crs_wkt;
  std::array<double, 6> geotransform{0, 1, 0, 0, 0, -1};  // GDAL order: x0, dx, rx, y0, ry, dy
  int width = 0;
  int height = 0;

  double pixel_size_x() const { return geotransform[1]; }
  double pixel_size_y() const { return -geotransform[5]; }
  // Same CRS, origin, pixel size and size (within 1e-6 of a pixel).
  bool same_as(const Grid& other) const;
  // True if `coarse` covers this grid with pixels an integer `factor` times larger, sharing the top-left corner
  // (how S2 20 m and 60 m bands sit on the 10 m grid).
  bool is_aligned_coarser(const Grid& coarse, int& factor) const;
  std::string describe() const;  // "1098x1098 px, 10 m, origin (x, y), EPSG:32633"
};

// Blocks of `block_size` pixels in row-major order; edge blocks are clipped to the grid.
std::vector<Window> cut_blocks(int width, int height, int block_size);

// Whether two WKT strings denote the same CRS (compared through OGR, not textually).
bool same_crs(const std::string& wkt_a, const std::string& wkt_b);
std::string crs_short_name(const std::string& wkt);  // "EPSG:32633" where an authority code exists
std::string wkt_from_epsg(int epsg);

}  // namespace s2crop::geo
