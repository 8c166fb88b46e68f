#pragma once
// Reprojection of rasters that are not in memory: footprints in another CRS, target grids aligned to the
// resolution, and GDAL's warper (nearest neighbour, exact transform) reading its source block by block through a
// callback. Coordinates are always easting/x first, whatever the CRS's official axis order.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "s2crop/geo/grid.hpp"

namespace s2crop::geo {

using Ring = std::vector<std::array<double, 2>>;  // closed polygon ring (first point repeated last)

struct Bounds {
  double xmin = 0, ymin = 0, xmax = 0, ymax = 0;
};
Bounds ring_bounds(const Ring& ring);

// WKT of a CRS given as anything OGR understands ("EPSG:3035", WKT, PROJ string); throws ConfigError naming it.
std::string crs_wkt_from_user(const std::string& text);

// The outer edge of `grid` (pixel corners, not centres) in `target_wkt`, with a point every `step` pixels along each
// edge so the curved image of a straight tile edge is followed to well under a centimetre. Throws Error if a point
// cannot be transformed.
Ring grid_outline(const Grid& grid, const std::string& target_wkt, int step = 32);

// The grid in `wkt` with square pixels of `resolution` covering `bounds`, its edges on multiples of the resolution
// (gdalwarp -tap): the same bounds give the same grid whatever else is mosaicked. Throws ConfigError if it would be
// wider or taller than 2^31 - 1 pixels.
Grid aligned_grid(const Bounds& bounds, double resolution, const std::string& wkt);

// The ring in pixel coordinates of `grid` (x right, y down from the top-left corner; north-up grids only).
Ring ring_to_pixels(const Ring& ring, const Grid& grid);
// Whether a polygon (simple ring) and the axis-aligned rectangle [x0, x1] x [y0, y1] share any point.
bool ring_intersects_rect(const Ring& ring, double x0, double y0, double x1, double y1);
// Whether point (x, y) lies strictly inside the ring (even-odd rule).
bool ring_contains(const Ring& ring, double x, double y);

// Reads `window` of band `band` (1-based) of a source raster: window.width x window.height bytes, row-major.
using ByteBlockReader = std::function<void(int band, const Window& window, std::uint8_t* out)>;

// GDAL's warper from a source raster of `bands` byte bands on `source` onto windows of `target`:
//  - nearest neighbour, all bands from the same source pixel (a pixel's class and confidence stay together);
//  - exact transformer (no approximation, error threshold 0) in coordinates global to both grids: a target pixel
//    whose centre lies inside the source footprint always gets the source pixel under its centre, whatever window
//    it is computed in (so results never depend on the block layout);
//  - no no-data interpretation: every source value is copied as is; uncovered target pixels get `fill`.
// The source is read in blocks of `source_block` pixels through `read`, only where a window needs it.
class NearestWarper {
 public:
  NearestWarper(const Grid& source, int bands, int source_block, ByteBlockReader read, const Grid& target,
                std::uint8_t fill);
  ~NearestWarper();
  NearestWarper(const NearestWarper&) = delete;
  NearestWarper& operator=(const NearestWarper&) = delete;
  // out[b]: window.width x window.height values of band b + 1. Throws the reader's exception, or Error from GDAL.
  void warp(const Window& window, const std::vector<std::uint8_t*>& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace s2crop::geo
