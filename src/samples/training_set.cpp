#include "s2crop/samples/training_set.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/staged_file.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/version.hpp"

namespace s2crop::samples {

namespace {

constexpr hsize_t kChunkSamples = 4096;

template <typename T>
void write_column(const h5::Node& root, const std::string& name, const std::vector<T>& local, hsize_t offset,
                  hsize_t total, T fill) {
  auto ds = root.template create_dataset<T>(name, {total}, {std::min(kChunkSamples, total)}, 1, fill);
  ds.template write<T>({offset}, {static_cast<hsize_t>(local.size())}, local.data(), true);
}

template <typename T>
std::vector<T> read_column(const h5::Node& root, const std::string& name, size_t n) {
  if (!root.exists(name)) throw InputError(root.file(), "not a training set: dataset '" + name + "' is missing");
  auto ds = root.open_dataset(name);
  auto d = ds.dims();
  if (d.size() != 1 || d[0] != n)
    throw InputError(root.file(), "dataset '" + name + "' has the wrong shape (expected [" + std::to_string(n) + "])");
  std::vector<T> v(n);
  if (n) ds.template read<T>({0}, {n}, v.data());
  return v;
}

}  // namespace

void TrainingSet::add(const std::int16_t* series, std::uint8_t label, std::uint16_t tile_index,
                      std::int64_t parcel_id, std::int32_t row_index, std::int32_t col_index,
                      const std::uint8_t* clear_months) {
  // clear is all-or-nothing: either every sample carries its flags or none does.
  if (clear_months != nullptr) {
    if (clear.size() != size() * kSeasonMonths) throw Error("training set: clear flags given for some samples only");
    clear.insert(clear.end(), clear_months, clear_months + kSeasonMonths);
  } else if (!clear.empty()) {
    throw Error("training set: clear flags missing for a sample");
  }
  x.insert(x.end(), series, series + values_per_sample());
  y.push_back(label);
  tile.push_back(tile_index);
  parcel.push_back(parcel_id);
  row.push_back(row_index);
  col.push_back(col_index);
}

void TrainingSet::check_consistent(const std::string& what) const {
  const size_t n = size();
  if (x.size() != n * values_per_sample() || tile.size() != n || parcel.size() != n || row.size() != n ||
      col.size() != n)
    throw Error(what + ": training-set arrays disagree in length");
  if (!clear.empty() && clear.size() != n * kSeasonMonths) throw Error(what + ": clear flags disagree in length");
  if (header.months.size() != static_cast<size_t>(kSeasonMonths)) throw Error(what + ": needs 12 month labels");
  for (auto v : y)
    if (v >= header.class_names.size())
      throw Error(what + ": class index " + std::to_string(v) + " outside the " +
                  std::to_string(header.class_names.size()) + " class names");
  for (auto t : tile)
    if (t >= header.tiles.size()) throw Error(what + ": tile index " + std::to_string(t) + " out of range");
}

std::vector<std::string> season_month_labels(int first_month) {
  static const char* kNames[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::vector<std::string> out;
  for (int i = 0; i < kSeasonMonths; ++i) out.push_back(kNames[(first_month - 1 + i) % 12]);
  return out;
}

void write_training_set(const std::string& path, const TrainingSet& local, const Provenance& provenance,
                        const parallel::MpiContext& mpi) {
  local.check_consistent(path);
  const auto& h = local.header;
  const hsize_t nb = h.bands.size();
  std::int64_t mine = static_cast<std::int64_t>(local.size()), offset = 0, total = 0;
  MPI_Exscan(&mine, &offset, 1, MPI_INT64_T, MPI_SUM, mpi.world());
  if (mpi.rank() == 0) offset = 0;  // MPI_Exscan leaves rank 0's result undefined
  MPI_Allreduce(&mine, &total, 1, MPI_INT64_T, MPI_SUM, mpi.world());
  if (total == 0) throw AgreedError(path + ": no samples to write (no labelled pixel matched the selection)");
  // All ranks create the one file collectively, under one name; rank 0 alone moves it into place.
  StagedFile staged(path, ".partial.h5");
  if (mpi.rank() != 0) staged.release();
  {
    // Past this point a failure on one rank would leave the others in HDF5 collectives: stop all (see main).
    auto write_all = [&]() noexcept(true) {
      h5::File f = h5::File::create(staged.path(), mpi.world());
      f.set_attr("format", std::string(kTrainingSetFormat));
      f.set_attr("format_version", kTrainingSetVersion);
      f.set_attr("s2crop_version", std::string(kVersion));
      f.set_attr("created", parallel::broadcast_string(mpi.world(), log::utc_timestamp()));
      f.set_attr("config", provenance.config);
      f.set_attr("inputs", provenance.inputs);
      f.set_attr("source", h.source);
      f.set_attr("bands", h.bands);
      f.set_attr("class_names", h.class_names);
      f.set_attr("tiles", h.tiles);
      f.set_attr("months", h.months);
      f.set_attr("season_start_month", static_cast<std::int64_t>(h.season_start_month));
      const hsize_t n = static_cast<hsize_t>(total), off = static_cast<hsize_t>(offset);
      {
        auto x = f.create_dataset<std::int16_t>("x", {n, kSeasonMonths, nb},
                                                {std::min(kChunkSamples, n), kSeasonMonths, nb}, 1, -32768);
        x.set_attr("scale_factor", 1e-4);
        x.write<std::int16_t>({off, 0, 0}, {static_cast<hsize_t>(mine), kSeasonMonths, nb}, local.x.data(), true);
      }  // closed before the file, or HDF5 refuses to finish it
      write_column<std::uint8_t>(f, "y", local.y, off, n, 255);
      write_column<std::uint16_t>(f, "tile", local.tile, off, n, 0);
      write_column<std::int64_t>(f, "parcel", local.parcel, off, n, -1);
      write_column<std::int32_t>(f, "row", local.row, off, n, -1);
      write_column<std::int32_t>(f, "col", local.col, off, n, -1);
      // Every rank must agree on whether the dataset exists (collective create): a rank without samples has none.
      int has_clear = local.clear.empty() && mine > 0 ? 0 : 1, all_clear = 0;
      MPI_Allreduce(&has_clear, &all_clear, 1, MPI_INT, MPI_MIN, mpi.world());
      int any_clear = local.clear.empty() ? 0 : 1, some = 0;
      MPI_Allreduce(&any_clear, &some, 1, MPI_INT, MPI_MAX, mpi.world());
      if (all_clear && some) {
        auto ds = f.create_dataset<std::uint8_t>("clear", {n, kSeasonMonths}, {std::min(kChunkSamples, n), kSeasonMonths},
                                                 1, 0);
        ds.write<std::uint8_t>({off, 0}, {static_cast<hsize_t>(mine), kSeasonMonths}, local.clear.data(), true);
      }
      f.close();
    };
    write_all();
  }
  parallel::root_first(mpi.world(), [&] { staged.commit(); });
}

TrainingSet read_training_set_labels(const std::string& path) {
  if (!std::filesystem::exists(path)) throw InputError(path, "training set not found");
  h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
  if (!f.has_attr("format") || f.attr_string("format") != kTrainingSetFormat)
    throw InputError(path, "not an s2crop training set (attribute format is not '" + std::string(kTrainingSetFormat) +
                               "'); make one with 's2crop extract' or 's2crop import-timesen2crop'");
  if (f.attr_int("format_version") > kTrainingSetVersion)
    throw InputError(path, "training-set format version " + std::to_string(f.attr_int("format_version")) +
                               " is newer than this s2crop understands (" + std::to_string(kTrainingSetVersion) + ")");
  TrainingSet s;
  s.header.bands = f.attr_strings("bands");
  s.header.class_names = f.attr_strings("class_names");
  s.header.tiles = f.attr_strings("tiles");
  s.header.months = f.attr_strings("months");
  s.header.season_start_month = static_cast<int>(f.attr_int("season_start_month"));
  s.header.source = f.attr_string("source");
  if (!f.exists("x")) throw InputError(path, "not a training set: dataset 'x' is missing");
  auto d = f.open_dataset("x").dims();
  if (d.size() != 3 || d[1] != kSeasonMonths || d[2] != s.header.bands.size())
    throw InputError(path, "dataset 'x' must be [sample][12][" + std::to_string(s.header.bands.size()) + "]");
  const size_t n = d[0];
  s.y = read_column<std::uint8_t>(f, "y", n);
  s.tile = read_column<std::uint16_t>(f, "tile", n);
  s.parcel = read_column<std::int64_t>(f, "parcel", n);
  s.row = read_column<std::int32_t>(f, "row", n);
  s.col = read_column<std::int32_t>(f, "col", n);
  for (size_t i = 0; i < n; ++i) {
    if (s.y[i] >= s.header.class_names.size())
      throw InputError(path, "sample " + std::to_string(i) + " has class " + std::to_string(s.y[i]) + " but only " +
                                 std::to_string(s.header.class_names.size()) + " class names");
    if (s.tile[i] >= s.header.tiles.size())
      throw InputError(path, "sample " + std::to_string(i) + " has an out-of-range tile index");
  }
  return s;
}

std::vector<std::int16_t> read_training_set_x(const std::string& path, size_t begin, size_t end) {
  h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
  auto x = f.open_dataset("x");
  auto d = x.dims();
  if (end < begin || end > d[0]) throw InputError(path, "sample range outside the training set");
  std::vector<std::int16_t> out((end - begin) * d[1] * d[2]);
  if (end > begin) x.read<std::int16_t>({begin, 0, 0}, {end - begin, d[1], d[2]}, out.data());
  return out;
}

std::vector<std::uint8_t> read_training_set_clear(const std::string& path, size_t begin, size_t end) {
  h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
  const hsize_t n = f.open_dataset("x").dims()[0];
  if (end < begin || end > n) throw InputError(path, "sample range outside the training set");
  std::vector<std::uint8_t> out((end - begin) * kSeasonMonths, 1);
  if (!f.exists("clear")) return out;
  auto ds = f.open_dataset("clear");
  auto d = ds.dims();
  if (d.size() != 2 || d[0] != n || d[1] != kSeasonMonths)
    throw InputError(path, "dataset 'clear' must be [sample][12]");
  if (end > begin) ds.read<std::uint8_t>({begin, 0}, {end - begin, kSeasonMonths}, out.data());
  for (auto& v : out) v = v ? 1 : 0;
  return out;
}

TrainingSet read_training_set(const std::string& path) {
  TrainingSet s = read_training_set_labels(path);
  s.x = read_training_set_x(path, 0, s.size());
  h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
  if (f.exists("clear")) s.clear = read_training_set_clear(path, 0, s.size());
  return s;
}

}  // namespace s2crop::samples
