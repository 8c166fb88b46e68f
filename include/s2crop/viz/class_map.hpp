#pragma once
// Class-map quicklooks: the map downsampled for people to look at, with a legend of the classes it shows.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/viz/quicklook.hpp"

namespace s2crop::viz {

struct ClassLegend {
  std::vector<std::string> names;                     // index = class value
  std::vector<std::array<std::uint8_t, 3>> colours;   // RGB, same length as names
};

ClassLegend crop_legend();  // the 16 TimeSen2Crop classes and their colours
// A legend for a model's classes: a TimeSen2Crop class (by name, crop_class_id) gets its crop colour, any other class
// a distinct grey level. What class maps store (class_colours) and show.
ClassLegend class_legend(const std::vector<std::string>& names);

// A legend panel on white: `heading`, then a swatch and its label per entry (what the class quicklook shows).
struct LegendEntry {
  std::array<std::uint8_t, 3> colour;
  std::string label;
};
Image legend_image(const std::vector<LegendEntry>& entries, const std::string& heading = "Legend");

// Writes `classes` (width x height, row-major) as PNG, reduced by the majority value of each block to at most
// `max_side` pixels on the longer side, with a legend panel listing (swatch and name) the classes present.
// No-data pixels are dark grey; a value without a legend entry is black and listed as "class N". Atomic write;
// throws OutputError.
void write_class_quicklook(const std::string& png, const std::uint8_t* classes, int width, int height,
                           const ClassLegend& legend, std::uint8_t nodata = 255, int max_side = 1024);

}  // namespace s2crop::viz
