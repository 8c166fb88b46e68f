#include "s2crop/pipeline/composite_file.hpp"

#include <algorithm>
#include <filesystem>

#include "s2crop/common/errors.hpp"
#include "s2crop/pipeline/chunk_codec.hpp"

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

namespace {

// [planes][window] of a dataset [leading...][y][x] with `planes` = the product of the leading extents. Stored
// chunks are decoded here (decode_stored_chunk: libdeflate), not through HDF5's zlib filter: inflating was a third
// of segment predict's time. A layout this does not know (chunks spanning several planes, other filters) is read
// through HDF5.
template <typename T>
void read_planes(const h5::Dataset& ds, const std::vector<hsize_t>& first, const std::vector<hsize_t>& leading,
                 const geo::Window& w, T* out, const std::string& path) {
  std::vector<hsize_t> offset = first, count = leading;
  offset.push_back(static_cast<hsize_t>(w.y0));
  offset.push_back(static_cast<hsize_t>(w.x0));
  count.push_back(static_cast<hsize_t>(w.height));
  count.push_back(static_cast<hsize_t>(w.width));
  const h5::Dataset::ChunkStorage st = ds.chunk_storage();
  bool direct = st.chunk.size() == leading.size() + 2 && !st.other_filters && st.element_bytes == sizeof(T);
  for (size_t k = 0; direct && k < leading.size(); ++k) direct = st.chunk[k] == 1;
  // A window or plane count past the dataset's extent is HDF5's to refuse, by name.
  const std::vector<hsize_t> dims = ds.dims();
  for (size_t k = 0; direct && k < dims.size(); ++k) direct = k < count.size() && offset[k] + count[k] <= dims[k];
  if (!direct) {
    ds.read<T>(offset, count, out);
    return;
  }
  const size_t ch = static_cast<size_t>(st.chunk[leading.size()]), cw = static_cast<size_t>(st.chunk.back());
  const size_t npx = static_cast<size_t>(w.pixels()), width = static_cast<size_t>(w.width);
  size_t planes = 1;
  for (hsize_t e : leading) planes *= static_cast<size_t>(e);
  const size_t y0 = static_cast<size_t>(w.y0), x0 = static_cast<size_t>(w.x0);
  const size_t y1 = y0 + static_cast<size_t>(w.height), x1 = x0 + width;
  std::vector<std::uint8_t> stored, decoded(ch * cw * sizeof(T));
  std::vector<hsize_t> at(leading.size() + 2, 0);
  for (size_t p = 0; p < planes; ++p) {
    for (size_t k = leading.size(), rest = p; k-- > 0;) {  // the plane's index in each leading dimension
      at[k] = first[k] + static_cast<hsize_t>(rest % leading[k]);
      rest /= leading[k];
    }
    T* plane = out + p * npx;
    for (size_t cy = y0 / ch; cy * ch < y1; ++cy)
      for (size_t cx = x0 / cw; cx * cw < x1; ++cx) {
        at[leading.size()] = cy * ch;
        at[leading.size() + 1] = cx * cw;
        const size_t ya = std::max(y0, cy * ch), yb = std::min(y1, (cy + 1) * ch);
        const size_t xa = std::max(x0, cx * cw), xb = std::min(x1, (cx + 1) * cw);
        if (!ds.read_chunk(at, stored)) {  // never written: the fill value
          for (size_t y = ya; y < yb; ++y)
            std::fill_n(plane + (y - y0) * width + (xa - x0), xb - xa, static_cast<T>(st.fill));
          continue;
        }
        decode_stored_chunk(stored.data(), stored.size(), sizeof(T), st.deflate, st.shuffle, decoded, path);
        const T* chunk = reinterpret_cast<const T*>(decoded.data());
        for (size_t y = ya; y < yb; ++y)
          std::copy_n(chunk + (y - cy * ch) * cw + (xa - cx * cw), xb - xa, plane + (y - y0) * width + (xa - x0));
      }
  }
}

}  // namespace

std::vector<std::int16_t> CompositeFile::read_reflectance(const CompositeTile& tile, const geo::Window& w) const {
  const hsize_t nb = tile.bands.size();
  std::vector<std::int16_t> out(static_cast<size_t>(kMonths) * nb * static_cast<size_t>(w.pixels()));
  read_planes(file_.open_group("tiles").open_group(tile.name).open_dataset("reflectance"), {0, 0}, {kMonths, nb}, w,
              out.data(), path_);
  return out;
}

std::vector<std::int16_t> CompositeFile::read_reflectance(const CompositeTile& tile, const geo::Window& w,
                                                          int month) const {
  const hsize_t nb = tile.bands.size();
  if (month < 0 || month >= kMonths) throw Error(path_ + ": no month " + std::to_string(month) + " in a composite");
  std::vector<std::int16_t> out(nb * static_cast<size_t>(w.pixels()));
  read_planes(file_.open_group("tiles").open_group(tile.name).open_dataset("reflectance"),
              {static_cast<hsize_t>(month), 0}, {1, nb}, w, out.data(), path_);
  return out;
}

std::vector<std::uint8_t> CompositeFile::read_clear_count(const CompositeTile& tile, const geo::Window& w) const {
  std::vector<std::uint8_t> out(static_cast<size_t>(kMonths) * static_cast<size_t>(w.pixels()));
  read_planes(file_.open_group("tiles").open_group(tile.name).open_dataset("clear_count"), {0}, {kMonths}, w,
              out.data(), path_);
  return out;
}

}  // namespace s2crop::pipeline
