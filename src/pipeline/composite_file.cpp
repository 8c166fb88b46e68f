#include "s2crop/pipeline/composite_file.hpp"

#include <filesystem>

#include "s2crop/common/errors.hpp"

namespace s2crop::pipeline {

namespace {

constexpr int kMonths = 12;

int month_of_label(const std::string& file, const std::string& tile, const std::string& label) {
  // "YYYY-MM"
  if (label.size() == 7 && label[4] == '-') {
    const int month = std::atoi(label.c_str() + 5);
    if (month >= 1 && month <= 12) return month;
  }
  throw InputError(file, "tile " + tile + ": season_start '" + label + "' is not YYYY-MM");
}

}  // namespace

CompositeFile::CompositeFile(const std::string& path) : path_(path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw InputError(path, "composite file not found");
  file_ = h5::File::open_read(path, MPI_COMM_NULL);
  if (!file_.has_attr("format") || file_.attr_string("format") != kCompositeFormat)
    throw InputError(path, "not an s2crop composite file (attribute format is not '" + std::string(kCompositeFormat) +
                               "'); make one with 's2crop composite'");
  if (file_.attr_int("format_version") > kCompositeFormatVersion)
    throw InputError(path, "composite format version " + std::to_string(file_.attr_int("format_version")) +
                               " is newer than this s2crop understands (" + std::to_string(kCompositeFormatVersion) +
                               ")");
  if (!file_.exists("tiles")) throw InputError(path, "composite file has no /tiles group");
  h5::Node tiles = file_.open_group("tiles");
  for (const std::string& name : tiles.children()) {
    h5::Node g = tiles.open_group(name);
    for (const char* attr : {"crs_wkt", "geotransform", "year", "season_start", "bands", "block_size"})
      if (!g.has_attr(attr)) throw InputError(path, "tile " + name + " lacks the attribute '" + attr + "'");
    for (const char* ds : {"reflectance", "clear_count"})
      if (!g.exists(ds)) throw InputError(path, "tile " + name + " lacks the dataset '" + ds + "'");
    CompositeTile t;
    t.name = name;
    t.grid.crs_wkt = g.attr_string("crs_wkt");
    auto gt = g.attr_doubles("geotransform");
    if (gt.size() != 6) throw InputError(path, "tile " + name + ": geotransform must have 6 numbers");
    std::copy(gt.begin(), gt.end(), t.grid.geotransform.begin());
    t.year = static_cast<int>(g.attr_int("year"));
    t.season_start_month = month_of_label(path, name, g.attr_string("season_start"));
    t.bands = g.attr_strings("bands");
    if (g.has_attr("months")) t.months = g.attr_strings("months");
    t.block_size = static_cast<int>(g.attr_int("block_size"));
    auto dims = g.open_dataset("reflectance").dims();
    if (dims.size() != 4 || dims[0] != kMonths || dims[1] != t.bands.size())
      throw InputError(path, "tile " + name + ": reflectance must be [12][" + std::to_string(t.bands.size()) +
                                 " bands][y][x]");
    t.grid.height = static_cast<int>(dims[2]);
    t.grid.width = static_cast<int>(dims[3]);
    auto count_dims = g.open_dataset("clear_count").dims();
    if (count_dims != std::vector<hsize_t>{kMonths, dims[2], dims[3]})
      throw InputError(path, "tile " + name + ": clear_count must be [12][y][x] like reflectance");
    if (t.block_size < 1) throw InputError(path, "tile " + name + ": block_size must be positive");
    tiles_.push_back(std::move(t));
  }
  if (tiles_.empty()) throw InputError(path, "composite file has no tiles");
}

const CompositeTile& CompositeFile::tile(const std::string& name) const {
  for (auto& t : tiles_)
    if (t.name == name) return t;
  std::string names;
  for (auto& t : tiles_) names += (names.empty() ? "" : ", ") + t.name;
  throw InputError(path_, "has no tile " + name + " (tiles: " + names + ")");
}

std::vector<std::int16_t> CompositeFile::read_reflectance(const CompositeTile& tile, const geo::Window& w) const {
  const hsize_t nb = tile.bands.size();
  std::vector<std::int16_t> out(static_cast<size_t>(kMonths) * nb * static_cast<size_t>(w.pixels()));
  file_.open_group("tiles").open_group(tile.name).open_dataset("reflectance").read<std::int16_t>(
      {0, 0, static_cast<hsize_t>(w.y0), static_cast<hsize_t>(w.x0)},
      {kMonths, nb, static_cast<hsize_t>(w.height), static_cast<hsize_t>(w.width)}, out.data());
  return out;
}

std::vector<std::uint8_t> CompositeFile::read_clear_count(const CompositeTile& tile, const geo::Window& w) const {
  std::vector<std::uint8_t> out(static_cast<size_t>(kMonths) * static_cast<size_t>(w.pixels()));
  file_.open_group("tiles").open_group(tile.name).open_dataset("clear_count").read<std::uint8_t>(
      {0, static_cast<hsize_t>(w.y0), static_cast<hsize_t>(w.x0)},
      {kMonths, static_cast<hsize_t>(w.height), static_cast<hsize_t>(w.width)}, out.data());
  return out;
}

}  // namespace s2crop::pipeline
