#include "s2crop/common/text.hpp"
#include "s2crop/pipeline/mosaic.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/hash.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/geo/class_raster.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/geo/warp.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/pipeline/block_stage.hpp"
#include "s2crop/pipeline/stage_support.hpp"
#include "s2crop/version.hpp"

namespace fs = std::filesystem;

namespace s2crop::pipeline {

namespace {

// The map layout written by `s2crop classify` (include/s2crop/infer/classify.hpp).
constexpr const char* kMapFormat = "s2crop class map";
constexpr std::int64_t kMapFormatVersion = 1;
constexpr std::uint8_t kNoClass = 255;
constexpr PartKind kPartKind = {'S', '2', 'C', 'M', 'O', 'S', 'P', '1'};
constexpr int kSourceBlock = 512;  // map tiles are read in windows of this size (classify's default chunk)
constexpr const char* kFingerprintKey = "S2CROP_RUN_FINGERPRINT";


struct MapTile {
  std::string name, map;
  geo::Grid grid;
};

struct MapInputs {
  std::vector<std::string> class_names;
  std::vector<std::array<std::uint8_t, 3>> colours;
  std::vector<MapTile> tiles;  // the selected tiles in name order: the order of the overlap rule's tie-break
  std::string identity;        // what the map files are (rank 0 only; for the run fingerprint)
};

// Opens and checks every map file; throws InputError naming the file (and tile) at the first problem.
MapInputs read_maps(const MosaicSettings& s, bool fingerprint) {
  MapInputs in;
  std::string first_map;
  std::map<std::string, MapTile> all;
  for (const std::string& path : s.maps) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) throw InputError(path, "map file does not exist");
    h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
    if (!f.has_attr("format") || f.attr_string("format") != kMapFormat)
      throw InputError(path, "is not an s2crop class map (attribute format is not '" + std::string(kMapFormat) +
                                 "'); make one with 's2crop classify'");
    if (f.attr_int("format_version") > kMapFormatVersion)
      throw InputError(path, "class map format version " + std::to_string(f.attr_int("format_version")) +
                                 " is newer than this s2crop understands (" + std::to_string(kMapFormatVersion) + ")");
    for (const char* attr : {"class_names", "class_colours"})
      if (!f.has_attr(attr)) throw InputError(path, std::string("class map lacks the attribute '") + attr + "'");
    auto names = f.attr_strings("class_names");
    auto colours = f.attr_doubles("class_colours");
    if (names.empty() || names.size() >= kNoClass)
      throw InputError(path, "class_names must name 1-254 classes, it has " + std::to_string(names.size()));
    if (colours.size() != 3 * names.size())
      throw InputError(path, "class_colours has " + std::to_string(colours.size()) + " values for " +
                                 std::to_string(names.size()) + " classes (3 per class expected)");
    if (first_map.empty()) {
      first_map = path;
      in.class_names = names;
      for (size_t k = 0; k < names.size(); ++k)
        in.colours.push_back({static_cast<std::uint8_t>(colours[3 * k]), static_cast<std::uint8_t>(colours[3 * k + 1]),
                              static_cast<std::uint8_t>(colours[3 * k + 2])});
    } else if (names != in.class_names) {
      throw InputError(path, "has the classes [" + join_items(names) + "] but " + first_map + " has [" +
                                 join_items(in.class_names) +
                                 "]: the maps of one mosaic must share their classes (maps of the same model)");
    }
    if (!f.exists("tiles")) throw InputError(path, "class map has no /tiles group");
    h5::Node tiles = f.open_group("tiles");
    for (const std::string& name : tiles.children()) {
      h5::Node g = tiles.open_group(name);
      for (const char* attr : {"crs_wkt", "geotransform"})
        if (!g.has_attr(attr)) throw InputError(path, "tile " + name + " lacks the attribute '" + attr + "'");
      for (const char* ds : {"class", "confidence"})
        if (!g.exists(ds)) throw InputError(path, "tile " + name + " lacks the dataset '" + ds + "'");
      MapTile t;
      t.name = name;
      t.map = path;
      t.grid.crs_wkt = g.attr_string("crs_wkt");
      auto gt = g.attr_doubles("geotransform");
      if (gt.size() != 6) throw InputError(path, "tile " + name + ": geotransform must have 6 numbers");
      std::copy(gt.begin(), gt.end(), t.grid.geotransform.begin());
      if (gt[2] != 0 || gt[4] != 0 || !(gt[1] > 0) || !(gt[5] < 0))
        throw InputError(path, "tile " + name + ": only north-up grids are supported");
      auto dims = g.open_dataset("class").dims();
      if (dims.size() != 2 || dims != g.open_dataset("confidence").dims())
        throw InputError(path, "tile " + name + ": 'class' and 'confidence' must be 2-D [y][x] of the same shape");
      t.grid.height = static_cast<int>(dims[0]);
      t.grid.width = static_cast<int>(dims[1]);
      auto [it, fresh] = all.emplace(name, t);
      if (!fresh)
        throw InputError(path, "tile " + name + " is also in " + it->second.map +
                                   "; each tile must come from one map file only");
    }
  }
  if (s.tiles.empty()) {
    for (auto& [name, t] : all) in.tiles.push_back(t);
  } else {
    std::set<std::string> wanted(s.tiles.begin(), s.tiles.end());
    for (const std::string& name : wanted) {
      auto it = all.find(name);
      if (it == all.end()) {
        std::vector<std::string> have;
        for (auto& [n, t] : all) have.push_back(n);
        throw InputError(join_items(s.maps), std::string(s.maps.size() == 1 ? "has" : "have") + " no tile " + name +
                                           " (tiles: " + (have.empty() ? std::string("none") : join_items(have)) + ")");
      }
      in.tiles.push_back(it->second);
    }
  }
  if (in.tiles.empty()) throw InputError(join_items(s.maps), "no tile to mosaic");
  if (in.tiles.size() > 0xFFFE) throw ConfigError("mosaic: too many tiles (at most 65534)");
  if (fingerprint) {
    // Each map by identity and by the fingerprint of the run that made it (a map is as large as its composites'
    // tiles: not read twice). Sorted: the order of --maps does not change the mosaic.
    std::vector<std::string> ids;
    for (const std::string& path : s.maps) {
      h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
      ids.push_back(hash::file_identity(path) + " " +
                    (f.has_attr("run_fingerprint") ? f.attr_string("run_fingerprint") : std::string()));
    }
    std::sort(ids.begin(), ids.end());
    in.identity = join_items(ids, ",");
  }
  return in;
}

struct Plan {
  geo::Grid grid;
  std::vector<geo::Window> blocks;
  std::vector<std::vector<size_t>> tiles_of_block;
  std::vector<size_t> units;  // blocks with at least one tile
};

Plan make_plan(const MosaicSettings& s, const MapInputs& in, const std::string& wkt) {
  std::vector<geo::Grid> grids;
  for (auto& t : in.tiles) grids.push_back(t.grid);
  Plan p;
  p.grid = mosaic_grid(grids, wkt, s.resolution);
  p.blocks = geo::cut_blocks(p.grid.width, p.grid.height, s.block_size);
  p.tiles_of_block = tiles_per_block(p.grid, p.blocks, grids);
  for (size_t b = 0; b < p.blocks.size(); ++b)
    if (!p.tiles_of_block[b].empty()) p.units.push_back(b);
  return p;
}

// What a rank keeps open while it warps: each map file once, each tile's datasets and warper.
class TileSources {
 public:
  TileSources(const std::vector<MapTile>& tiles, const geo::Grid& target) : tiles_(tiles), target_(target) {
    slots_.resize(tiles.size());
  }
  geo::NearestWarper& warper(size_t t) {
    if (!slots_[t]) {
      auto slot = std::make_unique<Slot>();
      const MapTile& tile = tiles_[t];
      auto it = files_.find(tile.map);
      if (it == files_.end()) it = files_.emplace(tile.map, h5::File::open_read(tile.map, MPI_COMM_NULL)).first;
      h5::Node g = it->second.open_group("tiles").open_group(tile.name);
      slot->cls = g.open_dataset("class");
      slot->conf = g.open_dataset("confidence");
      Slot* raw = slot.get();
      slot->warper = std::make_unique<geo::NearestWarper>(
          tile.grid, 2, kSourceBlock,
          [raw](int band, const geo::Window& w, std::uint8_t* out) {
            const h5::Dataset& ds = band == 1 ? raw->cls : raw->conf;
            ds.read<std::uint8_t>({static_cast<hsize_t>(w.y0), static_cast<hsize_t>(w.x0)},
                                  {static_cast<hsize_t>(w.height), static_cast<hsize_t>(w.width)}, out);
          },
          target_, kNoClass);
      slots_[t] = std::move(slot);
    }
    return *slots_[t]->warper;
  }

 private:
  struct Slot {
    h5::Dataset cls, conf;
    std::unique_ptr<geo::NearestWarper> warper;
  };
  const std::vector<MapTile>& tiles_;
  geo::Grid target_;
  std::map<std::string, h5::File> files_;  // declared before the slots: closed after their datasets
  std::vector<std::unique_ptr<Slot>> slots_;
};

// One block: every listed tile warped and merged into `out`: class [px], then confidence [px].
void mosaic_block(TileSources& sources, const geo::Window& w, const std::vector<size_t>& tiles, std::uint8_t* out) {
  const size_t n = static_cast<size_t>(w.pixels());
  std::fill_n(out, 2 * n, kMosaicNoData);
  std::vector<std::uint8_t> tile_cls(n), tile_conf(n);
  std::unique_ptr<std::uint16_t[]> winner(new std::uint16_t[n]);  // (a vector here trips GCC 12's -Wfree-nonheap-object)
  std::fill_n(winner.get(), n, std::uint16_t{0xFFFF});
  for (size_t t : tiles) {
    sources.warper(t).warp(w, {tile_cls.data(), tile_conf.data()});
    merge_tile(n, tile_cls.data(), tile_conf.data(), static_cast<std::uint16_t>(t), out, out + n, winner.get());
  }
}

}  // namespace

geo::Grid mosaic_grid(const std::vector<geo::Grid>& tiles, const std::string& crs_wkt, double resolution) {
  if (tiles.empty()) throw ConfigError("mosaic: no tile to mosaic");
  geo::Bounds all = geo::ring_bounds(geo::grid_outline(tiles.front(), crs_wkt));
  for (size_t i = 1; i < tiles.size(); ++i) {
    geo::Bounds b = geo::ring_bounds(geo::grid_outline(tiles[i], crs_wkt));
    all.xmin = std::min(all.xmin, b.xmin);
    all.ymin = std::min(all.ymin, b.ymin);
    all.xmax = std::max(all.xmax, b.xmax);
    all.ymax = std::max(all.ymax, b.ymax);
  }
  return geo::aligned_grid(all, resolution, crs_wkt);
}

std::vector<std::vector<size_t>> tiles_per_block(const geo::Grid& grid, const std::vector<geo::Window>& blocks,
                                                 const std::vector<geo::Grid>& tiles) {
  std::vector<std::vector<size_t>> out(blocks.size());
  for (size_t t = 0; t < tiles.size(); ++t) {
    const geo::Ring ring = geo::ring_to_pixels(geo::grid_outline(tiles[t], grid.crs_wkt), grid);
    const geo::Bounds b = geo::ring_bounds(ring);
    for (size_t k = 0; k < blocks.size(); ++k) {
      const geo::Window& w = blocks[k];
      const double x0 = w.x0 - 1.0, y0 = w.y0 - 1.0, x1 = w.x0 + w.width + 1.0, y1 = w.y0 + w.height + 1.0;
      if (x1 < b.xmin || x0 > b.xmax || y1 < b.ymin || y0 > b.ymax) continue;
      if (geo::ring_intersects_rect(ring, x0, y0, x1, y1)) out[k].push_back(t);
    }
  }
  return out;
}

void merge_tile(size_t n, const std::uint8_t* tile_class, const std::uint8_t* tile_confidence,
                std::uint16_t tile_index, std::uint8_t* cls, std::uint8_t* confidence, std::uint16_t* winner) {
  for (size_t i = 0; i < n; ++i) {
    if (tile_class[i] == kNoClass) continue;
    const std::uint8_t c = tile_confidence[i];
    if (cls[i] == kNoClass || c > confidence[i] || (c == confidence[i] && tile_index < winner[i])) {
      cls[i] = tile_class[i];
      confidence[i] = c;
      winner[i] = tile_index;
    }
  }
}

void run_mosaic(const MosaicSettings& s, const parallel::MpiContext& mpi) {
  using clock = std::chrono::steady_clock;
  if (s.maps.empty()) throw ConfigError("mosaic: no map file given (--maps MAP.h5[,MAP2.h5...])");
  if (s.output.empty()) throw ConfigError("mosaic: no output given (--output MOSAIC.tif)");
  check_block_size(s.block_size, kMosaicBlockSizes);
  if (!(s.resolution > 0)) throw ConfigError("--resolution must be positive");
  if (!s.confidence_output.empty() && fs::absolute(s.confidence_output) == fs::absolute(s.output))
    throw ConfigError("--confidence-output must differ from --output");
  const std::string wkt = geo::crs_wkt_from_user(s.crs);  // ConfigError on every rank alike

  BlockStageConfig config;
  config.stage = "mosaic";
  config.part_kind = kPartKind;
  config.output = s.output;
  config.outputs = {s.output};
  if (!s.confidence_output.empty()) config.outputs.push_back(s.confidence_output);
  config.depends_on = "maps or options";
  config.overwrite = s.overwrite;
  config.stored_fingerprint = [](const std::string& path) {
    try {
      return geo::RasterReader(path).metadata_item(kFingerprintKey);
    } catch (const Error&) {
      return std::string("?");
    }
  };
  BlockStage stage(config, mpi);
  stage.check_outputs();

  // ---- plan: rank 0 checks the inputs before anything is written
  MapInputs in;
  Plan plan;
  std::string fingerprint;
  parallel::root_first(mpi.world(), [&] {
    in = read_maps(s, true);
    plan = make_plan(s, in, wkt);
    std::vector<std::string> names;
    for (auto& t : in.tiles) names.push_back(t.name);
    // What the pixels depend on (maps, CRS, grid, tiles) and what the parts depend on (block size).
    Fingerprint fp;
    fp.add("stage", "mosaic1").add("maps", in.identity).add("crs", wkt).add("resolution", s.resolution);
    fp.add("grid", plan.grid.describe()).add("block", std::to_string(s.block_size)).add("tiles", join_items(names, ","));
    fingerprint = fp.hex();
  });
  if (!stage.begin(parallel::broadcast_string(mpi.world(), fingerprint),
                   parallel::broadcast_string(mpi.world(), fingerprint), {"mosaic"}))
    return;
  fingerprint = parallel::broadcast_string(mpi.world(), fingerprint);
  if (!mpi.is_root()) {
    in = read_maps(s, false);
    plan = make_plan(s, in, wkt);
  }

  // ---- resume: parts already there are verified in parallel; damaged ones are recomputed
  std::vector<BlockUnit> units;
  for (size_t b : plan.units)
    units.push_back({0, b, plan.blocks[b], 2 * static_cast<size_t>(plan.blocks[b].pixels()),
                     static_cast<double>(plan.blocks[b].pixels()) * static_cast<double>(plan.tiles_of_block[b].size())});
  const std::vector<size_t> todo = stage.resume(units);
  if (mpi.is_root()) {
    std::set<std::string> crs;
    for (auto& t : in.tiles) crs.insert(geo::crs_short_name(t.grid.crs_wkt));
    log::info("mosaic: " + std::to_string(s.maps.size()) + " map file(s), " + std::to_string(in.tiles.size()) +
              " tile(s) in " + join_items(std::vector<std::string>(crs.begin(), crs.end())) + " -> " +
              plan.grid.describe() + "; " + std::to_string(plan.blocks.size()) + " blocks of " +
              std::to_string(s.block_size) + " px, " + std::to_string(units.size()) + " with data, " +
              std::to_string(stage.units_done_before()) + " already done, " + std::to_string(todo.size()) +
              " to warp on " + std::to_string(mpi.size()) + " rank(s)");
  }

  // ---- compute
  const auto t_compute = clock::now();
  std::int64_t pixels = 0;
  {
    TileSources sources(in.tiles, plan.grid);
    stage.compute(todo, [&](size_t u, std::uint8_t* payload) {
      const size_t b = stage.units()[u].block;
      mosaic_block(sources, plan.blocks[b], plan.tiles_of_block[b], payload);
      pixels += plan.blocks[b].pixels() * static_cast<std::int64_t>(plan.tiles_of_block[b].size());
    });
  }
  const std::int64_t total_pixels = parallel::sum(mpi.world(), pixels);
  const double compute_s = std::chrono::duration<double>(clock::now() - t_compute).count();
  if (mpi.is_root() && total_pixels > 0) {
    char line[160];
    std::snprintf(line, sizeof line, "warped %lld tile pixels in %.2f s (%.4g pixels/s)",
                  static_cast<long long>(total_pixels), compute_s,
                  static_cast<double>(total_pixels) / std::max(compute_s, 1e-9));
    log::info(line);
  }
  log_peak_memory(mpi, "after warping");

  // ---- assemble (rank 0): the parts stream into the COGs, block by block, then move into place
  parallel::root_first(mpi.world(), [&] {
    const int blocks_x = (plan.grid.width + s.block_size - 1) / s.block_size;
    // The writers ask for windows of the block grid: block (x0 / size, y0 / size); offset 0 = class, n = confidence.
    auto read_band = [&](const geo::Window& w, std::uint8_t* out, size_t band) {
      const size_t b = static_cast<size_t>(w.y0 / s.block_size) * static_cast<size_t>(blocks_x) +
                       static_cast<size_t>(w.x0 / s.block_size);
      const size_t n = static_cast<size_t>(w.pixels());
      if (b >= plan.blocks.size() || plan.blocks[b].x0 != w.x0 || plan.blocks[b].y0 != w.y0 ||
          plan.blocks[b].pixels() != w.pixels())
        throw Error("mosaic: the writer asked for a window off the block grid");
      const size_t unit = stage.unit_of(0, b);
      if (unit == BlockStage::kNone) {
        std::memset(out, kMosaicNoData, n);
        return;
      }
      const std::vector<std::uint8_t> payload = stage.read_part(unit);
      std::memcpy(out, payload.data() + band * n, n);
    };
    std::vector<std::pair<std::string, std::string>> metadata = {
        {"S2CROP_FORMAT", "s2crop class mosaic"},
        {"S2CROP_VERSION", kVersion},
        {kFingerprintKey, fingerprint},
        {"S2CROP_INPUTS", join_items(s.maps, " ")},
        {"S2CROP_CONFIG", s.config_text},
    };
    std::vector<std::string> tile_names;
    for (auto& t : in.tiles) tile_names.push_back(t.name);
    metadata.push_back({"S2CROP_TILES", join_items(tile_names, ",")});
    // Confidence first: the class COG appearing is the sign that the whole mosaic is done.
    if (!s.confidence_output.empty()) {
      geo::RasterBandData band;
      band.description = "confidence";
      band.read_block = [&](const geo::Window& w, void* out) { read_band(w, static_cast<std::uint8_t*>(out), 1); };
      geo::WriteOptions o;
      o.driver = "COG";
      o.has_nodata = true;
      o.nodata = kMosaicNoData;
      // A probability: zoomed-out views show the mean confidence of the area (no-data pixels left out).
      o.overview_resampling = "AVERAGE";
      o.predictor = false;
      o.read_block_size = s.block_size;
      o.metadata = metadata;
      o.metadata.push_back({"S2CROP_VALUES", "probability of the mapped class x 100; 255 = no data"});
      geo::write_raster(s.confidence_output, plan.grid, geo::PixelType::UInt8, {band}, o);
    }
    // Overviews by MODE (geo::write_class_cog): a zoomed-out pixel shows the class most of its area has. NEAREST
    // would show whichever single pixel sits at the sampling point - speckled, and it can give a small class far
    // more area at country scale than it has.
    geo::write_class_cog(
        s.output, plan.grid, [&](const geo::Window& w, std::uint8_t* out) { read_band(w, out, 0); }, s.block_size,
        in.class_names, in.colours, kMosaicNoData, metadata);
  });
  stage.finish(s.output + (s.confidence_output.empty() ? "" : " and " + s.confidence_output) + " (" +
               plan.grid.describe() + ")");
}

}  // namespace s2crop::pipeline
