#include "s2crop/samples/extract.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <sstream>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/composite/kernels.hpp"
#include "s2crop/geo/rasterize.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/pipeline/composite_file.hpp"
#include "s2crop/samples/training_set.hpp"

namespace fs = std::filesystem;

namespace s2crop::samples {

namespace {

constexpr std::uint64_t kKeepAll = std::numeric_limits<std::uint64_t>::max();

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

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

}  // namespace

std::uint64_t sample_hash(std::uint64_t seed, const std::string& tile, int row, int col) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a over the tile name
  for (unsigned char c : tile) h = (h ^ c) * 0x100000001b3ULL;
  h = splitmix64(h ^ splitmix64(seed));
  const std::uint64_t position = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(row)) << 32) |
                                 static_cast<std::uint32_t>(col);
  return splitmix64(h ^ splitmix64(position));
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
  std::vector<const pipeline::CompositeTile*> tiles;
  for (auto& name : s.tiles)
    if (std::none_of(tiles.begin(), tiles.end(), [&](auto* t) { return t->name == name; }))
      tiles.push_back(&composites.tile(name));
  // Global order is the composite file's tile order, whatever order --tiles lists them in.
  std::vector<const pipeline::CompositeTile*> ordered;
  for (auto& t : composites.tiles())
    if (tiles.empty() || std::any_of(tiles.begin(), tiles.end(), [&](auto* x) { return x == &t; }))
      ordered.push_back(&t);
  tiles = ordered;
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

}  // namespace s2crop::samples
