#include "s2crop/samples/patch_set.hpp"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/staged_file.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/version.hpp"

namespace s2crop::samples {

namespace {

constexpr hsize_t kChunkColumn = 4096;
constexpr hsize_t kMonths = kSeasonMonths;

// Writes whole patches (slices along the first dimension) at the ascending global indices `rows` from a contiguous
// buffer, in one (collective) H5Dwrite over a union of hyperslabs. A rank without patches selects nothing.
// (A candidate for h5::Dataset; kept here so the h5 header, which most of the project includes, stays as it is.)
template <typename T>
void write_rows(const h5::Dataset& ds, const std::vector<std::size_t>& rows, const T* data) {
  const auto d = ds.dims();
  h5::Handle file_space(H5Dget_space(ds.id()));
  h5::Handle mem_space;
  H5Sselect_none(file_space.id());
  if (rows.empty()) {
    hsize_t one = 1;
    mem_space = h5::Handle(H5Screate_simple(1, &one, nullptr));
    H5Sselect_none(mem_space.id());
  } else {
    std::vector<hsize_t> offset(d.size(), 0), count = d;
    for (size_t i = 0; i < rows.size();) {
      size_t j = i + 1;
      while (j < rows.size() && rows[j] == rows[j - 1] + 1) ++j;  // a run of consecutive patches: one block
      offset[0] = rows[i];
      count[0] = static_cast<hsize_t>(j - i);
      if (H5Sselect_hyperslab(file_space.id(), H5S_SELECT_OR, offset.data(), nullptr, count.data(), nullptr) < 0)
        throw OutputError(ds.file(), "bad selection in " + ds.path() + ": " + h5::last_error());
      i = j;
    }
    // The buffer in the dataset's own shape (patches x inner dims), not as a flat run of values: for a selection
    // of whole patches HDF5 then maps it to the chunks block by block instead of element by element (a 1-D memory
    // space made H5S_select_iterate most of the run time of import-bigearthnet).
    std::vector<hsize_t> mem_dims = d;
    mem_dims[0] = static_cast<hsize_t>(rows.size());
    mem_space = h5::Handle(H5Screate_simple(static_cast<int>(mem_dims.size()), mem_dims.data(), nullptr));
  }
  h5::Handle dxpl(H5Pcreate(H5P_DATASET_XFER));
  H5Pset_dxpl_mpio(dxpl.id(), H5FD_MPIO_COLLECTIVE);
  T dummy{};
  if (H5Dwrite(ds.id(), h5::native_type<T>(), mem_space.id(), file_space.id(), dxpl.id(), rows.empty() ? &dummy : data) <
      0)
    throw OutputError(ds.file(), "cannot write " + ds.path() + ": " + h5::last_error());
}

template <typename T>
void write_column(const h5::Node& root, const std::string& name, const std::vector<T>& local, hsize_t offset,
                  hsize_t total, T fill) {
  auto ds = root.template create_dataset<T>(name, {total}, {std::min(kChunkColumn, total)}, 1, fill);
  ds.template write<T>({offset}, {static_cast<hsize_t>(local.size())}, local.data(), true);
}

std::vector<hsize_t> patch_dims(const PatchSetHeader& h, const std::string& name) {
  const hsize_t S = static_cast<hsize_t>(h.patch_size), B = h.bands.size();
  if (name == "x") return {kMonths, B, S, S};
  if (name == "labels") return {h.label_layers.size(), S, S};
  return {kMonths, S, S};  // clear
}

std::string shape_text(const std::vector<hsize_t>& d) {
  std::string s;
  for (auto v : d) s += "[" + std::to_string(v) + "]";
  return s;
}

// The dataset `name` with `n` patches of `inner` shape (n unknown: -1, taken from the dataset).
h5::Dataset open_checked(const h5::File& f, const std::string& path, const std::string& name, hsize_t& n,
                         const std::vector<hsize_t>& inner) {
  if (!f.exists(name)) throw InputError(path, "not a patch set: dataset '" + name + "' is missing");
  auto ds = f.open_dataset(name);
  auto d = ds.dims();
  std::vector<hsize_t> want{n};
  want.insert(want.end(), inner.begin(), inner.end());
  if (n == static_cast<hsize_t>(-1) && !d.empty()) want[0] = d[0];
  if (d != want)
    throw InputError(path, "dataset '" + name + "' has shape " + shape_text(d) + ", expected " +
                               (n == static_cast<hsize_t>(-1) ? std::string("[n]") + shape_text(inner)
                                                              : shape_text(want)));
  n = d[0];
  return ds;
}

}  // namespace

const std::vector<std::string>& patch_label_layer_names() {
  static const std::vector<std::string> names{"crop_type", "field_boundary", "cropland"};
  return names;
}

std::string check_label_layers(const std::vector<std::string>& layers) {
  if (layers.empty()) return "no label layer";
  if (layers.size() > 255) return std::to_string(layers.size()) + " layers (at most 255)";
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].empty()) return "layer " + std::to_string(i) + " has no name";
    for (size_t j = 0; j < i; ++j)
      if (layers[j] == layers[i]) return "layer '" + layers[i] + "' is listed twice";
  }
  return {};
}

int PatchSetHeader::layer_index(const std::string& name) const {
  for (size_t i = 0; i < label_layers.size(); ++i)
    if (label_layers[i] == name) return static_cast<int>(i);
  return -1;
}

std::size_t PatchSetHeader::x_values() const {
  return static_cast<std::size_t>(kSeasonMonths) * bands.size() * static_cast<std::size_t>(patch_size) *
         static_cast<std::size_t>(patch_size);
}
std::size_t PatchSetHeader::label_values() const {
  return label_layers.size() * static_cast<std::size_t>(patch_size) *
         static_cast<std::size_t>(patch_size);
}
std::size_t PatchSetHeader::clear_values() const {
  return static_cast<std::size_t>(kSeasonMonths) * static_cast<std::size_t>(patch_size) *
         static_cast<std::size_t>(patch_size);
}

struct PatchSetWriter::Impl {
  // First, so that it outlives the file: an unfinished writer closes the file before rank 0 removes it.
  std::optional<StagedFile> staged;
  std::string path;
  PatchSetHeader header;
  MPI_Comm comm = MPI_COMM_NULL;
  h5::File file;
  h5::Dataset x, labels, clear;
  std::size_t total = 0;
};

PatchSetWriter::PatchSetWriter(const std::string& path, const PatchSetHeader& header, const Provenance& provenance,
                               std::size_t total, std::size_t first, const std::vector<std::uint16_t>& tile,
                               const std::vector<std::int32_t>& row, const std::vector<std::int32_t>& col,
                               MPI_Comm comm)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.path = path;
  m.header = header;
  m.header.patches = total;
  m.comm = comm;
  m.total = total;
  if (header.patch_size < kMinPatchSize || header.patch_size > kMaxPatchSize)
    throw Error(path + ": patch size " + std::to_string(header.patch_size) + " outside " +
                std::to_string(kMinPatchSize) + "-" + std::to_string(kMaxPatchSize));
  if (header.months.size() != static_cast<size_t>(kSeasonMonths)) throw Error(path + ": needs 12 month labels");
  if (tile.size() != row.size() || tile.size() != col.size()) throw Error(path + ": tile/row/col disagree in length");
  if (total == 0) throw AgreedError(path + ": no patches to write");
  if (auto problem = check_label_layers(header.label_layers); !problem.empty())
    throw Error(path + ": label layers: " + problem);
  // All ranks create the one file collectively, under one name; rank 0 alone moves it into place or removes it.
  m.staged.emplace(path, ".partial.h5");
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank != 0) m.staged->release();
  m.file = h5::File::create(m.staged->path(), comm);
  h5::File& f = m.file;
  f.set_attr("format", std::string(kPatchSetFormat));
  f.set_attr("format_version", kPatchSetVersion);
  f.set_attr("s2crop_version", std::string(kVersion));
  f.set_attr("created", parallel::broadcast_string(comm, log::utc_timestamp()));
  f.set_attr("config", provenance.config);
  f.set_attr("inputs", provenance.inputs);
  f.set_attr("bands", header.bands);
  f.set_attr("months", header.months);
  f.set_attr("season_start_month", static_cast<std::int64_t>(header.season_start_month));
  f.set_attr("tiles", header.tiles);
  f.set_attr("patch_size", static_cast<std::int64_t>(header.patch_size));
  f.set_attr("label_layers", header.label_layers);
  f.set_attr("label_scope", header.label_scope);
  f.set_attr("class_names", header.class_names);
  const hsize_t n = total;
  auto create = [&](const std::string& name, auto fill) {
    std::vector<hsize_t> dims{n}, chunk{1};
    for (auto v : patch_dims(header, name)) {
      dims.push_back(v);
      chunk.push_back(v);
    }
    return f.create_dataset<decltype(fill)>(name, dims, chunk, 1, fill);
  };
  m.x = create("x", std::int16_t{-32768});
  m.x.set_attr("scale_factor", 1e-4);
  m.x.set_attr("nodata", -32768.0);
  m.labels = create("labels", std::uint8_t{kNoPatchLabel});
  m.labels.set_attr("nodata", static_cast<double>(kNoPatchLabel));
  m.clear = create("clear", std::uint8_t{0});
  write_column<std::uint16_t>(f, "tile", tile, first, n, 0);
  write_column<std::int32_t>(f, "row", row, first, n, -1);
  write_column<std::int32_t>(f, "col", col, first, n, -1);
}

PatchSetWriter::~PatchSetWriter() = default;

void PatchSetWriter::write(const std::vector<std::size_t>& indices, const std::int16_t* x,
                           const std::uint8_t* labels, const std::uint8_t* clear) {
  Impl& m = *impl_;
  for (size_t i = 0; i < indices.size(); ++i)
    if (indices[i] >= m.total || (i > 0 && indices[i] <= indices[i - 1]))
      throw Error(m.path + ": patch index " + std::to_string(indices[i]) + " out of order or range");
  write_rows(m.x, indices, x);
  write_rows(m.labels, indices, labels);
  write_rows(m.clear, indices, clear);
}

void PatchSetWriter::finish() {
  Impl& m = *impl_;
  m.x = {};
  m.labels = {};
  m.clear = {};  // datasets closed before the file, or HDF5 refuses to finish it
  m.file.close();
  parallel::root_first(m.comm, [&] { m.staged->commit(); });
}

PatchSetHeader read_patch_set_header(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw InputError(path, "patch set not found");
  h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
  if (!f.has_attr("format") || f.attr_string("format") != kPatchSetFormat)
    throw InputError(path, "not an s2crop patch set (attribute format is not '" + std::string(kPatchSetFormat) +
                               "'); make one with 's2crop extract --patches SIZE'");
  if (!f.has_attr("format_version") || f.attr_int("format_version") > kPatchSetVersion)
    throw InputError(path, "patch-set format version " +
                               (f.has_attr("format_version") ? std::to_string(f.attr_int("format_version"))
                                                             : std::string("(missing)")) +
                               " is not one this s2crop understands (" + std::to_string(kPatchSetVersion) + ")");
  for (const char* a : {"bands", "months", "season_start_month", "tiles", "patch_size", "label_layers", "class_names"})
    if (!f.has_attr(a)) throw InputError(path, std::string("patch set without the attribute '") + a + "'");
  PatchSetHeader h;
  h.bands = f.attr_strings("bands");
  h.months = f.attr_strings("months");
  h.season_start_month = static_cast<int>(f.attr_int("season_start_month"));
  h.tiles = f.attr_strings("tiles");
  h.patch_size = static_cast<int>(f.attr_int("patch_size"));
  h.label_layers = f.attr_strings("label_layers");
  h.class_names = f.attr_strings("class_names");
  if (h.months.size() != static_cast<size_t>(kSeasonMonths))
    throw InputError(path, "attribute 'months' has " + std::to_string(h.months.size()) + " labels, expected 12");
  if (auto problem = check_label_layers(h.label_layers); !problem.empty())
    throw InputError(path, "attribute 'label_layers': " + problem);
  if (f.has_attr("label_scope")) h.label_scope = f.attr_string("label_scope");
  if (h.label_scope != "pixel" && h.label_scope != "patch")
    throw InputError(path, "attribute 'label_scope' is '" + h.label_scope + "', not pixel or patch");
  if (h.patch_size < kMinPatchSize || h.patch_size > kMaxPatchSize)
    throw InputError(path, "attribute 'patch_size' " + std::to_string(h.patch_size) + " is outside " +
                               std::to_string(kMinPatchSize) + "-" + std::to_string(kMaxPatchSize));
  if (h.bands.empty()) throw InputError(path, "attribute 'bands' is empty");
  hsize_t n = static_cast<hsize_t>(-1);
  open_checked(f, path, "x", n, patch_dims(h, "x"));
  open_checked(f, path, "labels", n, patch_dims(h, "labels"));
  open_checked(f, path, "clear", n, patch_dims(h, "clear"));
  for (const char* name : {"tile", "row", "col"}) open_checked(f, path, name, n, {});
  h.patches = static_cast<std::size_t>(n);
  return h;
}

PatchSet read_patch_set(const std::string& path, std::size_t begin, std::size_t end, bool images) {
  PatchSet s;
  s.header = read_patch_set_header(path);
  const auto& h = s.header;
  if (end < begin || end > h.patches)
    throw InputError(path, "patches [" + std::to_string(begin) + ", " + std::to_string(end) +
                               ") outside the patch set of " + std::to_string(h.patches));
  s.begin = begin;
  const size_t k = end - begin;
  if (images) s.x.resize(k * h.x_values());
  s.labels.resize(k * h.label_values());
  if (images) s.clear.resize(k * h.clear_values());
  s.tile.resize(k);
  s.row.resize(k);
  s.col.resize(k);
  if (k == 0) return s;
  h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
  auto slab = [&](const std::string& name) {
    std::vector<hsize_t> offset{begin}, count{k};
    if (name == "x" || name == "labels" || name == "clear")
      for (auto v : patch_dims(h, name)) {
        offset.push_back(0);
        count.push_back(v);
      }
    return std::make_pair(offset, count);
  };
  auto read = [&](const std::string& name, auto* out) {
    auto [offset, count] = slab(name);
    f.open_dataset(name).read(offset, count, out);
  };
  if (images) read("x", s.x.data());
  read("labels", s.labels.data());
  if (images) read("clear", s.clear.data());
  read("tile", s.tile.data());
  read("row", s.row.data());
  read("col", s.col.data());
  for (size_t i = 0; i < k; ++i)
    if (s.tile[i] >= h.tiles.size())
      throw InputError(path, "patch " + std::to_string(begin + i) + " has tile index " + std::to_string(s.tile[i]) +
                                 " but the file lists " + std::to_string(h.tiles.size()) + " tiles");
  return s;
}

PatchSet read_patch_set_labels(const std::string& path) {
  return read_patch_set(path, 0, read_patch_set_header(path).patches, false);
}

std::vector<std::uint16_t> read_patch_set_tiles(const std::string& path, const PatchSetHeader& header) {
  std::vector<std::uint16_t> tile(header.patches);
  if (tile.empty()) return tile;
  h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
  f.open_dataset("tile").read<std::uint16_t>({0}, {static_cast<hsize_t>(tile.size())}, tile.data());
  for (size_t i = 0; i < tile.size(); ++i)
    if (tile[i] >= header.tiles.size())
      throw InputError(path, "patch " + std::to_string(i) + " has tile index " + std::to_string(tile[i]) +
                                 " but the file lists " + std::to_string(header.tiles.size()) + " tiles");
  return tile;
}

}  // namespace s2crop::samples
