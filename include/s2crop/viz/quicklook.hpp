#pragma once
// Quicklook PNGs for people to look at: true-colour RGB and an NDVI ramp, with no-data shown dark grey.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace s2crop::viz {

struct Image {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;  // width*height*3, row-major, interleaved
  Image(int w, int h) : width(w), height(h), rgb(static_cast<size_t>(w) * h * 3, 0) {}
  void set(int x, int y, std::uint8_t r, std::uint8_t g, std::uint8_t b);
};

// Linear stretch of reflectance x 10000 from [lo, hi] to [0, 255] with gamma 1/1.6 for a natural look.
std::uint8_t stretch(int value, int lo = 0, int hi = 2500);
// Brown (bare soil, NDVI <= 0) through yellow to dark green (NDVI >= 0.9).
void ndvi_colour(double ndvi, std::uint8_t rgb[3]);
// Writes `image` as PNG (atomically: temporary name, then rename). Throws OutputError.
void write_png(const std::string& path, const Image& image);
// A small panel per plane of a width x height raster (months, labels), in rows of four, each titled, subsampled to
// at most 300 px per panel. `load(k)` prepares plane k, then `colour(x, y, rgb)` gives the colour of its
// full-resolution pixel (x, y). Written atomically like write_png.
void write_panel_quicklook(const std::string& path, int width, int height, const std::vector<std::string>& titles,
                           const std::function<void(size_t plane)>& load,
                           const std::function<void(int x, int y, std::uint8_t rgb[3])>& colour);
// The same panels as an image, `columns` per row. `min_side` > 0 enlarges small rasters (patches) by an integer
// factor to at least that many pixels on the longer side (nearest neighbour) instead. A cell is at least as wide as
// its title.
Image panel_image(int width, int height, const std::vector<std::string>& titles,
                  const std::function<void(size_t plane)>& load,
                  const std::function<void(int x, int y, std::uint8_t rgb[3])>& colour, int columns = 4,
                  int min_side = 0);
// Places two images side by side with a gap (e.g. RGB | NDVI), on white.
Image side_by_side(const Image& a, const Image& b, int gap = 8);

}  // namespace s2crop::viz
