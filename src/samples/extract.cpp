#include "s2crop/samples/extract.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <sstream>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/hash.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/composite/kernels.hpp"
#include "s2crop/geo/rasterize.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/pipeline/composite_file.hpp"
#include "s2crop/samples/patch_set.hpp"
#include "s2crop/samples/training_set.hpp"

namespace fs = std::filesystem;

namespace s2crop::samples {

namespace {

constexpr std::uint64_t kKeepAll = std::numeric_limits<std::uint64_t>::max();

using hash::mix64;

struct Unit {
  size_t tile;  // index into the selected tiles
  geo::Window block;
};

struct Candidate {
  std::int32_t row, col;   // in the tile grid
  size_t pixel;            // index inside the block
  std::uint8_t label;
  std::int64_t parcel;
  std::uint64_t hash;
};

struct UnitCandidates {
  std::vector<Candidate> candidates;
  std::int64_t labelled = 0;  // labelled pixels of the block, eligible or not
};

// Everything a rank needs to turn a unit into candidates.
class CandidateFinder {
 public:
  CandidateFinder(const ExtractSettings& s, const pipeline::CompositeFile& composites,
                  const std::vector<const pipeline::CompositeTile*>& tiles, geo::LabelSource& labels)
      : s_(s), composites_(composites), tiles_(tiles), labels_(labels) {}

  UnitCandidates find(const Unit& u) {
    const pipeline::CompositeTile& tile = *tiles_[u.tile];
    UnitCandidates out;
    // The halo makes a pixel's eligibility independent of where the block edges fall.
    const geo::Window grown = geo::grow_window(u.block, s_.border, tile.grid.width, tile.grid.height);
    geo::ParcelLabels labels = labels_.read(tile.name, tile.grid, grown);
    const auto eligible = geo::crop_mask(geo::border_eligible(labels, s_.border), grown, u.block);
    const auto inner_labels = geo::crop_mask(labels.label, grown, u.block);
    bool any = false;
    for (size_t i = 0; i < inner_labels.size(); ++i)
      if (inner_labels[i] != kNoCropLabel) {
        ++out.labelled;
        any = any || eligible[i];
      }
    if (!any) return out;
    const auto clear = composites_.read_clear_count(tile, u.block);
    const size_t npix = static_cast<size_t>(u.block.pixels());
    const int min_months = std::max(1, s_.min_clear_months);
    for (int y = 0; y < u.block.height; ++y)
      for (int x = 0; x < u.block.width; ++x) {
        const size_t i = static_cast<size_t>(y) * static_cast<size_t>(u.block.width) + static_cast<size_t>(x);
        if (!eligible[i]) continue;
        int months = 0;
        for (int m = 0; m < kSeasonMonths; ++m) months += clear[static_cast<size_t>(m) * npix + i] > 0;
        if (months < min_months) continue;
        const size_t outer = static_cast<size_t>(u.block.y0 - grown.y0 + y) * static_cast<size_t>(grown.width) +
                             static_cast<size_t>(u.block.x0 - grown.x0 + x);
        const int row = u.block.y0 + y, col = u.block.x0 + x;
        out.candidates.push_back({row, col, i, labels.label[outer], labels.parcel[outer],
                                  sample_hash(s_.seed, tile.name, row, col)});
      }
    return out;
  }

 private:
  const ExtractSettings& s_;
  const pipeline::CompositeFile& composites_;
  const std::vector<const pipeline::CompositeTile*>& tiles_;
  geo::LabelSource& labels_;
};

// The "YYYY-MM" labels of a tile's 12 months (from its season where an older file lacks the attribute).
std::vector<std::string> month_labels(const pipeline::CompositeTile& t) {
  if (!t.months.empty()) return t.months;
  std::vector<std::string> out;
  for (int i = 0; i < kSeasonMonths; ++i) {
    const int m = (t.season_start_month - 1 + i) % 12 + 1, y = t.year + (t.season_start_month - 1 + i) / 12;
    char label[16];
    std::snprintf(label, sizeof label, "%04d-%02d", y, m);
    out.push_back(label);
  }
  return out;
}

// Checks everything that can be checked before work starts (run on rank 0, errors reach every rank).
// Returns false when the output already holds this very run (same effective configuration): nothing to do, so a
// resubmitted job chain passes through this stage.
bool validate(const ExtractSettings& s) {
  if (s.composites.empty()) throw ConfigError("extract: --composites is required");
  if (s.labels.empty()) throw ConfigError("extract: --labels is required");
  if (s.output.empty()) throw ConfigError("extract: --output is required");
  std::error_code ec;
  if (fs::exists(s.output, ec) && !s.overwrite) {
    std::string previous;
    try {
      auto file = h5::File::open_read(s.output, MPI_COMM_SELF);
      if (file.has_attr("config")) previous = file.attr_string("config");
    } catch (const std::exception&) {
    }
    if (!previous.empty() && previous == s.config_text) return false;
    throw OutputError(s.output, "already exists from a different run; pass --overwrite to replace it");
  }
  pipeline::CompositeFile composites(s.composites);
  std::vector<const pipeline::CompositeTile*> tiles;
  for (auto& name : s.tiles) tiles.push_back(&composites.tile(name));
  if (tiles.empty())
    for (auto& t : composites.tiles()) tiles.push_back(&t);
  for (auto* t : tiles) {
    if (t->bands != tiles.front()->bands)
      throw InputError(s.composites, "tiles " + tiles.front()->name + " and " + t->name +
                                         " have different bands; extract them into separate training sets");
    if (t->season_start_month != tiles.front()->season_start_month)
      throw InputError(s.composites, "tiles " + tiles.front()->name + " and " + t->name +
                                         " have seasons starting in different months");
    if (s.patch_size > 0 && month_labels(*t) != month_labels(*tiles.front()))
      throw InputError(s.composites, "tiles " + tiles.front()->name + " and " + t->name +
                                         " cover different months; extract them into separate patch sets");
    if (s.patch_size > t->grid.width || s.patch_size > t->grid.height)
      throw ConfigError("extract: --patches " + std::to_string(s.patch_size) + " is larger than tile " + t->name +
                        " of " + s.composites + " (" + std::to_string(t->grid.width) + " x " +
                        std::to_string(t->grid.height) + " px); use smaller patches or leave the tile out (--tiles)");
  }
  auto source = geo::open_label_source(s.labels, s.label_options);
  if (auto* vector = dynamic_cast<geo::ParcelVector*>(source.get()))
    if (auto empty = vector->check_classes(); empty > 0)
      log::warn(s.labels + ": " + std::to_string(empty) + " feature(s) have no class value and are left unlabelled");
  const fs::path parent = fs::absolute(s.output).parent_path();
  fs::create_directories(parent, ec);
  if (!fs::is_directory(parent, ec)) throw OutputError(s.output, "cannot create the folder " + parent.string());
  return true;
}

std::vector<std::int64_t> allreduce_sum(MPI_Comm comm, std::vector<std::int64_t> values) {
  std::vector<std::int64_t> out(values.size(), 0);
  MPI_Allreduce(values.data(), out.data(), static_cast<int>(values.size()), MPI_INT64_T, MPI_SUM, comm);
  return out;
}

// Per class the hash threshold that keeps exactly the `cap` smallest hashes over all ranks. Collective.
std::vector<std::uint64_t> class_thresholds(const std::vector<SmallestHashes>& local, std::size_t cap,
                                            const parallel::MpiContext& mpi) {
  std::vector<std::uint64_t> thresholds(local.size(), kKeepAll);
  if (cap == 0) return thresholds;
  // Message per rank: the count of each class, then the hashes of each class.
  std::vector<std::uint64_t> message;
  std::vector<std::vector<std::uint64_t>> lists;
  for (auto& h : local) lists.push_back(h.sorted());
  for (auto& l : lists) message.push_back(l.size());
  for (auto& l : lists) message.insert(message.end(), l.begin(), l.end());
  if (message.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    throw ConfigError("extract: --per-class is too large to merge the candidates' hashes in one message");
  int count = static_cast<int>(message.size());
  std::vector<int> counts(static_cast<size_t>(mpi.size())), displs(static_cast<size_t>(mpi.size()));
  MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, mpi.world());
  std::vector<std::uint64_t> all;
  if (mpi.is_root()) {
    long long total = 0;
    for (int r = 0; r < mpi.size(); ++r) {
      displs[static_cast<size_t>(r)] = static_cast<int>(total);
      total += counts[static_cast<size_t>(r)];
    }
    if (total > std::numeric_limits<int>::max())
      parallel::fail_fast("extract: --per-class is too large to merge the candidates' hashes of all ranks");
    all.resize(static_cast<size_t>(total));
  }
  MPI_Gatherv(message.data(), count, MPI_UINT64_T, all.data(), counts.data(), displs.data(), MPI_UINT64_T, 0,
              mpi.world());
  if (mpi.is_root()) {
    const size_t classes = local.size();
    std::vector<std::vector<std::uint64_t>> merged(classes);
    for (int r = 0; r < mpi.size(); ++r) {
      const std::uint64_t* part = all.data() + displs[static_cast<size_t>(r)];
      const std::uint64_t* hashes = part + classes;
      for (size_t c = 0; c < classes; ++c) {
        merged[c].insert(merged[c].end(), hashes, hashes + part[c]);
        hashes += part[c];
      }
    }
    for (size_t c = 0; c < classes; ++c) thresholds[c] = keep_threshold(std::move(merged[c]), cap);
  }
  MPI_Bcast(thresholds.data(), static_cast<int>(thresholds.size()), MPI_UINT64_T, 0, mpi.world());
  return thresholds;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The selected tiles (--tiles, default all) in the composite file's tile order, whatever order --tiles lists them in.
std::vector<const pipeline::CompositeTile*> selected_tiles(const ExtractSettings& s,
                                                           const pipeline::CompositeFile& composites) {
  std::vector<const pipeline::CompositeTile*> tiles;
  for (auto& name : s.tiles)
    if (std::none_of(tiles.begin(), tiles.end(), [&](auto* t) { return t->name == name; }))
      tiles.push_back(&composites.tile(name));
  std::vector<const pipeline::CompositeTile*> ordered;
  for (auto& t : composites.tiles())
    if (tiles.empty() || std::any_of(tiles.begin(), tiles.end(), [&](auto* x) { return x == &t; }))
      ordered.push_back(&t);
  return ordered;
}

void run_extract_patches(const ExtractSettings& s, const parallel::MpiContext& mpi);

}  // namespace

std::uint64_t sample_hash(std::uint64_t seed, const std::string& tile, int row, int col) {
  std::uint64_t h = hash::fnv1a(tile);
  h = mix64(h ^ mix64(seed));
  const std::uint64_t position = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(row)) << 32) |
                                 static_cast<std::uint32_t>(col);
  return mix64(h ^ mix64(position));
}

void SmallestHashes::offer(std::uint64_t hash) {
  if (cap_ == 0) return;
  if (heap_.size() < cap_) {
    heap_.push_back(hash);
    std::push_heap(heap_.begin(), heap_.end());
  } else if (hash < heap_.front()) {
    std::pop_heap(heap_.begin(), heap_.end());
    heap_.back() = hash;
    std::push_heap(heap_.begin(), heap_.end());
  }
}

std::vector<std::uint64_t> SmallestHashes::sorted() const {
  std::vector<std::uint64_t> out = heap_;
  std::sort(out.begin(), out.end());
  return out;
}

std::uint64_t keep_threshold(std::vector<std::uint64_t> hashes, std::size_t cap) {
  if (cap == 0 || hashes.size() < cap) return kKeepAll;
  std::nth_element(hashes.begin(), hashes.begin() + static_cast<std::ptrdiff_t>(cap - 1), hashes.end());
  return hashes[cap - 1];
}

void run_extract(const ExtractSettings& s, const parallel::MpiContext& mpi) {
  if (s.patch_size > 0) return run_extract_patches(s, mpi);
  if (s.per_class < 0) throw ConfigError("extract: --per-class must be 0 (no cap) or positive");
  if (s.border < 0) throw ConfigError("extract: --border must be 0 or positive");
  if (s.min_clear_months < 0 || s.min_clear_months > kSeasonMonths)
    throw ConfigError("extract: --min-clear-months must be 0-12");
  const auto start = std::chrono::steady_clock::now();
  int needed = 1;
  parallel::root_first(mpi.world(), [&] { needed = validate(s) ? 1 : 0; });
  MPI_Bcast(&needed, 1, MPI_INT, 0, mpi.world());
  if (!needed) {
    if (mpi.is_root()) log::info(s.output + " already holds this extraction (same configuration): nothing to do");
    return;
  }

  // Rank 0 has checked the inputs: a failure to open them here means they changed under the run.
  pipeline::CompositeFile composites(s.composites);
  const auto tiles = selected_tiles(s, composites);
  auto labels = geo::open_label_source(s.labels, s.label_options);
  log::root("extract: labels from " + labels->describe());

  std::vector<Unit> units;
  std::vector<double> costs;
  for (size_t t = 0; t < tiles.size(); ++t)
    for (auto& b : geo::cut_blocks(tiles[t]->grid.width, tiles[t]->grid.height, tiles[t]->block_size)) {
      units.push_back({t, b});
      costs.push_back(static_cast<double>(b.pixels()));
    }
  const auto bounds = parallel::contiguous_ranges(costs, mpi.size());
  const size_t first = bounds[static_cast<size_t>(mpi.rank())], last = bounds[static_cast<size_t>(mpi.rank()) + 1];
  log::root("extract: " + std::to_string(tiles.size()) + " tile(s), " + std::to_string(units.size()) +
            " blocks over " + std::to_string(mpi.size()) + " rank(s); border " + std::to_string(s.border) +
            " px, at least " + std::to_string(std::max(1, s.min_clear_months)) + " clear month(s), cap " +
            (s.per_class ? std::to_string(s.per_class) : std::string("none")) + " per class, seed " +
            std::to_string(s.seed));

  // Pass 1: count candidates per class and tile, keep each class's smallest hashes.
  CandidateFinder finder(s, composites, tiles, *labels);
  const size_t cap = static_cast<size_t>(s.per_class);
  std::vector<SmallestHashes> smallest(kCropClassCount, SmallestHashes(cap));
  std::vector<std::int64_t> class_candidates(kCropClassCount, 0), tile_labelled(tiles.size(), 0);
  for (size_t u = first; u < last; ++u) {
    UnitCandidates found = finder.find(units[u]);
    tile_labelled[units[u].tile] += found.labelled;
    for (const Candidate& c : found.candidates) {
      ++class_candidates[c.label];
      smallest[c.label].offer(c.hash);
    }
  }
  class_candidates = allreduce_sum(mpi.world(), class_candidates);
  tile_labelled = allreduce_sum(mpi.world(), tile_labelled);
  std::int64_t labelled = 0, candidates = 0;
  for (size_t t = 0; t < tiles.size(); ++t) {
    labelled += tile_labelled[t];
    if (tile_labelled[t] == 0 && mpi.is_root())
      log::warn("extract: no labelled pixel of " + s.labels + " overlaps tile " + tiles[t]->name);
  }
  for (auto n : class_candidates) candidates += n;
  if (labelled == 0)
    throw AgreedError(s.labels + ": no labelled pixel overlaps any selected tile of " + s.composites +
                      " (check the CRS and extent of the labels, and --class-field / --layer)");
  if (candidates == 0)
    throw AgreedError(s.labels + ": " + std::to_string(labelled) + " labelled pixels, but none lies " +
                      std::to_string(s.border) + " px inside its parcel with at least " +
                      std::to_string(std::max(1, s.min_clear_months)) + " clear month(s); lower --border or "
                      "--min-clear-months");
  const auto thresholds = class_thresholds(smallest, cap, mpi);
  log::root("extract: pass 1 (candidates) done after " + log::format_duration(seconds_since(start)));

  // Pass 2: keep the candidates at or below their class threshold, with their reflectance.
  TrainingSet local;
  local.header.bands = tiles.front()->bands;
  for (auto& c : crop_classes()) local.header.class_names.push_back(c.name);
  for (auto* t : tiles) local.header.tiles.push_back(t->name);
  local.header.season_start_month = tiles.front()->season_start_month;
  local.header.months = season_month_labels(local.header.season_start_month);
  local.header.source = "extract";
  const size_t nb = local.header.bands.size();
  std::vector<std::int16_t> series(static_cast<size_t>(kSeasonMonths) * nb);
  std::vector<std::int64_t> class_kept(kCropClassCount, 0);
  for (size_t u = first; u < last; ++u) {
    const Unit& unit = units[u];
    UnitCandidates found = finder.find(unit);
    std::vector<const Candidate*> kept;
    for (const Candidate& c : found.candidates)
      if (c.hash <= thresholds[c.label]) kept.push_back(&c);
    if (kept.empty()) continue;
    const auto& tile = *tiles[unit.tile];
    const auto reflectance = composites.read_reflectance(tile, unit.block);
    const auto clear_count = composites.read_clear_count(tile, unit.block);
    const size_t npix = static_cast<size_t>(unit.block.pixels());
    std::uint8_t clear_months[kSeasonMonths];
    for (const Candidate* c : kept) {
      for (int m = 0; m < kSeasonMonths; ++m) clear_months[m] = clear_count[static_cast<size_t>(m) * npix + c->pixel] > 0;
      for (size_t mb = 0; mb < series.size(); ++mb) {
        series[mb] = reflectance[mb * npix + c->pixel];
        if (series[mb] == composite::kNoData)
          throw InputError(s.composites, "tile " + tile.name + " pixel (row " + std::to_string(c->row) + ", col " +
                                             std::to_string(c->col) +
                                             ") has clear observations but no-data reflectance: damaged composite");
      }
      local.add(series.data(), c->label, static_cast<std::uint16_t>(unit.tile), c->parcel, c->row, c->col,
                clear_months);
      ++class_kept[c->label];
    }
  }
  class_kept = allreduce_sum(mpi.world(), class_kept);
  if (mpi.is_root()) {
    std::ostringstream table;
    table << "extract: samples per class (candidates -> kept):";
    for (int c = 0; c < kCropClassCount; ++c)
      if (class_candidates[static_cast<size_t>(c)] > 0)
        table << "\n  " << crop_class(c).name << ": " << class_candidates[static_cast<size_t>(c)] << " -> "
              << class_kept[static_cast<size_t>(c)];
    log::root(table.str());
  }
  Provenance provenance{s.config_text, {s.composites, s.labels}};
  write_training_set(s.output, local, provenance, mpi);
  std::int64_t total = 0;
  for (auto n : class_kept) total += n;
  log::root("extract: wrote " + std::to_string(total) + " samples to " + s.output + " in " +
            log::format_duration(seconds_since(start)));
}

void patch_label_layers(const geo::ParcelLabels& labels, const geo::Window& inner, std::uint8_t* out) {
  const geo::Window& o = labels.window;
  if (inner.x0 < o.x0 || inner.y0 < o.y0 || inner.x0 + inner.width > o.x0 + o.width ||
      inner.y0 + inner.height > o.y0 + o.height)
    throw Error("patch_label_layers: the labels do not cover the patch");
  const size_t plane = static_cast<size_t>(inner.pixels());
  std::uint8_t* crop_type = out + kCropTypeLayer * plane;
  std::uint8_t* boundary = out + kFieldBoundaryLayer * plane;
  std::uint8_t* cropland = out + kCroplandLayer * plane;
  const auto at = [&](int row, int col) {  // tile coordinates -> index into the labels
    return static_cast<size_t>(row - o.y0) * static_cast<size_t>(o.width) + static_cast<size_t>(col - o.x0);
  };
  static constexpr int kDy[4] = {-1, 1, 0, 0}, kDx[4] = {0, 0, -1, 1};
  for (int y = 0; y < inner.height; ++y)
    for (int x = 0; x < inner.width; ++x) {
      const int row = inner.y0 + y, col = inner.x0 + x;
      const size_t i = at(row, col), p = static_cast<size_t>(y) * static_cast<size_t>(inner.width) + static_cast<size_t>(x);
      const std::uint8_t label = labels.label[i];
      crop_type[p] = label;
      cropland[p] = label != kNoCropLabel;
      std::uint8_t edge = 0;
      if (label != kNoCropLabel)
        for (int d = 0; d < 4 && !edge; ++d) {
          const int r = row + kDy[d], c = col + kDx[d];
          if (r < o.y0 || c < o.x0 || r >= o.y0 + o.height || c >= o.x0 + o.width) continue;  // beyond the tile
          const size_t n = at(r, c);
          edge = labels.label[n] != label || labels.parcel[n] != labels.parcel[i];
        }
      boundary[p] = edge;
    }
}

namespace {

// Top rows (or left columns) of the windows of a `size` px grid axis: 0, stride, ... while the window fits.
std::vector<int> window_starts(int size, int patch, int stride) {
  std::vector<int> out;
  for (long long v = 0; v + patch <= size; v += stride) out.push_back(static_cast<int>(v));
  return out;
}

// The windows whose top-left corner lies in one block of the composite grid (block row of the band, block column
// `block_col`): a cell. Pass 2 reads the composite once per cell.
struct Cell {
  size_t tile;
  std::vector<int> rows, cols;
};

// A unit of work: the windows of one tile whose top row lies in one block row (its cells left to right).
struct Band {
  size_t tile;
  std::vector<Cell> cells;
  double windows = 0;
};

struct KeptWindow {
  size_t cell;  // index into the rank's cells
  std::int32_t row, col;
  std::uint16_t tile;
};

// The part of a tile the windows `rows` x `cols` cover.
geo::Window cover(const std::vector<int>& rows, const std::vector<int>& cols, int patch) {
  const int x0 = cols.front(), y0 = rows.front();
  return {x0, y0, cols.back() + patch - x0, rows.back() + patch - y0};
}

void run_extract_patches(const ExtractSettings& s, const parallel::MpiContext& mpi) {
  const int S = s.patch_size;
  if (S < kMinPatchSize || S > kMaxPatchSize)
    throw ConfigError("extract: --patches must be " + std::to_string(kMinPatchSize) + "-" +
                      std::to_string(kMaxPatchSize) + " px (got " + std::to_string(S) + ")");
  if (s.patch_stride < 0) throw ConfigError("extract: --patch-stride must be positive (0: the patch size)");
  const int stride = s.patch_stride > 0 ? s.patch_stride : S;
  if (!(s.min_labelled >= 0.0 && s.min_labelled <= 1.0))
    throw ConfigError("extract: --min-labelled must be a fraction 0-1 (got " + std::to_string(s.min_labelled) + ")");
  const auto start = std::chrono::steady_clock::now();
  int needed = 1;
  parallel::root_first(mpi.world(), [&] { needed = validate(s) ? 1 : 0; });
  MPI_Bcast(&needed, 1, MPI_INT, 0, mpi.world());
  if (!needed) {
    if (mpi.is_root()) log::info(s.output + " already holds this extraction (same configuration): nothing to do");
    return;
  }
  pipeline::CompositeFile composites(s.composites);
  const auto tiles = selected_tiles(s, composites);
  auto labels = geo::open_label_source(s.labels, s.label_options);
  log::root("extract: labels from " + labels->describe());

  // The units: bands of windows, one per (tile, block row) that has windows.
  std::vector<Band> bands;
  std::vector<double> costs;
  std::vector<std::int64_t> tile_windows(tiles.size(), 0);
  for (size_t t = 0; t < tiles.size(); ++t) {
    const auto& tile = *tiles[t];
    const auto rows = window_starts(tile.grid.height, S, stride), cols = window_starts(tile.grid.width, S, stride);
    tile_windows[t] = static_cast<std::int64_t>(rows.size() * cols.size());
    const int bs = std::max(1, tile.block_size);
    for (size_t r = 0; r < rows.size();) {
      Band band{t, {}, 0};
      size_t r1 = r;
      while (r1 < rows.size() && rows[r1] / bs == rows[r] / bs) ++r1;
      const std::vector<int> band_rows(rows.begin() + static_cast<std::ptrdiff_t>(r),
                                       rows.begin() + static_cast<std::ptrdiff_t>(r1));
      for (size_t c = 0; c < cols.size();) {
        size_t c1 = c;
        while (c1 < cols.size() && cols[c1] / bs == cols[c] / bs) ++c1;
        band.cells.push_back({t, band_rows, std::vector<int>(cols.begin() + static_cast<std::ptrdiff_t>(c),
                                                             cols.begin() + static_cast<std::ptrdiff_t>(c1))});
        c = c1;
      }
      band.windows = static_cast<double>(band_rows.size() * cols.size());
      costs.push_back(band.windows);
      bands.push_back(std::move(band));
      r = r1;
    }
  }
  std::int64_t all_windows = 0;
  for (auto n : tile_windows) all_windows += n;
  const auto bounds = parallel::contiguous_ranges(costs, mpi.size());
  const size_t first = bounds[static_cast<size_t>(mpi.rank())], last = bounds[static_cast<size_t>(mpi.rank()) + 1];
  log::root("extract: " + std::to_string(tiles.size()) + " tile(s), " + std::to_string(all_windows) + " windows of " +
            std::to_string(S) + " px (stride " + std::to_string(stride) + ") in " + std::to_string(bands.size()) +
            " bands over " + std::to_string(mpi.size()) + " rank(s); keeping windows at least " +
            std::to_string(s.min_labelled) + " labelled");

  // Pass 1: which windows to keep (labels only). Windows are visited cell by cell; sorting the kept ones by
  // (band, row, col) gives this rank's slice of the global row-major order.
  std::vector<Cell> cells;
  std::vector<size_t> cell_band;
  std::vector<KeptWindow> kept;
  std::vector<size_t> kept_band;
  std::vector<std::int64_t> tile_labelled(tiles.size(), 0), tile_kept(tiles.size(), 0);
  const double plane = static_cast<double>(S) * static_cast<double>(S);
  for (size_t b = first; b < last; ++b)
    for (const Cell& cell : bands[b].cells) {
      const auto& tile = *tiles[cell.tile];
      const geo::Window region = cover(cell.rows, cell.cols, S);
      const geo::ParcelLabels l = labels->read(tile.name, tile.grid, region);
      const size_t id = cells.size();
      cells.push_back(cell);
      cell_band.push_back(b);
      for (int row : cell.rows)
        for (int col : cell.cols) {
          std::int64_t n = 0;
          for (int y = 0; y < S; ++y) {
            const std::uint8_t* line = l.label.data() +
                                       static_cast<size_t>(row - region.y0 + y) * static_cast<size_t>(region.width) +
                                       static_cast<size_t>(col - region.x0);
            for (int x = 0; x < S; ++x) n += line[x] != kNoCropLabel;
          }
          tile_labelled[cell.tile] += n;
          if (static_cast<double>(n) >= s.min_labelled * plane) {
            kept.push_back({id, row, col, static_cast<std::uint16_t>(cell.tile)});
            kept_band.push_back(b);
            ++tile_kept[cell.tile];
          }
        }
    }
  std::vector<size_t> order(kept.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (kept_band[a] != kept_band[b]) return kept_band[a] < kept_band[b];
    if (kept[a].row != kept[b].row) return kept[a].row < kept[b].row;
    return kept[a].col < kept[b].col;
  });
  std::int64_t mine = static_cast<std::int64_t>(kept.size()), offset = 0, total = 0;
  MPI_Exscan(&mine, &offset, 1, MPI_INT64_T, MPI_SUM, mpi.world());
  if (mpi.rank() == 0) offset = 0;  // MPI_Exscan leaves rank 0's result undefined
  MPI_Allreduce(&mine, &total, 1, MPI_INT64_T, MPI_SUM, mpi.world());
  tile_labelled = allreduce_sum(mpi.world(), tile_labelled);
  tile_kept = allreduce_sum(mpi.world(), tile_kept);
  std::int64_t labelled = 0;
  for (size_t t = 0; t < tiles.size(); ++t) {
    labelled += tile_labelled[t];
    if (tile_labelled[t] == 0 && mpi.is_root())
      log::warn("extract: no labelled pixel of " + s.labels + " overlaps the windows of tile " + tiles[t]->name);
  }
  if (labelled == 0 && s.min_labelled > 0)
    throw AgreedError(s.labels + ": no labelled pixel overlaps any selected tile of " + s.composites +
                      " (check the CRS and extent of the labels, and --class-field / --layer)");
  if (total == 0)
    throw AgreedError(s.labels + ": no window of " + std::to_string(S) + " x " + std::to_string(S) +
                      " px is at least " + std::to_string(s.min_labelled) + " labelled; lower --min-labelled");
  if (mpi.is_root()) {
    std::ostringstream table;
    table << "extract: patches per tile (windows -> kept):";
    for (size_t t = 0; t < tiles.size(); ++t)
      table << "\n  " << tiles[t]->name << ": " << tile_windows[t] << " -> " << tile_kept[t];
    log::root(table.str());
  }

  // Global index of each kept window; tile/row/col of this rank's slice in order.
  std::vector<std::vector<std::pair<size_t, const KeptWindow*>>> cell_kept(cells.size());  // (index, window)
  std::vector<std::uint16_t> kept_tile;
  std::vector<std::int32_t> kept_row, kept_col;
  for (size_t i = 0; i < order.size(); ++i) {
    const KeptWindow& w = kept[order[i]];
    cell_kept[w.cell].push_back({static_cast<size_t>(offset) + i, &w});
    kept_tile.push_back(w.tile);
    kept_row.push_back(w.row);
    kept_col.push_back(w.col);
  }

  PatchSetHeader header;
  header.bands = tiles.front()->bands;
  header.months = month_labels(*tiles.front());
  header.season_start_month = tiles.front()->season_start_month;
  for (auto* t : tiles) header.tiles.push_back(t->name);
  header.patch_size = S;
  header.label_layers = patch_label_layer_names();
  for (auto& c : crop_classes()) header.class_names.push_back(c.name);
  if (header.months.size() != static_cast<size_t>(kSeasonMonths))
    throw InputError(s.composites, "tile " + tiles.front()->name + " does not have 12 month labels ('months')");

  // Batches of at most ~256 MiB of patches, cell by cell; every rank runs as many write rounds as the busiest one.
  const size_t nb = header.bands.size(), xv = header.x_values(), lv = header.label_values(),
               cv = header.clear_values();
  const size_t per_batch = std::max<size_t>(1, (size_t{256} << 20) / (xv * 2 + lv + cv));
  struct Batch {
    size_t cell, begin, end;  // cell_kept[cell][begin, end)
  };
  std::vector<Batch> batches;
  for (size_t c = 0; c < cells.size(); ++c)
    for (size_t i = 0; i < cell_kept[c].size(); i += per_batch)
      batches.push_back({c, i, std::min(cell_kept[c].size(), i + per_batch)});
  std::int64_t my_rounds = static_cast<std::int64_t>(batches.size()), rounds = 0;
  MPI_Allreduce(&my_rounds, &rounds, 1, MPI_INT64_T, MPI_MAX, mpi.world());
  log::root("extract: pass 1 (labels) done after " + log::format_duration(seconds_since(start)) + "; writing " +
            std::to_string(total) + " patches in " + std::to_string(rounds) + " round(s)");

  // Pass 2. Past the writer's creation a failure on one rank would leave the others in HDF5 collectives: the
  // exception reaches main, which stops every rank.
  PatchSetWriter writer(s.output, header, Provenance{s.config_text, {s.composites, s.labels}},
                        static_cast<size_t>(total), static_cast<size_t>(offset), kept_tile, kept_row, kept_col, mpi.world());
  size_t loaded = std::numeric_limits<size_t>::max();
  geo::Window region, grown;
  std::vector<std::int16_t> reflectance;
  std::vector<std::uint8_t> clear_count;
  geo::ParcelLabels cell_labels;
  std::vector<std::int16_t> x;
  std::vector<std::uint8_t> layers, clear;
  std::vector<size_t> indices;
  for (std::int64_t r = 0; r < rounds; ++r) {
    indices.clear();
    x.clear();
    layers.clear();
    clear.clear();
    if (static_cast<size_t>(r) < batches.size()) {
      const Batch& batch = batches[static_cast<size_t>(r)];
      const Cell& cell = cells[batch.cell];
      const auto& tile = *tiles[cell.tile];
      const auto& windows = cell_kept[batch.cell];
      if (loaded != batch.cell) {
        // The part of the cell its kept windows cover, and the labels around it (one pixel more for boundaries).
        std::vector<int> rows, cols;
        for (auto& [index, w] : windows) {
          rows.push_back(w->row);
          cols.push_back(w->col);
        }
        std::sort(rows.begin(), rows.end());
        std::sort(cols.begin(), cols.end());
        region = cover(rows, cols, S);
        grown = geo::grow_window(region, 1, tile.grid.width, tile.grid.height);
        reflectance = composites.read_reflectance(tile, region);
        clear_count = composites.read_clear_count(tile, region);
        cell_labels = labels->read(tile.name, tile.grid, grown);
        loaded = batch.cell;
      }
      const size_t rw = static_cast<size_t>(region.width), rh = static_cast<size_t>(region.height);
      const size_t count = batch.end - batch.begin;
      x.resize(count * xv);
      layers.resize(count * lv);
      clear.resize(count * cv);
      for (size_t k = 0; k < count; ++k) {
        const auto& [index, w] = windows[batch.begin + k];
        indices.push_back(index);
        const size_t wy = static_cast<size_t>(w->row - region.y0), wx = static_cast<size_t>(w->col - region.x0);
        std::int16_t* px = x.data() + k * xv;
        for (size_t mb = 0; mb < static_cast<size_t>(kSeasonMonths) * nb; ++mb)
          for (size_t y = 0; y < static_cast<size_t>(S); ++y) {
            const std::int16_t* src = reflectance.data() + (mb * rh + wy + y) * rw + wx;
            std::copy(src, src + S, px + (mb * static_cast<size_t>(S) + y) * static_cast<size_t>(S));
          }
        std::uint8_t* pc = clear.data() + k * cv;
        for (size_t m = 0; m < static_cast<size_t>(kSeasonMonths); ++m)
          for (size_t y = 0; y < static_cast<size_t>(S); ++y) {
            const std::uint8_t* src = clear_count.data() + (m * rh + wy + y) * rw + wx;
            std::uint8_t* dst = pc + (m * static_cast<size_t>(S) + y) * static_cast<size_t>(S);
            for (size_t i = 0; i < static_cast<size_t>(S); ++i) dst[i] = src[i] > 0;
          }
        patch_label_layers(cell_labels, geo::Window{w->col, w->row, S, S}, layers.data() + k * lv);
      }
    }
    writer.write(indices, x.data(), layers.data(), clear.data());
  }
  writer.finish();
  log::root("extract: wrote " + std::to_string(total) + " patches of " + std::to_string(S) + " px to " + s.output +
            " in " + log::format_duration(seconds_since(start)));
}

}  // namespace

}  // namespace s2crop::samples
