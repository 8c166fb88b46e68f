#include "s2crop/samples/bigearthnet_import.hpp"

#include <cpl_json.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/staged_file.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/composite/kernels.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/samples/patch_set.hpp"

namespace fs = std::filesystem;

namespace s2crop::samples::bigearthnet {

using sentinel2::Date;

namespace {

std::string month_label(int year, int month0) {  // month0: months after January of `year` (may exceed 11)
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d", year + month0 / 12, month0 % 12 + 1);
  return buf;
}

constexpr std::size_t kPatchesPerRound = 256;  // patches inspected between two exchanges of progress and failure

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void check_output(const ImportSettings& s) {
  std::error_code ec;
  if (fs::exists(s.output, ec) && !s.overwrite)
    throw OutputError(s.output, "exists already; use --overwrite to replace it");
  const fs::path parent = fs::absolute(s.output).parent_path();
  fs::create_directories(parent, ec);
  if (!fs::is_directory(parent, ec)) throw OutputError(s.output, "cannot create its folder " + parent.string());
}

// How a patch's band files sit on its grid (what the inspection found, what reading needs).
struct Layout {
  geo::Grid grid;            // the patch grid: the finest selected band's
  std::vector<int> factors;  // per selected band: pixel-size ratio to the patch grid
};

// Opens every selected band of a patch (headers only) and checks that each covers exactly the patch grid with
// pixels an integer factor larger, in one CRS. Throws InputError naming the file.
Layout inspect_bands(const PatchInfo& p, const std::vector<std::string>& bands) {
  std::vector<geo::RasterReader> files;
  for (const auto& b : bands) {
    const std::string path = p.band_path(b);
    std::error_code ec;
    if (!fs::exists(path, ec)) throw InputError(path, "band file missing (patch " + p.name + ", band " + b + ")");
    files.emplace_back(path);
    files.back().check_complete();
    if (files.back().band_count() < 1) throw InputError(path, "has no raster band");
  }
  std::size_t finest = 0;
  for (std::size_t i = 1; i < files.size(); ++i)
    if (files[i].grid().pixel_size_x() < files[finest].grid().pixel_size_x()) finest = i;
  Layout layout;
  layout.grid = files[finest].grid();
  const geo::Grid& g = layout.grid;
  if (g.width != g.height)
    throw InputError(files[finest].path(), "is " + std::to_string(g.width) + " x " + std::to_string(g.height) +
                                               " px; BigEarthNet patches are square");
  for (const auto& f : files) {
    int factor = 0;
    const geo::Grid& c = f.grid();
    if (!geo::same_crs(g.crs_wkt, c.crs_wkt))
      throw InputError(f.path(), "is in " + geo::crs_short_name(c.crs_wkt) + ", " + files[finest].path() + " in " +
                                     geo::crs_short_name(g.crs_wkt) + ": the bands of a patch must share one CRS");
    if (!g.is_aligned_coarser(c, factor) || static_cast<long long>(c.width) * factor != g.width ||
        static_cast<long long>(c.height) * factor != g.height)
      throw InputError(f.path(), "does not cover the patch's " + std::to_string(g.pixel_size_x()) + " m grid (" +
                                     g.describe() + ") with whole pixels: it is " + c.describe() +
                                     "; every band must span the same extent at a resolution an integer multiple "
                                     "of the finest band's");
    layout.factors.push_back(factor);
  }
  return layout;
}

// What every rank learns about one patch in the inspection, exchanged as one tab-separated line.
struct Inspected {
  std::string tile;
  Date date;
  int size = 0;
  double pixel = 0;
};

// The first failure among the ranks (the lowest global index), the same message on every rank. Collective.
std::string agree_on_failure(MPI_Comm comm, std::size_t index, const std::string& message) {
  const std::string mine = message.empty() ? std::string() : std::to_string(index) + "\t" + message;
  std::string first;
  std::size_t best = std::string::npos;
  for (const auto& text : parallel::gather_strings(comm, mine)) {
    if (text.empty()) continue;
    const auto tab = text.find('\t');
    const std::size_t at = std::stoull(text.substr(0, tab));
    if (at < best) {
      best = at;
      first = text.substr(tab + 1);
    }
  }
  return parallel::broadcast_string(comm, first);
}

}  // namespace

void run_import(const ImportSettings& s, const parallel::MpiContext& mpi) {
  const auto start = std::chrono::steady_clock::now();
  if (s.inputs.empty()) throw ConfigError("import-bigearthnet: --input is required (see --help)");
  if (s.output.empty()) throw ConfigError("import-bigearthnet: --output is required (see --help)");
  if (s.season_start < 1 || s.season_start > 12) throw ConfigError("--season-start must be a month 1-12");
  const auto& layers = layer_names(s.nomenclature);
  const std::vector<std::string> bands = s.bands.empty() ? sentinel2::default_crop_bands() : s.bands;
  geo::init_gdal();
  parallel::root_first(mpi.world(), [&] { check_output(s); });

  // Scan on rank 0; every rank gets the same sorted list.
  std::string listing;
  parallel::root_first(mpi.world(), [&] {
    const auto found = find_patch_folders(s.inputs);
    if (found.empty())
      throw InputError(join_items(s.inputs), "no BigEarthNet patch folder (a folder holding <patch>" +
                                                 std::string(kLabelFileSuffix) + ") under the input(s)");
    for (const auto& p : found) listing += p.name + "\t" + p.dir + "\n";
  });
  std::vector<PatchFolder> patches;
  {
    std::istringstream in(parallel::broadcast_string(mpi.world(), listing));
    std::string line;
    while (std::getline(in, line)) {
      const auto f = split_fields(line);
      patches.push_back({f.at(0), f.at(1)});
    }
  }
  const std::size_t n = patches.size();
  const auto rank = static_cast<std::size_t>(mpi.rank()), ranks = static_cast<std::size_t>(mpi.size());
  const std::size_t begin = n * rank / ranks, end = n * (rank + 1) / ranks;
  const std::size_t longest = (n + ranks - 1) / ranks;  // the same on every rank: all make the same exchanges
  log::root("import-bigearthnet: " + std::to_string(n) + " patch folder(s) under " + join_items(s.inputs) + "; bands " +
            join_items(bands, ",") + "; " + std::to_string(layers.size()) + " label layers (--nomenclature " +
            std::to_string(s.nomenclature) + "); " + std::to_string(mpi.size()) + " rank(s)");

  // Inspection: metadata and band headers of this rank's slice, in rounds that exchange progress and failures.
  std::vector<PatchInfo> info;
  std::vector<Layout> layout;
  std::vector<std::vector<std::uint8_t>> flags;  // per patch: one 0/1 per label layer
  std::string failure;
  std::size_t failed_at = 0;
  {
    std::unique_ptr<log::Progress> progress;
    if (mpi.is_root()) progress = std::make_unique<log::Progress>("import-bigearthnet (inspect)", "patches",
                                                                  static_cast<std::int64_t>(n));
    const std::size_t rounds = (longest + kPatchesPerRound - 1) / kPatchesPerRound;
    std::size_t next = begin;
    for (std::size_t round = 0; round < rounds; ++round) {
      const std::size_t stop = std::min(end, begin + (round + 1) * kPatchesPerRound);
      for (; next < stop && failure.empty(); ++next) {
        try {
          info.push_back(read_patch_info(patches[next].name, patches[next].dir));
          flags.push_back(label_flags(info.back().labels, s.nomenclature, info.back().json_path()));
          layout.push_back(inspect_bands(info.back(), bands));
        } catch (const std::exception& e) {
          failure = e.what();
          failed_at = next;
        }
      }
      std::int64_t mine[2] = {static_cast<std::int64_t>(next - begin), failure.empty() ? 0 : 1}, all[2] = {0, 0};
      MPI_Allreduce(mine, all, 2, MPI_INT64_T, MPI_SUM, mpi.world());
      if (progress) progress->update(all[0]);
      if (all[1] > 0) {
        // Every rank leaves at the same round: agree on the first failure in the global order, nothing written.
        throw AgreedError(agree_on_failure(mpi.world(), failed_at, failure));
      }
    }
    if (progress) progress->finish();
  }

  // Rank 0 learns every patch's tile, date and size, checks they fit one patch set, and decides the tiles and the
  // season; every rank gets them back.
  std::string mine;
  for (std::size_t i = 0; i < info.size(); ++i) {
    char pixel[32];
    std::snprintf(pixel, sizeof pixel, "%.17g", layout[i].grid.pixel_size_x());
    mine += info[i].tile + "\t" + info[i].date.iso() + "\t" + std::to_string(layout[i].grid.width) + "\t" + pixel + "\n";
  }
  const auto gathered = parallel::gather_strings(mpi.world(), mine);
  std::vector<std::string> all_dates;  // rank 0: acquisition_date of every patch
  std::string summary;                 // tiles, season start year and patch size, as lines
  parallel::root_first(mpi.world(), [&] {
    std::vector<Inspected> all;
    for (const auto& text : gathered) {
      std::istringstream in(text);
      std::string line;
      while (std::getline(in, line)) {
        const auto f = split_fields(line);
        all.push_back({f.at(0), Date::parse(f.at(1)), std::stoi(f.at(2)), std::stod(f.at(3))});
      }
    }
    if (all.size() != n) throw Error("import-bigearthnet: the ranks inspected " + std::to_string(all.size()) +
                                     " patches of " + std::to_string(n));
    std::set<std::string> tiles;
    Date earliest = all.front().date;
    for (std::size_t i = 0; i < n; ++i) {
      const Inspected& p = all[i];
      if (p.size != all.front().size || std::abs(p.pixel - all.front().pixel) > 1e-6 * all.front().pixel)
        throw InputError(PatchInfo{patches[i].name, patches[i].dir, {}, {}, {}}.band_path(bands.front()),
                         "patch " + patches[i].name + " is " + std::to_string(p.size) + " px at " +
                             std::to_string(p.pixel) + " m, patch " + patches.front().name + " " +
                             std::to_string(all.front().size) + " px at " + std::to_string(all.front().pixel) +
                             " m: one patch set holds patches of one size; import them separately");
      tiles.insert(p.tile);
      if (p.date < earliest) earliest = p.date;
      all_dates.push_back(p.date.iso());
    }
    const int S = all.front().size;
    if (S < kMinPatchSize || S > kMaxPatchSize)
      throw InputError(patches.front().dir, "patches of " + std::to_string(S) + " px are outside the patch sizes " +
                                                std::to_string(kMinPatchSize) + "-" + std::to_string(kMaxPatchSize));
    summary = std::to_string(season_start_of(earliest, s.season_start).year) + "\n" + std::to_string(S) + "\n";
    for (const auto& t : tiles) summary += t + "\n";
  });
  std::vector<std::string> summary_lines;
  {
    std::istringstream in(parallel::broadcast_string(mpi.world(), summary));
    std::string line;
    while (std::getline(in, line)) summary_lines.push_back(line);
  }
  const int season_year = std::stoi(summary_lines.at(0));
  const int S = std::stoi(summary_lines.at(1));

  PatchSetHeader header;
  header.bands = bands;
  for (int i = 0; i < kSeasonMonths; ++i) header.months.push_back(month_label(season_year, s.season_start - 1 + i));
  header.season_start_month = s.season_start;
  header.tiles.assign(summary_lines.begin() + 2, summary_lines.end());
  header.patch_size = S;
  header.label_layers = layers;
  header.label_scope = "patch";
  const Date season_first{season_year, s.season_start, 1};
  const Date season_end{season_year + 1, s.season_start, 1};  // exclusive

  // Per patch of this slice: tile index, month, offset; counts for the log.
  std::vector<std::uint16_t> my_tile;
  std::vector<std::int32_t> my_row(info.size(), -1), my_col(info.size(), -1);
  const std::size_t L = layers.size();
  std::vector<std::int64_t> counts(L + 3, 0);  // patches per layer; outside the season; offset -1000; no layer
  for (std::size_t i = 0; i < info.size(); ++i) {
    const PatchInfo& p = info[i];
    my_tile.push_back(static_cast<std::uint16_t>(
        std::find(header.tiles.begin(), header.tiles.end(), p.tile) - header.tiles.begin()));
    if (p.date < season_first || !(p.date < season_end)) ++counts[L];
    if (sentinel2::offset_by_date(p.date) != 0) ++counts[L + 1];
    for (std::size_t l = 0; l < L; ++l) counts[l] += flags[i][l];
    if (std::find(flags[i].begin(), flags[i].end(), std::uint8_t{1}) == flags[i].end()) ++counts[L + 2];
  }
  {
    std::vector<std::int64_t> totals(counts.size(), 0);
    MPI_Allreduce(counts.data(), totals.data(), static_cast<int>(counts.size()), MPI_INT64_T, MPI_SUM, mpi.world());
    counts = totals;
  }
  if (mpi.is_root()) {
    log::root("import-bigearthnet: " + std::to_string(header.tiles.size()) + " tile(s) " +
              join_items(header.tiles, ",") + "; patches of " + std::to_string(S) + " px; season " +
              header.months.front() + " to " + header.months.back() + " (--season-start " +
              std::to_string(s.season_start) + ")");
    if (counts[L] > 0)
      log::warn("import-bigearthnet: " + std::to_string(counts[L]) + " of " + std::to_string(n) +
                " patches were acquired outside the season " + header.months.front() + " to " + header.months.back() +
                ": each sits in its calendar month, so for them the month labels are nominal (their dates are in "
                "the dataset acquisition_date)");
    if (counts[L + 1] > 0)
      log::root("import-bigearthnet: " + std::to_string(counts[L + 1]) +
                " patch(es) acquired on or after 2022-01-25 (processing baseline 04.00): BOA_ADD_OFFSET " +
                std::to_string(sentinel2::kBaseline04Offset) + " applied to their DNs");
    std::ostringstream table;
    table << "import-bigearthnet: patches per label layer:";
    for (std::size_t l = 0; l < L; ++l)
      if (counts[l]) table << "\n  " << layers[l] << ": " << counts[l];
    log::root(table.str());
    if (counts[L + 2] > 0)
      log::warn("import-bigearthnet: " + std::to_string(counts[L + 2]) +
                " patch(es) have no label of this nomenclature (all their layers are 0)");
  }

  // Writing, in rounds of at most ~256 MiB of patches per rank; every rank runs as many rounds as the busiest one.
  const std::size_t nb = bands.size(), plane = static_cast<std::size_t>(S) * static_cast<std::size_t>(S);
  const std::size_t xv = header.x_values(), lv = header.label_values(), cv = header.clear_values();
  const std::size_t per_batch = std::max<std::size_t>(1, (std::size_t{256} << 20) / (xv * 2 + lv + cv));
  const std::size_t rounds = (longest + per_batch - 1) / per_batch;
  // The patch set goes to a temporary name first: the patch names and dates are added before it becomes OUT, so a
  // file named OUT is always complete. Rank 0 alone moves it into place or removes it.
  StagedFile staging(s.output, ".importing.h5");
  if (!mpi.is_root()) staging.release();
  log::root("import-bigearthnet: inspection done after " + log::format_duration(seconds_since(start)) + "; writing " +
            std::to_string(n) + " patches in " + std::to_string(rounds) + " round(s)");
  std::unique_ptr<log::Progress> progress;
  if (mpi.is_root())
    progress = std::make_unique<log::Progress>("import-bigearthnet (write)", "patches", static_cast<std::int64_t>(n));
  bool failed = false;
  {
    // Past the writer's creation every rank must reach each collective write: a rank that fails to read a patch
    // says so in the round's exchange, and all leave together before the write.
    PatchSetWriter writer(staging.path(), header, Provenance{s.config_text, s.inputs}, n, begin, my_tile, my_row,
                          my_col, mpi.world());
    std::vector<std::int16_t> x, refl(nb * plane);
    std::vector<std::uint8_t> labels, clear, valid(plane);
    std::vector<std::uint16_t> dn(plane), coarse;
    std::vector<std::size_t> indices;
    for (std::size_t round = 0; round < rounds; ++round) {
      const std::size_t b0 = std::min(end, begin + round * per_batch), b1 = std::min(end, b0 + per_batch);
      indices.clear();
      x.assign((b1 - b0) * xv, 0);
      labels.assign((b1 - b0) * lv, 0);
      clear.assign((b1 - b0) * cv, 0);
      for (std::size_t g = b0; g < b1 && failure.empty(); ++g) {
        const std::size_t k = g - b0, i = g - begin;
        const PatchInfo& p = info[i];
        try {
          const int offset = sentinel2::offset_by_date(p.date);
          std::fill(valid.begin(), valid.end(), std::uint8_t{1});
          for (std::size_t b = 0; b < nb; ++b) {
            geo::RasterReader file(p.band_path(bands[b]));
            geo::read_replicated(file, 1, layout[i].factors[b], geo::Window{0, 0, S, S}, coarse, dn.data());
            double nd = 0;
            const bool has = file.nodata(1, nd);
            // A declared no-data outside uint16 cannot match a DN: ignore it (as the acquisition reader does).
            const bool usable = has && nd >= 0 && nd <= 65535 && nd == std::floor(nd);
            composite::apply_offset(dn.data(), plane, offset, usable, static_cast<std::uint16_t>(usable ? nd : 0),
                                    refl.data() + b * plane, valid.data());
          }
        } catch (const std::exception& e) {
          failure = e.what();
          failed_at = g;
          break;
        }
        // A pixel with no data in any band has no data in all (as an unclear observation in a composite).
        for (std::size_t b = 0; b < nb; ++b)
          for (std::size_t q = 0; q < plane; ++q)
            if (!valid[q]) refl[b * plane + q] = composite::kNoData;
        std::int16_t* px = x.data() + k * xv;
        for (int m = 0; m < kSeasonMonths; ++m) std::copy(refl.begin(), refl.end(), px + static_cast<std::size_t>(m) * nb * plane);
        std::uint8_t* pc = clear.data() + k * cv + static_cast<std::size_t>(season_month_index(p.date, s.season_start)) * plane;
        std::copy(valid.begin(), valid.end(), pc);
        std::uint8_t* pl = labels.data() + k * lv;
        for (std::size_t l = 0; l < L; ++l)
          for (std::size_t q = 0; q < plane; ++q) pl[l * plane + q] = valid[q] ? flags[i][l] : kNoPatchLabel;
        indices.push_back(g);
      }
      std::int64_t state[2] = {static_cast<std::int64_t>(b1 - begin), failure.empty() ? 0 : 1}, all[2] = {0, 0};
      MPI_Allreduce(state, all, 2, MPI_INT64_T, MPI_SUM, mpi.world());
      if (all[1] > 0) {
        failed = true;
        break;
      }
      writer.write(indices, x.data(), labels.data(), clear.data());
      if (progress) progress->update(all[0]);
    }
    if (!failed) writer.finish();
  }  // an unfinished writer closes its file here, on every rank together
  if (failed) {
    const std::string message = agree_on_failure(mpi.world(), failed_at, failure);
    staging.discard();  // the unfinished writer has removed its own temporary
    throw AgreedError(message);
  }
  if (progress) progress->finish();

  // The patch names and dates, then the file becomes OUT.
  parallel::root_first(mpi.world(), [&] {
    std::vector<std::string> names;
    for (const auto& p : patches) names.push_back(p.name);
    {
      h5::File f = h5::File::open_update(staging.path());
      f.create_string_dataset("patch_name", names);
      f.create_string_dataset("acquisition_date", all_dates);
      f.close();
    }
    staging.commit();
  });
  log::root("import-bigearthnet: wrote " + std::to_string(n) + " patches of " + std::to_string(S) + " px to " +
            s.output + " in " + log::format_duration(seconds_since(start)));
}

}  // namespace s2crop::samples::bigearthnet
