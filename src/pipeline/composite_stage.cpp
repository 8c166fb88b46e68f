#include "s2crop/pipeline/composite_stage.hpp"

#include "composite_internal.hpp"
#include "s2crop/pipeline/composite_file.hpp"
#include "s2crop/pipeline/block_stage.hpp"
#include "s2crop/pipeline/stage_support.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/sentinel2/reader.hpp"

namespace fs = std::filesystem;

namespace s2crop::pipeline {

using namespace composite_detail;

namespace {

constexpr const char* kFormat = kCompositeFormat;
constexpr std::int64_t kFormatVersion = kCompositeFormatVersion;

// A block's part payload: reflectance [month][band][pixel] (int16), then clear counts [month][pixel].
size_t payload_bytes(const geo::Window& w, size_t n_bands) {
  const size_t n = static_cast<size_t>(w.pixels());
  return kMonths * n_bands * n * 2 + kMonths * n;
}

// 2: the part holds the output's compressed chunks (ChunkCodec); a part of version 1 is recomputed.
constexpr PartKind kPartKind = {'C', 'O', 'M', 'P', 'O', 'S', 'I', '2'};

// The output's chunk edge: the block's, or kDefaultCompositeBlock where a large block (aligned to JPEG 2000 tiles)
// is a multiple of it. Readers (classify, extract) read windows of about that size, and a chunk much larger than
// HDF5's chunk cache would be decompressed again for each of them; deflate is also faster on smaller chunks.
int chunk_edge(int block_size) {
  return block_size > kDefaultCompositeBlock && block_size % kDefaultCompositeBlock == 0 ? kDefaultCompositeBlock
                                                                                        : block_size;
}

// Reflectance [month][band] planes, then clear counts [month]: whole chunks of each plane.
ChunkCodec chunk_codec(const CompositeSettings& s) {
  return ChunkCodec({{kMonths * s.bands.size(), 2, static_cast<double>(composite::kNoData)}, {kMonths, 1, 0.0}},
                    s.deflate);
}

// ---------------------------------------------------------------- compute

// Everything a rank reuses from block to block: readers of the current tile's acquisitions (grid checks done
// once), open files, and the buffers, so memory follows the block size and nothing is rebuilt per block.
struct Workspace {
  explicit Workspace(size_t file_capacity) : files(file_capacity) {}
  geo::RasterCache files;
  size_t tile = static_cast<size_t>(-1);
  std::vector<std::unique_ptr<sentinel2::AcquisitionReader>> readers;
  sentinel2::ReadScratch scratch;
  std::vector<std::int16_t> obs;
  std::vector<std::uint8_t> valid;
  std::int64_t reads = 0, reads_skipped = 0;  // (acquisition, block) reads, and those the mask made unnecessary
};

// Composites one block into refl [month][band][pixel] and count [month][pixel] (the mapped part file).
void composite_block(size_t tile_index, const TilePlan& t, const geo::Window& w, const CompositeSettings& s,
                     const sentinel2::MaskOptions& mask, Workspace& ws, std::int16_t* refl, std::uint8_t* count) {
  const size_t n = static_cast<size_t>(w.pixels()), nb = s.bands.size();
  if (ws.tile != tile_index) {
    // Files of the previous tile are done with: closing them keeps memory from growing with the number of tiles.
    ws.readers.clear();
    ws.files.clear();
    ws.readers.resize(t.acquisitions.size());
    ws.tile = tile_index;
  }
  // composite_month writes every pixel of a month it composites; an empty month needs only its counts zeroed: the
  // gap filling below writes every value of every month a pixel has no observation in.
  auto mark_empty = [&](int m) {
    std::fill(count + static_cast<size_t>(m) * n, count + static_cast<size_t>(m + 1) * n, std::uint8_t{0});
  };
  for (int m = 0; m < kMonths; ++m) {
    const auto& idx = t.by_month[static_cast<size_t>(m)];
    if (idx.empty()) {
      mark_empty(m);
      continue;
    }
    // Only one month of observations is held at a time: memory follows block size x acquisitions per month.
    ws.obs.resize(idx.size() * nb * n);
    ws.valid.resize(idx.size() * n);
    size_t used = 0;  // observations with at least one clear pixel; fully masked ones are dropped, not composited
    for (size_t k = 0; k < idx.size(); ++k) {
      auto& reader = ws.readers[idx[k]];
      if (!reader)
        reader = std::make_unique<sentinel2::AcquisitionReader>(t.acquisitions[idx[k]], t.grid, s.bands, ws.files);
      ++ws.reads;
      if (reader->read(w, mask, ws.files, ws.scratch, ws.obs.data() + used * nb * n, ws.valid.data() + used * n))
        ++used;
      else
        ++ws.reads_skipped;
    }
    if (used == 0) {  // the month stays empty (count 0) and is gap-filled
      mark_empty(m);
      continue;
    }
    composite::composite_month(ws.obs.data(), ws.valid.data(), used, nb, n, s.method,
                               refl + static_cast<size_t>(m) * nb * n, count + static_cast<size_t>(m) * n);
  }
  composite::fill_gaps(refl, count, kMonths, nb, n);
}

// ---------------------------------------------------------------- output

// Rank 0 (HDF5 1.10 writes raw chunks from one process only): the file's groups, datasets and attributes; the engine
// writes the blocks' compressed chunks into them as the blocks are done. Returns each tile's plane targets in the
// codec's order: reflectance month by month, band by band, then the clear counts month by month.
OutputTargets create_output(const Plan& p, const CompositeSettings& s, BlockStage& stage, h5::File& file) {
  const size_t nb = s.bands.size();
  const hsize_t bs = static_cast<hsize_t>(chunk_edge(p.block_size));
  stage.write_file_attrs(file, kFormat, kFormatVersion, s.config_text);
  file.set_attr("inputs", s.inputs);
  std::vector<std::string> skipped;
  for (auto& k : p.skipped) skipped.push_back(k.what + ": " + k.reason);
  file.set_attr("skipped_acquisitions", skipped);
  std::vector<std::string> months;
  for (int m = 0; m < kMonths; ++m) months.push_back(month_label(p.season_year, p.season_month, m));
  OutputTargets targets;
  h5::Node tiles = file.create_group("tiles");
  for (auto& t : p.tiles) {
    h5::Node g = tiles.create_group(t.name);
    const GridScales scales = write_tile_georeference(g, t.grid);
    g.set_attr("year", static_cast<std::int64_t>(p.season_year));
    g.set_attr("season_start", month_label(p.season_year, p.season_month, 0));
    g.set_attr("bands", s.bands);
    g.set_attr("months", months);
    g.set_attr("method", std::string(s.method == composite::Method::Median ? "median" : "mean"));
    g.set_attr("block_size", static_cast<std::int64_t>(bs));  // the chunk edge: readers align their windows to it
    std::vector<std::string> acq;
    for (auto& a : t.acquisitions)
      acq.push_back(a.date.iso() + " " + a.id + " (offset " + std::to_string(a.bands.begin()->second.offset) + ", " +
                    a.offset_origin + ")");
    g.set_attr("acquisitions", acq);
    const hsize_t H = static_cast<hsize_t>(t.grid.height), W = static_cast<hsize_t>(t.grid.width);
    auto refl = g.create_dataset<std::int16_t>("reflectance", {kMonths, nb, H, W},
                                               {1, 1, std::min(bs, H), std::min(bs, W)}, s.deflate,
                                               composite::kNoData);
    refl.set_attr("nodata", static_cast<double>(composite::kNoData));
    refl.set_attr("scale_factor", 1e-4);
    refl.set_attr("long_name", std::string("surface reflectance x 10000, monthly composite, gap-filled"));
    auto count = g.create_dataset<std::uint8_t>("clear_count", {kMonths, H, W}, {1, std::min(bs, H), std::min(bs, W)},
                                                s.deflate, std::uint8_t{0});
    count.set_attr("long_name", std::string("clear observations per month (0: month gap-filled)"));
    // Dimension scales, so h5py/xarray users see named, georeferenced axes.
    auto month_ds = g.create_string_dataset("month", months);
    auto band_ds = g.create_string_dataset("band", s.bands);
    month_ds.make_scale("month");
    band_ds.make_scale("band");
    refl.attach_scale(month_ds, 0);
    refl.attach_scale(band_ds, 1);
    scales.georeference(refl, 2);
    count.attach_scale(month_ds, 0);
    scales.georeference(count, 1);
    std::vector<PlaneTarget> planes;
    const size_t refl_at = targets.add(std::move(refl)), count_at = targets.add(std::move(count));
    for (hsize_t m = 0; m < kMonths; ++m)
      for (hsize_t band = 0; band < nb; ++band) planes.push_back({refl_at, {m, band}});
    for (hsize_t m = 0; m < kMonths; ++m) planes.push_back({count_at, {m}});
    targets.planes.push_back(std::move(planes));
  }
  return targets;
}

// As many open rasters as the descriptor limit allows (raised to the hard limit), leaving room for the rest.
size_t raster_cache_capacity() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 65536);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 256;
  return static_cast<size_t>(std::clamp<rlim_t>(rl.rlim_cur / 2, 64, 4096));
}


}  // namespace

void run_composite(const CompositeSettings& s, const parallel::MpiContext& mpi) {
  using clock = std::chrono::steady_clock;
  if (s.inputs.empty()) throw ConfigError("composite: no input given (--input DIR ...)");
  if (s.output.empty()) throw ConfigError("composite: no output given (--output FILE.h5)");
  if (s.block_size != 0) check_block_size(s.block_size, kCompositeBlockSizes);
  check_deflate(s.deflate);
  if (!s.quicklook_month.empty()) {
    try {
      Date::parse(s.quicklook_month + "-01");
    } catch (const Error&) {
      throw ConfigError("--quicklook-month must be YYYY-MM (got '" + s.quicklook_month + "')");
    }
  }
  auto mask = sentinel2::MaskOptions::from(s.valid_scl, s.dilation);
  geo::init_gdal();
  BlockStageConfig config;
  config.stage = "composite";
  config.part_kind = kPartKind;
  config.codec = chunk_codec(s);
  config.output = s.output;
  config.export_dirs = {s.cog_dir, s.quicklook_dir};
  config.overwrite = s.overwrite;
  config.stored_fingerprint = hdf5_run_fingerprint;
  BlockStage stage(config, mpi);
  // Export folders are checked now, not after hours of compositing.
  stage.check_outputs();

  // ---- plan: discovery on rank 0, file inspection spread over the ranks
  Plan plan = make_plan(s, mpi);
  if (plan.tiles.empty()) throw AgreedError("no tile has a usable acquisition");
  int ql_month = kMonths - 2;  // every rank knows the plan: checked here, before any work
  if (!s.quicklook_month.empty()) {
    ql_month = month_index(plan, Date::parse(s.quicklook_month + "-01"));
    if (ql_month < 0 || ql_month >= kMonths)
      throw ConfigError("--quicklook-month " + s.quicklook_month + " is outside the season " +
                        month_label(plan.season_year, plan.season_month, 0) + " to " +
                        month_label(plan.season_year, plan.season_month, kMonths - 1));
  }
  if (s.list_only) {
    if (mpi.is_root()) print_plan(plan, s);
    return;
  }

  // ---- resume state: rank 0 takes the output's lock, then looks at the output and the parts of an interrupted run
  std::vector<std::string> groups;
  for (auto& t : plan.tiles) groups.push_back(t.name);
  if (!stage.begin(plan.fingerprint, plan.output_fingerprint, groups)) return;
  std::vector<BlockUnit> units;
  for (size_t ti = 0; ti < plan.tiles.size(); ++ti) {
    const TilePlan& t = plan.tiles[ti];
    for (size_t b = 0; b < t.blocks.size(); ++b)
      // Cost model: pixels x acquisitions read (dominant: decoding the inputs). Writing a block's compressed
      // chunks costs rank 0 about half an acquisition's reading per pixel (full 10980 px tile, 6 dates, COG: 23.6 s
      // writing of 298 s computing on one rank).
      units.push_back({ti, b, t.blocks[b], payload_bytes(t.blocks[b], s.bands.size()),
                       static_cast<double>(t.blocks[b].pixels()) * static_cast<double>(t.acquisitions.size() + 1),
                       std::min(chunk_edge(plan.block_size), t.grid.width),
                       std::min(chunk_edge(plan.block_size), t.grid.height),
                       0.5 * static_cast<double>(t.blocks[b].pixels())});
  }
  const std::vector<size_t> todo = stage.resume(units);

  // ---- compute
  long long total_obs_px = 0;
  for (size_t u : todo)
    total_obs_px += units[u].window.pixels() * static_cast<long long>(plan.tiles[units[u].group].acquisitions.size());
  if (mpi.is_root()) {
    size_t n_acq = 0;
    for (auto& t : plan.tiles) n_acq += t.acquisitions.size();
    log::info("plan: " + std::to_string(plan.tiles.size()) + " tile(s), " + std::to_string(n_acq) +
              " acquisitions, " + std::to_string(units.size()) + " blocks of " + std::to_string(plan.block_size) +
              " px, " + std::to_string(stage.units_done_before()) + " already done, " + std::to_string(todo.size()) +
              " to compute on " + std::to_string(mpi.size()) + " rank(s); season " +
              month_label(plan.season_year, plan.season_month, 0) + " to " +
              month_label(plan.season_year, plan.season_month, kMonths - 1));
    for (auto& k : plan.skipped) log::warn("skipped " + k.what + ": " + k.reason);
    // What bounds a rank's memory: the block's 12 composites being built, and one month of observations of it.
    size_t per_month = 1;
    for (auto& t : plan.tiles)
      for (auto& m : t.by_month) per_month = std::max(per_month, m.size());
    const double px = static_cast<double>(plan.block_size) * plan.block_size;
    // The block's months are held computed and compressed (at most as large) twice: on a rank other than 0, two
    // blocks in flight to rank 0, which writes the output; on rank 0, its own block and one received.
    const double bytes = px * static_cast<double>(2 * s.bands.size() + 1) * static_cast<double>(3 * kMonths + per_month);
    // Beside the blocks: what the process holds already (libraries, the plan) and GDAL's block cache once full.
    const double resident = resident_mib(), gdal_cache = geo::block_cache_mib();
    char line[480];
    std::snprintf(line, sizeof line, "memory per rank up to about %.0f MiB: %.0f MiB in use before compositing "
                  "(libraries, the plan), GDAL's block cache (%.0f MiB, GDAL_CACHEMAX), and %.0f MiB for a block of "
                  "%d x %d px, its 12 months computed and two blocks' compressed, and up to %zu acquisitions of one "
                  "month read at once (--block-size bounds it)", resident + gdal_cache + bytes / 1048576.0, resident,
                  gdal_cache, bytes / 1048576.0, plan.block_size, plan.block_size, per_month);
    log::info(line);
  }
  auto t_compute = clock::now();
  // Units are in (tile, block) order, so the readers and open files of a tile serve block after block.
  Workspace ws(raster_cache_capacity());
  // Clear observations per tile, totalled on rank 0 as blocks reach the output: a tile with none is refused below.
  std::vector<double> clear_per_tile(plan.tiles.size(), 0.0);
  ChunkedOutput output;
  output.create = [&](h5::File& file) { return create_output(plan, s, stage, file); };
  output.stored = [&](size_t u, const PackedChunks& chunks) {
    const BlockUnit& unit = units[u];
    std::vector<std::uint8_t> block_count(static_cast<size_t>(unit.window.pixels()));
    for (size_t m = 0; m < kMonths; ++m) {
      stage.unpack(u, chunks, kMonths * s.bands.size() + m, block_count.data());
      for (std::uint8_t c : block_count) clear_per_tile[unit.group] += c;
    }
  };
  stage.compute(todo, [&](size_t u, std::uint8_t* payload) {
    const BlockUnit& unit = units[u];
    const size_t n = static_cast<size_t>(unit.window.pixels());
    composite_block(unit.group, plan.tiles[unit.group], unit.window, s, mask, ws,
                    reinterpret_cast<std::int16_t*>(payload), payload + kMonths * s.bands.size() * n * 2);
  }, output);
  double compute_s = std::chrono::duration<double>(clock::now() - t_compute).count();
  if (mpi.is_root() && !todo.empty()) {
    char line[256];
    std::snprintf(line, sizeof line, "composited %zu blocks in %.3f s (%.4g acquisition-band-pixels/s per rank)",
                  todo.size(), compute_s,
                  static_cast<double>(total_obs_px) * static_cast<double>(s.bands.size()) /
                      std::max(compute_s, 1e-9) / mpi.size());
    log::info(line);
  }
  {
    std::int64_t reads = parallel::sum(mpi.world(), ws.reads);
    std::int64_t skipped = parallel::sum(mpi.world(), ws.reads_skipped);
    if (mpi.is_root() && reads > 0)
      log::info(std::to_string(skipped) + " of " + std::to_string(reads) +
                " acquisition-block reads skipped: no clear pixel in the mask (cloudy or no data)");
  }
  log_peak_memory(mpi, "after compositing");

  MPI_Bcast(clear_per_tile.data(), static_cast<int>(clear_per_tile.size()), MPI_DOUBLE, 0, mpi.world());
  for (size_t ti = 0; ti < plan.tiles.size(); ++ti)
    if (clear_per_tile[ti] == 0) {
      // Every pixel of every month no data: a mask that keeps nothing (--valid-scl), reflectance delivered in
      // another scale or type, or a mask file that marks everything invalid. A map made from it would be empty.
      throw AgreedError("tile " + plan.tiles[ti].name + " has no clear observation in any month (" +
                        std::to_string(plan.tiles[ti].acquisitions.size()) + " acquisitions; every pixel would be no "
                        "data): check --valid-scl (" + join_items([&] {
                          std::vector<std::string> v;
                          for (int c : s.valid_scl) v.push_back(std::to_string(c));
                          return v;
                        }()) + "), the masks and the bands' values (L2A digital numbers, reflectance x 10000)");
    }
  if (!s.cog_dir.empty() || !s.quicklook_dir.empty()) {
    parallel::root_first(mpi.world(), [&] {
      if (!s.cog_dir.empty())
        for (auto& t : plan.tiles) ensure_dir(s.cog_dir + "/" + t.name);
      if (!s.quicklook_dir.empty()) ensure_dir(s.quicklook_dir);
    });
    // Exports read the finished (staged) output, each rank its own share.
    const CompositeFile composites(stage.staged_output());
    size_t job = 0;
    for (size_t ti = 0; ti < plan.tiles.size(); ++ti) {
      if (!s.cog_dir.empty())
        for (int m = 0; m < kMonths; ++m, ++job)
          if (job % static_cast<size_t>(mpi.size()) == static_cast<size_t>(mpi.rank()))
            write_cog(plan, ti, m, s, composites);
      if (!s.quicklook_dir.empty()) {
        if (job % static_cast<size_t>(mpi.size()) == static_cast<size_t>(mpi.rank()))
          write_quicklook(plan, ti, ql_month, s, composites);
        ++job;
      }
    }
    MPI_Barrier(mpi.world());
  }
  stage.finish(s.output + " (" + std::to_string(plan.tiles.size()) + " tile(s))");
  if (mpi.is_root()) {
    if (!s.cog_dir.empty()) log::info("COGs in " + s.cog_dir);
    if (!s.quicklook_dir.empty()) log::info("quicklooks in " + s.quicklook_dir);
  }
}

}  // namespace s2crop::pipeline
