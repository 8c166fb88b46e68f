#pragma once
// `s2crop assess`: the comparisons behind the accuracy report, and the report itself (JSON, Markdown, confusion PNG).
// Serial: callers run it on rank 0 (parallel::root_first) - a map is compared in row strips, so memory stays small.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "s2crop/assess/accuracy.hpp"

namespace s2crop::pipeline {

// How reference raster values name their class.
enum class ReferenceValues {
  TimeSen2Crop,  // TimeSen2Crop class ids 0..15 (what synth's labels/ and import-timesen2crop use), matched by name
  MapIndex,      // indices into the map's class_names
};
ReferenceValues parse_reference_values(const std::string& text);  // "timesen2crop" | "map-index"; ConfigError

struct MapAssessmentSettings {
  std::string map;                 // class-map HDF5 from `s2crop classify`
  std::string reference;           // folder of <tile>_class.tif, or one raster (then exactly one tile)
  std::vector<std::string> tiles;  // empty: every tile of the map
  ReferenceValues reference_values = ReferenceValues::TimeSen2Crop;
  double pixel_area_m2 = 0;        // 0: from the map's geotransform
};

// Everything the report needs, whatever was compared.
struct Assessment {
  std::vector<std::string> class_names;
  assess::ConfusionMatrix matrix{1};
  std::vector<double> mapped_pixels;  // strata sizes: units mapped (predicted) as each class
  double pixel_area_m2 = 100;
  std::string title;
  std::string sample_description;
  std::vector<std::pair<std::string, std::string>> provenance;
};

// Compares /tiles/<tile>/class of the map with the reference rasters pixel by pixel (pixels labelled in both).
// Classes: the map's class_names, then any reference class the map does not know (appended, so it shows up as
// omission instead of being dropped).
// Throws InputError naming the file: missing map/tile/reference raster, grid mismatch, a value outside the classes,
// no pixel labelled in both.
Assessment assess_map(const MapAssessmentSettings& settings);

// Writes <output_dir>/accuracy.json, accuracy.md, confusion.png and logs the headline numbers.
void write_assessment(const Assessment& assessment, const std::string& output_dir);

}  // namespace s2crop::pipeline
