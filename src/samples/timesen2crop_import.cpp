#include "s2crop/samples/timesen2crop_import.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/staged_file.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/samples/training_set.hpp"

namespace fs = std::filesystem;

namespace s2crop::samples::timesen2crop {

using sentinel2::Date;

namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Sample files in TimeSen2Crop's running-index order: numeric stems by value (0, 1, 2, ..., 10), then the rest
// lexically; "01" and "1" (same value) lexically, so the order is total.
bool stem_before(const std::string& a, const std::string& b) {
  const bool na = all_digits(a), nb = all_digits(b);
  if (na != nb) return na;
  if (na) {
    auto strip = [](const std::string& s) {
      std::size_t i = s.find_first_not_of('0');
      return i == std::string::npos ? std::string("0") : s.substr(i);
    };
    std::string sa = strip(a), sb = strip(b);
    if (sa.size() != sb.size()) return sa.size() < sb.size();
    if (sa != sb) return sa < sb;
  }
  return a < b;
}

// The inventory travels as tab-separated lines: a name with a tab or newline cannot be represented.
void check_name(const fs::path& p) {
  std::string s = p.string();
  if (s.find_first_of("\t\n\r") != std::string::npos)
    throw InputError(s, "file or folder name contains a tab or line break; rename it");
}

std::vector<fs::path> find_tile_folders(const fs::path& root) {
  std::vector<fs::path> found;
  if (is_tile_folder_name(root.filename().string())) {
    found.push_back(root);
    return found;
  }
  std::error_code ec;
  fs::recursive_directory_iterator it(root, ec), end;
  if (ec) throw InputError(root.string(), "cannot list: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw InputError(it->path().string(), "cannot list: " + ec.message());
    if (!it->is_directory(ec)) continue;
    if (is_tile_folder_name(it->path().filename().string())) {
      found.push_back(it->path());
      it.disable_recursion_pending();  // class folders and their files are listed per tile
    }
  }
  if (ec) throw InputError(root.string(), "cannot list: " + ec.message());
  return found;
}

}  // namespace

Inventory scan_tree(const std::string& root, std::vector<std::string>& warnings) {
  std::error_code ec;
  if (!fs::exists(root, ec)) throw InputError(root, "TimeSen2Crop folder not found");
  if (!fs::is_directory(root, ec)) throw InputError(root, "is not a folder (expected the TimeSen2Crop tree)");
  fs::path root_path = fs::path(root).lexically_normal();
  if (root_path.filename().empty()) root_path = root_path.parent_path();  // "dir/" -> "dir"
  std::map<std::string, fs::path> by_name;
  for (const fs::path& dir : find_tile_folders(root_path)) {
    check_name(dir);
    const std::string name = dir.filename().string();
    auto [it, inserted] = by_name.emplace(name, dir);
    if (!inserted)
      throw InputError(dir.string(), "tile folder " + name + " found twice (also " + it->second.string() +
                                         "); import one copy of the data set");
  }
  if (by_name.empty())
    throw InputError(root, "not a TimeSen2Crop tree: no tile folder (named like 33UVP or 2019_33UVP, holding "
                           "dates.csv and class folders 0..15) found under it");
  Inventory inv;
  for (const auto& [name, dir] : by_name) {
    if (inv.tiles.size() >= 65535) throw InputError(root, "more than 65535 tile folders");
    const std::uint16_t tile_index = static_cast<std::uint16_t>(inv.tiles.size());
    const fs::path dates = dir / "dates.csv";
    if (!fs::is_regular_file(dates, ec))
      throw InputError(dates.string(), "missing: every TimeSen2Crop tile folder has a dates.csv (header "
                                       "acquisition_date, then YYYYMMDD per line)");
    inv.tiles.push_back({name, dir.string(), read_dates(dates.string())});
    std::map<int, fs::path> class_dirs;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (!entry.is_directory(ec)) continue;
      const std::string folder = entry.path().filename().string();
      if (!all_digits(folder)) {
        warnings.push_back(entry.path().string() + ": not a class folder (name is not a class id 0..15); ignored");
        continue;
      }
      const int id = folder.size() > 3 ? 9999 : std::stoi(folder);
      if (id >= kCropClassCount)
        throw InputError(entry.path().string(), "class folder " + folder + " is outside the TimeSen2Crop class ids "
                                                "0..15");
      auto [it, inserted] = class_dirs.emplace(id, entry.path());
      if (!inserted)
        throw InputError(entry.path().string(), "class " + std::to_string(id) + " has two folders (also " +
                                                    it->second.string() + ")");
    }
    if (ec) throw InputError(dir.string(), "cannot list: " + ec.message());
    for (const auto& [id, class_dir] : class_dirs) {
      check_name(class_dir);
      std::vector<std::string> stems;
      std::size_t others = 0;
      for (const auto& entry : fs::directory_iterator(class_dir, ec)) {
        const fs::path& p = entry.path();
        if (entry.is_regular_file(ec) && p.extension() == ".csv") {
          check_name(p);
          stems.push_back(p.stem().string());
        } else {
          ++others;
        }
      }
      if (ec) throw InputError(class_dir.string(), "cannot list: " + ec.message());
      if (others)
        warnings.push_back(class_dir.string() + ": " + std::to_string(others) + " entries that are not .csv files "
                           "ignored");
      std::sort(stems.begin(), stems.end(), stem_before);
      for (const auto& stem : stems)
        inv.files.push_back({tile_index, static_cast<std::uint8_t>(id), (class_dir / (stem + ".csv")).string()});
    }
  }
  return inv;
}

std::string serialise(const Inventory& inv) {
  std::ostringstream o;
  for (const auto& t : inv.tiles) {
    o << "T\t" << t.name << '\t' << t.dir << '\t';
    for (std::size_t i = 0; i < t.dates.size(); ++i) o << (i ? "," : "") << t.dates[i].compact();
    o << '\n';
  }
  // Files grouped by folder: the folder once, then the bare names (a million paths would repeat it a million times).
  std::size_t i = 0;
  while (i < inv.files.size()) {
    const auto& f = inv.files[i];
    const fs::path folder = fs::path(f.path).parent_path();
    o << "C\t" << f.tile << '\t' << static_cast<int>(f.class_id) << '\t' << folder.string();
    for (; i < inv.files.size() && inv.files[i].tile == f.tile && inv.files[i].class_id == f.class_id; ++i)
      o << '\t' << fs::path(inv.files[i].path).filename().string();
    o << '\n';
  }
  return o.str();
}

Inventory deserialise(const std::string& text) {
  Inventory inv;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto f = split_fields(line);
    if (f[0] == "T") {
      Inventory::Tile t{f[1], f[2], {}};
      for (const auto& d : split_fields(f[3], ',')) t.dates.push_back(Date::parse(d));
      inv.tiles.push_back(std::move(t));
    } else if (f[0] == "C") {
      const auto tile = static_cast<std::uint16_t>(std::stoi(f[1]));
      const auto cls = static_cast<std::uint8_t>(std::stoi(f[2]));
      for (std::size_t k = 4; k < f.size(); ++k) inv.files.push_back({tile, cls, (fs::path(f[3]) / f[k]).string()});
    }
  }
  return inv;
}

namespace {

constexpr std::size_t kFilesPerRound = 256;  // files between two exchanges of progress and failure

struct BadFile {
  std::size_t index;  // in the global order
  std::string message;
};

std::string encode(const std::vector<BadFile>& bad) {
  std::string s;
  for (const auto& b : bad) {
    std::string m = b.message;
    std::replace_if(m.begin(), m.end(), [](char c) { return c == '\t' || c == '\n' || c == '\r'; }, ' ');
    s += std::to_string(b.index) + '\t' + m + '\n';
  }
  return s;
}

std::vector<BadFile> decode(const std::vector<std::string>& per_rank) {
  std::vector<BadFile> out;
  for (const auto& text : per_rank) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      auto f = split_fields(line);
      if (f.size() >= 2) out.push_back({static_cast<std::size_t>(std::stoull(f[0])), f[1]});
    }
  }
  std::sort(out.begin(), out.end(), [](const BadFile& a, const BadFile& b) { return a.index < b.index; });
  return out;
}

std::string month_text(int year, int month) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d", year + (month - 1) / 12, (month - 1) % 12 + 1);
  return buf;
}

void check_output(const ImportSettings& s) {
  std::error_code ec;
  if (fs::exists(s.output, ec) && !s.overwrite)
    throw OutputError(s.output, "exists already; use --overwrite to replace it");
  fs::path parent = fs::path(s.output).parent_path();
  if (!parent.empty() && !fs::create_directories(parent, ec) && ec)
    throw OutputError(s.output, "cannot create its folder " + parent.string() + ": " + ec.message());
}

}  // namespace

void run_import(const ImportSettings& s, const parallel::MpiContext& mpi) {
  parallel::root_first(mpi.world(), [&] { check_output(s); });
  std::string text;
  parallel::root_first(mpi.world(), [&] {
    std::vector<std::string> warnings;
    Inventory found = scan_tree(s.root, warnings);
    for (const auto& w : warnings) log::warn(w);
    text = serialise(found);
  });
  const Inventory inv = deserialise(parallel::broadcast_string(mpi.world(), text));
  const std::size_t n = inv.files.size();
  if (n == 0) throw AgreedError(s.root + ": the tile folders hold no sample file (<tile>/<class id>/<n>.csv)");

  std::vector<TileCalendar> calendars;
  for (const auto& t : inv.tiles) {
    calendars.push_back(make_calendar(t.dates, s.season_month, s.offset_mode));
    const TileCalendar& c = calendars.back();
    log::root("tile " + t.name + ": " + std::to_string(t.dates.size()) + " dates, season " +
              month_text(c.season_year, c.season_month) + " to " + month_text(c.season_year, c.season_month + 11));
    if (c.rows_outside && mpi.is_root())
      log::warn(t.dir + "/dates.csv: " + std::to_string(c.rows_outside) + " of " + std::to_string(t.dates.size()) +
                " dates fall outside the season starting " + month_text(c.season_year, c.season_month) +
                " and are ignored");
  }

  TrainingSet local;
  local.header.bands = band_names();
  for (const auto& c : crop_classes()) local.header.class_names.push_back(c.name);
  for (const auto& t : inv.tiles) local.header.tiles.push_back(t.name);
  local.header.months = season_month_labels(s.season_month);
  local.header.season_start_month = s.season_month;
  local.header.source = "timesen2crop";

  // Contiguous ranges in the global order: write_training_set concatenates the ranks' samples in rank order.
  const auto rank = static_cast<std::size_t>(mpi.rank()), ranks = static_cast<std::size_t>(mpi.size());
  const std::size_t begin = n * rank / ranks, end = n * (rank + 1) / ranks;
  const std::size_t longest = (n + ranks - 1) / ranks;  // the same on every rank: all make the same exchanges
  const std::size_t rounds = (longest + kFilesPerRound - 1) / kFilesPerRound;

  const std::size_t n_tiles = inv.tiles.size();
  std::vector<std::int64_t> counts(n_tiles * kCropClassCount + n_tiles, 0);  // samples per (tile, class), dropped
  std::vector<BadFile> bad;
  std::vector<std::int16_t> series_out(static_cast<std::size_t>(composite::kMonths) * kBands);
  std::unique_ptr<log::Progress> progress;
  if (mpi.is_root()) progress = std::make_unique<log::Progress>("import-timesen2crop", "files", static_cast<std::int64_t>(n));
  std::int64_t bad_total = 0;
  std::size_t next = begin;
  for (std::size_t round = 0; round < rounds; ++round) {
    const std::size_t stop = std::min(end, begin + (round + 1) * kFilesPerRound);
    for (; next < stop && (s.skip_bad || bad.empty()); ++next) {
      const auto& f = inv.files[next];
      try {
        PixelSeries series = read_pixel_csv(f.path, inv.tiles[f.tile].dates.size());
        std::uint8_t clear_months[composite::kMonths];
        if (composite_series(series, calendars[f.tile], s.rule, series_out.data(), clear_months)) {
          // The clear flags let `ndvi train` learn from observed months only.
          local.add(series_out.data(), f.class_id, f.tile, -1, -1, -1, clear_months);
          ++counts[f.tile * kCropClassCount + f.class_id];
        } else {
          ++counts[n_tiles * kCropClassCount + f.tile];
        }
      } catch (const InputError& e) {
        bad.push_back({next, e.what()});
      }
    }
    std::int64_t mine[2] = {static_cast<std::int64_t>(next - begin), static_cast<std::int64_t>(bad.size())};
    std::int64_t all[2] = {0, 0};
    MPI_Allreduce(mine, all, 2, MPI_INT64_T, MPI_SUM, mpi.world());
    if (progress) progress->update(all[0]);
    bad_total = all[1];
    if (!s.skip_bad && bad_total > 0) break;
  }
  if (progress) progress->finish();

  std::vector<BadFile> all_bad;
  if (bad_total > 0) all_bad = decode(parallel::gather_strings(mpi.world(), encode(bad)));
  if (!s.skip_bad && bad_total > 0) {
    std::string first = mpi.is_root() ? all_bad.front().message : std::string();
    throw AgreedError(parallel::broadcast_string(mpi.world(), first) +
                      " (--on-error skip leaves malformed sample files out)");
  }

  std::vector<std::int64_t> totals(counts.size(), 0);
  MPI_Allreduce(counts.data(), totals.data(), static_cast<int>(counts.size()), MPI_INT64_T, MPI_SUM, mpi.world());
  std::int64_t samples = 0, dropped = 0;
  for (std::size_t t = 0; t < n_tiles; ++t) {
    for (int c = 0; c < kCropClassCount; ++c) samples += totals[t * kCropClassCount + static_cast<std::size_t>(c)];
    dropped += totals[n_tiles * kCropClassCount + t];
  }
  std::vector<std::string> skipped;  // rank 0: the output attribute
  if (mpi.is_root()) {
    std::vector<std::int64_t> skipped_per_tile(n_tiles, 0);
    for (const auto& b : all_bad) ++skipped_per_tile[inv.files[b.index].tile];
    for (std::size_t t = 0; t < n_tiles; ++t) {
      std::string line = "tile " + inv.tiles[t].name + ":";
      std::int64_t tile_samples = 0;
      for (int c = 0; c < kCropClassCount; ++c) {
        std::int64_t k = totals[t * kCropClassCount + static_cast<std::size_t>(c)];
        tile_samples += k;
        if (k) line += " " + crop_class(c).name + " " + std::to_string(k) + ",";
      }
      line += " total " + std::to_string(tile_samples) + " samples; " +
              std::to_string(totals[n_tiles * kCropClassCount + t]) + " pixels dropped (no clear observation in the "
              "season); " + std::to_string(skipped_per_tile[t]) + " files skipped";
      log::info(line);
    }
    if (!all_bad.empty()) {
      log::warn("skipped " + std::to_string(all_bad.size()) + " malformed sample file(s) (--on-error skip); first:");
      for (std::size_t i = 0; i < std::min<std::size_t>(5, all_bad.size()); ++i) log::warn("  " + all_bad[i].message);
    }
    for (std::size_t i = 0; i < std::min(kSkippedListed, all_bad.size()); ++i) skipped.push_back(all_bad[i].message);
    if (all_bad.size() > kSkippedListed)
      skipped.push_back("... and " + std::to_string(all_bad.size() - kSkippedListed) + " more");
  }
  if (samples == 0)
    throw AgreedError(s.root + ": nothing to import: of " + std::to_string(n) + " sample files, " +
                      std::to_string(dropped) + " have no clear observation in the season and " +
                      std::to_string(bad_total) + " are malformed");

  // The training set goes to a temporary name first: the skipped list is added before it becomes OUT, so a file
  // named OUT is always complete. Rank 0 alone moves it into place or removes it.
  StagedFile staging(s.output, ".importing.h5");
  if (!mpi.is_root()) staging.release();
  write_training_set(staging.path(), local, Provenance{s.config_text, {s.root}}, mpi);
  parallel::root_first(mpi.world(), [&] {
    h5::File f = h5::File::open_update(staging.path());
    f.set_attr("skipped", skipped);
    f.set_attr("skipped_count", static_cast<std::int64_t>(all_bad.size()));
    f.set_attr("dropped_no_clear_observation", dropped);
    f.close();
    staging.commit();
    log::root("import-timesen2crop: wrote " + s.output);
  });
}

}  // namespace s2crop::samples::timesen2crop
