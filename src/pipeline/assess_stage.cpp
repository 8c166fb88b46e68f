#include "s2crop/common/text.hpp"
#include "s2crop/pipeline/assess_stage.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "s2crop/assess/report.hpp"
#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/geo/grid.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/viz/charts.hpp"

namespace fs = std::filesystem;

namespace s2crop::pipeline {

namespace {

constexpr const char* kMapFormat = "s2crop class map";
constexpr std::uint8_t kNoLabel = 255;
constexpr int kStripRows = 256;  // rows of a tile held in memory at once


std::string fmt(double v, int digits = 4) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Pixels of one tile counted by (map value, reference value): every later decision (class matching, strata) works
// on this small table instead of the rasters.
using JointCounts = std::vector<std::int64_t>;  // [map value * 256 + reference value]

struct MapTile {
  std::string name;
  geo::Grid grid;
};

MapTile open_map_tile(const h5::File& file, const std::string& tile) {
  if (!file.exists("tiles") || !file.open_group("tiles").exists(tile)) {
    std::vector<std::string> have;
    if (file.exists("tiles")) have = file.open_group("tiles").children();
    throw InputError(file.file(), "has no tile " + tile + " (tiles in the map: " +
                                      (have.empty() ? std::string("none") : join_items(have)) + ")");
  }
  h5::Node g = file.open_group("tiles").open_group(tile);
  if (!g.exists("class")) throw InputError(file.file(), "tile " + tile + " has no 'class' dataset");
  MapTile t;
  t.name = tile;
  auto gt = g.attr_doubles("geotransform");
  if (gt.size() != 6) throw InputError(file.file(), "tile " + tile + ": geotransform attribute needs 6 numbers");
  std::copy(gt.begin(), gt.end(), t.grid.geotransform.begin());
  t.grid.crs_wkt = g.attr_string("crs_wkt");
  auto dims = g.open_dataset("class").dims();
  if (dims.size() != 2) throw InputError(file.file(), "tile " + tile + ": 'class' is not a 2-D [y][x] dataset");
  t.grid.height = static_cast<int>(dims[0]);
  t.grid.width = static_cast<int>(dims[1]);
  return t;
}

void count_tile(const h5::File& file, const MapTile& tile, const geo::RasterReader& reference, JointCounts& joint) {
  h5::Dataset cls = file.open_group("tiles").open_group(tile.name).open_dataset("class");
  const int W = tile.grid.width;
  std::vector<std::uint8_t> map_rows, ref_rows;
  for (int y0 = 0; y0 < tile.grid.height; y0 += kStripRows) {
    int rows = std::min(kStripRows, tile.grid.height - y0);
    size_t n = static_cast<size_t>(rows) * W;
    map_rows.resize(n);
    ref_rows.resize(n);
    cls.read<std::uint8_t>({static_cast<hsize_t>(y0), 0}, {static_cast<hsize_t>(rows), static_cast<hsize_t>(W)},
                           map_rows.data());
    reference.read(1, geo::Window{0, y0, W, rows}, ref_rows.data());
    for (size_t k = 0; k < n; ++k) ++joint[static_cast<size_t>(map_rows[k]) * 256 + ref_rows[k]];
  }
}

}  // namespace

ReferenceValues parse_reference_values(const std::string& text) {
  if (text == "timesen2crop") return ReferenceValues::TimeSen2Crop;
  if (text == "map-index") return ReferenceValues::MapIndex;
  throw ConfigError("--reference-values must be timesen2crop or map-index, not '" + text + "'");
}

Assessment assess_map(const MapAssessmentSettings& s) {
  if (s.map.empty()) throw ConfigError("s2crop assess: --map is required (or --model with --samples)");
  if (s.reference.empty()) throw ConfigError("s2crop assess: --map needs --reference (label raster or folder)");
  if (!fs::exists(s.map)) throw InputError(s.map, "map file does not exist");
  if (!fs::exists(s.reference)) throw InputError(s.reference, "reference labels do not exist");
  h5::File file = h5::File::open_read(s.map, MPI_COMM_NULL);
  if (file.has_attr("format") && file.attr_string("format") != kMapFormat)
    throw InputError(s.map, "is not an s2crop class map (format '" + file.attr_string("format") + "')");
  if (!file.has_attr("class_names")) throw InputError(s.map, "has no class_names attribute: not a class map");
  Assessment a;
  a.class_names = file.attr_strings("class_names");
  const int map_classes = static_cast<int>(a.class_names.size());
  if (map_classes < 1 || map_classes >= kNoLabel)
    throw InputError(s.map, "class_names must name 1-254 classes, it has " + std::to_string(map_classes));

  std::vector<std::string> tiles = s.tiles;
  if (tiles.empty() && file.exists("tiles")) tiles = file.open_group("tiles").children();
  if (tiles.empty()) throw InputError(s.map, "has no tiles");
  const bool reference_is_folder = fs::is_directory(s.reference);
  if (!reference_is_folder && tiles.size() != 1)
    throw ConfigError("--reference " + s.reference + " is one raster but the assessment covers " +
                      std::to_string(tiles.size()) + " tiles (" + join_items(tiles) +
                      "): pass a folder of <tile>_class.tif or choose one tile with --tiles");

  JointCounts joint(256 * 256, 0);
  double pixel_area = 0;
  std::vector<std::string> reference_files;
  for (const std::string& tile : tiles) {
    MapTile mt = open_map_tile(file, tile);
    std::string ref_path = reference_is_folder ? (fs::path(s.reference) / (tile + "_class.tif")).string() : s.reference;
    if (!fs::exists(ref_path)) throw InputError(ref_path, "reference raster for tile " + tile + " not found");
    geo::RasterReader reference(ref_path);
    if (!mt.grid.same_as(reference.grid()))
      throw InputError(ref_path, "grid differs from tile " + tile + " of map " + s.map + ": reference " +
                                     reference.grid().describe() + ", map " + mt.grid.describe());
    double area = std::abs(mt.grid.geotransform[1] * mt.grid.geotransform[5]);
    if (pixel_area == 0)
      pixel_area = area;
    else if (std::abs(area - pixel_area) > 1e-6 * pixel_area && s.pixel_area_m2 <= 0)
      throw InputError(s.map, "tiles have different pixel sizes (" + fmt(pixel_area, 1) + " and " + fmt(area, 1) +
                                  " m2): give --pixel-area or assess them separately");
    count_tile(file, mt, reference, joint);
    reference_files.push_back(ref_path);
    log::info("assess: compared tile " + tile + " (" + mt.grid.describe() + ") with " + ref_path);
  }
  a.pixel_area_m2 = s.pixel_area_m2 > 0 ? s.pixel_area_m2 : pixel_area;

  // Map values must be classes of the map; a reference value is matched to a map class by name (TimeSen2Crop ids)
  // or taken as a map index, and appended when the map has no such class.
  for (int m = map_classes; m < kNoLabel; ++m)
    for (int r = 0; r < 256; ++r)
      if (joint[static_cast<size_t>(m) * 256 + r])
        throw InputError(s.map, "class value " + std::to_string(m) + " is outside its " + std::to_string(map_classes) +
                                    " class_names (" + std::to_string(kNoLabel) + " = no data)");
  std::array<int, 256> ref_class;
  ref_class.fill(-1);
  for (int r = 0; r < kNoLabel; ++r) {
    std::int64_t used = 0;
    for (int m = 0; m < 256; ++m) used += joint[static_cast<size_t>(m) * 256 + r];
    if (!used) continue;
    std::string name;
    if (s.reference_values == ReferenceValues::MapIndex) {
      if (r >= map_classes)
        throw InputError(s.reference, "reference value " + std::to_string(r) + " is not an index into the map's " +
                                          std::to_string(map_classes) + " classes (--reference-values map-index)");
      ref_class[static_cast<size_t>(r)] = r;
      continue;
    }
    if (r >= kCropClassCount)
      throw InputError(s.reference, "reference value " + std::to_string(r) +
                                        " is not a TimeSen2Crop class id (0-15, 255 = unlabelled); use "
                                        "--reference-values map-index if the labels index the map's classes");
    name = crop_class(r).name;
    for (int k = 0; k < static_cast<int>(a.class_names.size()); ++k)
      if (crop_class_id(a.class_names[static_cast<size_t>(k)]) == r || a.class_names[static_cast<size_t>(k)] == name)
        ref_class[static_cast<size_t>(r)] = k;
    if (ref_class[static_cast<size_t>(r)] < 0) {
      ref_class[static_cast<size_t>(r)] = static_cast<int>(a.class_names.size());
      a.class_names.push_back(name);
      log::warn("assess: reference class '" + name + "' is not among the map's classes: every such pixel is an omission");
    }
  }

  const int C = static_cast<int>(a.class_names.size());
  a.matrix = assess::ConfusionMatrix(C);
  a.mapped_pixels.assign(static_cast<size_t>(C), 0.0);
  std::int64_t mapped_total = 0, labelled_without_map = 0;
  for (int m = 0; m < 256; ++m)
    for (int r = 0; r < 256; ++r) {
      std::int64_t n = joint[static_cast<size_t>(m) * 256 + r];
      if (!n) continue;
      if (m != kNoLabel) {
        a.mapped_pixels[static_cast<size_t>(m)] += static_cast<double>(n);
        mapped_total += n;
      }
      if (r == kNoLabel) continue;
      if (m == kNoLabel)
        labelled_without_map += n;
      else
        a.matrix.add(m, ref_class[static_cast<size_t>(r)], n);
    }
  if (a.matrix.total() == 0)
    throw InputError(s.reference, "no pixel is labelled in both the reference and the map (tiles " + join_items(tiles) +
                                      "): nothing to assess");

  a.title = "Accuracy of " + s.map;
  a.sample_description =
      "Every pixel of tile(s) " + join_items(tiles) + " labelled in both the map and the reference (" +
      std::to_string(a.matrix.total()) + " of " + std::to_string(mapped_total) + " mapped pixels" +
      (labelled_without_map ? "; " + std::to_string(labelled_without_map) + " labelled pixels without a map class left out"
                            : std::string()) +
      "). This is the census of the reference parcels, not a probability sample of the map; the area-adjusted "
      "estimates treat it as a stratified sample with the map classes as strata, weighted by mapped pixel counts.";
  a.provenance = {{"map", s.map}, {"reference", join_items(reference_files)}, {"tiles", join_items(tiles)}};
  return a;
}

void write_assessment(const Assessment& a, const std::string& output_dir) {
  std::error_code ec;
  fs::create_directories(output_dir, ec);
  if (ec || !fs::is_directory(output_dir))
    throw OutputError(output_dir, "cannot create the output folder" + (ec ? ": " + ec.message() : std::string()));
  assess::AccuracyReport report;
  report.title = a.title;
  report.class_names = a.class_names;
  report.matrix = a.matrix;
  report.accuracy = assess::accuracy(a.matrix);
  report.area_adjusted = assess::area_adjusted(a.matrix, a.mapped_pixels, a.pixel_area_m2);
  report.sample_description = a.sample_description;
  report.provenance = a.provenance;
  report.provenance.emplace_back("created", log::utc_timestamp());
  report.confusion_figure = "confusion.png";
  viz::write_confusion_png((fs::path(output_dir) / "confusion.png").string(), a.matrix.counts(), a.class_names,
                           "Confusion matrix (rows: map, columns: reference)");
  assess::write_json_report((fs::path(output_dir) / "accuracy.json").string(), report);
  assess::write_markdown_report((fs::path(output_dir) / "accuracy.md").string(), report);

  const assess::Accuracy& acc = report.accuracy;
  const assess::Estimate& oa = report.area_adjusted->overall;
  log::root("assess: " + std::to_string(acc.samples) + " sample units, OA " + fmt(acc.overall) + ", kappa " +
            fmt(acc.kappa) + ", macro-F1 " + fmt(acc.macro_f1) + " (" + std::to_string(acc.macro_f1_classes) +
            " classes)");
  log::root("assess: area-adjusted OA " + fmt(oa.value) + " (95 % CI " + fmt(oa.lower()) + " - " + fmt(oa.upper()) +
            ")");
  if (!report.area_adjusted->unsampled_strata.empty())
    log::warn("assess: " + std::to_string(report.area_adjusted->unsampled_strata.size()) +
              " mapped class(es) have no labelled pixel and are left out of the area estimates (see accuracy.md)");
  log::root("assess: wrote " + output_dir + "/accuracy.json, accuracy.md, confusion.png");
}

}  // namespace s2crop::pipeline
