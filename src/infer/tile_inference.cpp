#include "s2crop/infer/tile_inference.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>

#include "s2crop/common/allocator.hpp"
#include "s2crop/common/blas.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/pipeline/block_stage.hpp"
#include "s2crop/pipeline/stage_support.hpp"
#include "s2crop/train/trainer.hpp"


namespace s2crop::infer {

namespace {

struct TileUnits {
  pipeline::CompositeTile tile;
  std::string season_start;
  std::vector<geo::Window> blocks;
};

std::vector<TileUnits> read_tiles(const TileInferenceJob& job) {
  pipeline::CompositeFile file(job.composites);
  std::vector<std::string> names = job.tiles;
  if (names.empty())
    for (auto& t : file.tiles()) names.push_back(t.name);
  std::vector<TileUnits> out;
  for (auto& n : names) {
    TileUnits t;
    t.tile = file.tile(n);  // throws, naming the tiles the file has
    char label[16];
    std::snprintf(label, sizeof label, "%04d-%02d", t.tile.year, t.tile.season_start_month);
    t.season_start = label;
    t.blocks = geo::cut_blocks(t.tile.grid.width, t.tile.grid.height, job.block_size);
    out.push_back(std::move(t));
  }
  return out;
}

// Byte offset of layer `layer` inside a block's payload, and the payload's size (offset of one past the last layer).
size_t layer_offset(const TileInferenceJob& job, const geo::Window& w, size_t layer) {
  size_t at = 0;
  for (size_t l = 0; l < layer; ++l) at += job.layers[l].bytes(static_cast<size_t>(w.pixels()));
  return at;
}

// Rank 0 alone (HDF5 1.10 writes raw chunks from one process only), like the composite's: the file's groups,
// datasets and attributes; the engine writes the blocks' compressed chunks into them. Returns each tile's plane
// targets: layer by layer, each layer's planes in order.
pipeline::OutputTargets create_output(const std::vector<TileUnits>& tiles, const TileInferenceJob& job,
                                      pipeline::BlockStage& stage, const std::string& composite_inputs,
                                      h5::File& file) {
  const hsize_t bs = static_cast<hsize_t>(job.block_size);
  pipeline::OutputTargets targets;
  stage.write_file_attrs(file, job.format, job.format_version, job.config_text);
  file.set_attr("inputs", std::vector<std::string>{job.composites, job.model, composite_inputs});
  file.set_attr("model", job.model);
  if (job.file_attrs) job.file_attrs(file);
  {
    h5::Node group = file.create_group("tiles");
    for (size_t ti = 0; ti < tiles.size(); ++ti) {
      const TileUnits& t = tiles[ti];
      h5::Node g = group.create_group(t.tile.name);
      const pipeline::GridScales scales = pipeline::write_tile_georeference(g, t.tile.grid);
      g.set_attr("year", static_cast<std::int64_t>(t.tile.year));
      g.set_attr("season_start", t.season_start);
      const hsize_t H = static_cast<hsize_t>(t.tile.grid.height), W = static_cast<hsize_t>(t.tile.grid.width);
      std::vector<pipeline::PlaneTarget> planes;
      for (auto& layer : job.layers) {
        std::vector<hsize_t> dims{H, W}, chunk{std::min(bs, H), std::min(bs, W)};
        if (layer.depth > 0) {
          dims.insert(dims.begin(), static_cast<hsize_t>(layer.depth));
          chunk.insert(chunk.begin(), 1);
        }
        h5::Dataset ds = layer.int16 ? g.create_dataset<std::int16_t>(layer.name, dims, chunk, job.deflate,
                                                                       static_cast<std::int16_t>(layer.fill))
                                     : g.create_dataset<std::uint8_t>(layer.name, dims, chunk, job.deflate,
                                                                      static_cast<std::uint8_t>(layer.fill));
        for (auto& [k, v] : layer.text_attrs) ds.set_attr(k, v);
        for (auto& [k, v] : layer.number_attrs) ds.set_attr(k, v);
        const unsigned spatial = layer.depth > 0 ? 1 : 0;
        if (layer.depth > 0) {
          // Layers of the same depth (e.g. months) share one label dataset.
          h5::Dataset labels;
          if (g.exists(layer.depth_scale)) {
            labels = g.open_dataset(layer.depth_scale);
          } else {
            labels = g.create_string_dataset(layer.depth_scale, layer.depth_labels);
            labels.make_scale(layer.depth_dimension.empty() ? layer.depth_scale : layer.depth_dimension);
          }
          ds.attach_scale(labels, 0);
        }
        scales.georeference(ds, spatial);
        const size_t at = targets.add(std::move(ds));
        for (size_t p = 0; p < layer.planes(); ++p)
          planes.push_back({at, layer.depth > 0 ? std::vector<hsize_t>{p} : std::vector<hsize_t>{}});
      }
      targets.planes.push_back(std::move(planes));
    }
  }
  return targets;
}

}  // namespace

void run_tile_inference(const TileInferenceJob& job, const parallel::MpiContext& mpi) {
  using clock = std::chrono::steady_clock;
#ifdef S2CROP_WITHOUT_GDAL
  for (auto& dir : job.export_dirs)
    if (!dir.empty())
      throw ConfigError(job.stage + ": exports into " + dir + " need GDAL, and this s2crop was built without it (model "
                        "stages only): leave out --cog/--quicklook or rebuild with -DS2CROP_WITH_GDAL=ON");
#endif
  pipeline::check_block_size(job.block_size, pipeline::kInferenceBlockSizes);
  pipeline::check_deflate(job.deflate);
  pipeline::BlockStageConfig config;
  config.stage = job.stage;
  config.part_kind = job.part_magic;
  config.output = job.output;
  config.export_dirs = job.export_dirs;
  config.depends_on = "composites, model or options";
  config.overwrite = job.overwrite;
  config.stored_fingerprint = pipeline::hdf5_run_fingerprint;
  {
    std::vector<pipeline::PlaneGroup> planes;
    for (auto& layer : job.layers) planes.push_back({layer.planes(), layer.element_bytes(), layer.fill});
    config.codec = pipeline::ChunkCodec(planes, job.deflate);
  }
  pipeline::BlockStage stage(config, mpi);
  stage.check_outputs();

  // ---- plan: rank 0 validates inputs (one clear message), then every rank reads the small metadata
  std::vector<TileUnits> tiles;
  std::string parts_fingerprint, output_fingerprint;
  parallel::root_first(mpi.world(), [&] {
    tiles = read_tiles(job);
    if (job.check_tile)
      for (auto& t : tiles) job.check_tile(t.tile);
    pipeline::Fingerprint fp;
    {
      h5::File f = h5::File::open_read(job.composites, MPI_COMM_NULL);
      fp.add("composites_run", f.has_attr("run_fingerprint") ? f.attr_string("run_fingerprint") : "");
    }
    // The composites by identity (they can be hundreds of GB), the model by content (small, and the one input a
    // user replaces in place when retraining).
    fp.add_file_identity(job.composites).add_file_content(job.model);
    fp.add("stage", job.stage).add("block", std::to_string(job.block_size)).add("options", job.options_fingerprint);
    for (auto& t : tiles) fp.add("tile", t.tile.name);
    parts_fingerprint = fp.hex();
    fp.add("deflate", std::to_string(job.deflate));
    for (auto& dir : job.export_dirs) fp.add("export", dir);
    output_fingerprint = fp.hex();
  });
  std::vector<std::string> groups;
  if (!mpi.is_root()) tiles = read_tiles(job);
  for (auto& t : tiles) groups.push_back(t.tile.name);
  if (!stage.begin(parallel::broadcast_string(mpi.world(), parts_fingerprint),
                   parallel::broadcast_string(mpi.world(), output_fingerprint), groups))
    return;

  // ---- resume: parts already there are verified in parallel; damaged ones are recomputed
  std::vector<pipeline::BlockUnit> units;
  for (size_t ti = 0; ti < tiles.size(); ++ti)
    for (size_t b = 0; b < tiles[ti].blocks.size(); ++b) {
      const geo::Window& w = tiles[ti].blocks[b];
      const geo::Grid& grid = tiles[ti].tile.grid;
      units.push_back({ti, b, w, layer_offset(job, w, job.layers.size()), static_cast<double>(w.pixels()),
                       std::min(job.block_size, grid.width), std::min(job.block_size, grid.height)});
    }
  const std::vector<size_t> todo = stage.resume(units);
  const int threads = train::threads_per_rank(job.threads, mpi.node_size());
  train::use_threads(threads);
  if (mpi.is_root()) {
    log::info(job.stage + ": " + std::to_string(tiles.size()) + " tile(s), " + std::to_string(units.size()) +
              " blocks of " + std::to_string(job.block_size) + " px, " + std::to_string(stage.units_done_before()) +
              " already done, " + std::to_string(todo.size()) + " to compute on " + std::to_string(mpi.size()) +
              " rank(s) x " + std::to_string(threads) + " thread(s); model " + job.model +
              (job.model_summary.empty() ? "" : " (" + job.model_summary + ")"));
    if (auto blas_line = blas::describe(); !blas_line.empty()) log::info(blas_line);
    if (auto malloc_line = allocator::describe(); !malloc_line.empty()) log::info(malloc_line);
  }

  // What the output records of its inputs: the composite file's own.
  std::string composite_inputs;
  parallel::root_first(mpi.world(), [&] {
    h5::File f = h5::File::open_read(job.composites, MPI_COMM_NULL);
    if (f.has_attr("inputs"))
      for (auto& i : f.attr_strings("inputs")) composite_inputs += (composite_inputs.empty() ? "" : " ") + i;
  });
  composite_inputs = parallel::broadcast_string(mpi.world(), composite_inputs);
  pipeline::ChunkedOutput output;
  output.create = [&](h5::File& file) { return create_output(tiles, job, stage, composite_inputs, file); };

  // ---- compute
  auto t_compute = clock::now();
  long long pixels = 0;
  {
    auto predictor = job.make_predictor();
    pipeline::CompositeFile composites(job.composites);
    std::vector<pipeline::CompositeTile> file_tiles;
    for (auto& t : tiles) file_tiles.push_back(composites.tile(t.tile.name));
    // Double buffering (BlockPredictor): the next block of this rank is read while this one computes. The future is
    // declared before the loop so that a block that throws waits for the read in flight before unwinding further.
    const std::vector<size_t> order = stage.assigned(todo);
    size_t next = 0;
    std::future<BlockInput> reading;
    auto read_ahead = [&](size_t u) {
      return std::async(std::launch::async, [&predictor, &composites, &file_tiles, &stage, u] {
        const pipeline::BlockUnit& unit = stage.units()[u];
        // Rank 0 writes the output's chunks on the main thread meanwhile: one HDF5 caller at a time.
        std::lock_guard<std::mutex> hold(h5::library_mutex());
        return predictor->read(composites, file_tiles[unit.group], unit.window);
      });
    };
    if (!order.empty()) reading = read_ahead(order[0]);
    stage.compute(todo, [&](size_t u, std::uint8_t* payload) {
      if (next >= order.size() || order[next] != u) throw Error(job.stage + ": blocks computed out of the planned order");
      BlockInput input = reading.get();
      if (++next < order.size()) reading = read_ahead(order[next]);
      const pipeline::BlockUnit& unit = stage.units()[u];
      predictor->predict(composites, file_tiles[unit.group], unit.window, std::move(input), payload);
      pixels += unit.window.pixels();
    }, output);
    predictor->finish(mpi);
  }
  const long long total_pixels = parallel::sum(mpi.world(), pixels);
  const double compute_s = std::chrono::duration<double>(clock::now() - t_compute).count();
  if (mpi.is_root() && total_pixels > 0) {
    char line[200];
    std::snprintf(line, sizeof line, "%s: %lld pixels in %.2f s (%.4g pixels/s, %.4g per rank)", job.stage.c_str(),
                  total_pixels, compute_s, static_cast<double>(total_pixels) / std::max(compute_s, 1e-9),
                  static_cast<double>(total_pixels) / std::max(compute_s, 1e-9) / mpi.size());
    log::info(line);
  }
  pipeline::log_peak_memory(mpi, "after " + job.stage);

  // ---- export from the finished output, then move it into place
  if (job.export_tile) {
    MPI_Barrier(mpi.world());
    for (size_t ti = static_cast<size_t>(mpi.rank()); ti < tiles.size(); ti += static_cast<size_t>(mpi.size())) {
      const TileUnits& t = tiles[ti];
      // Exports read windows of the finished (staged) output, a layer's plane at a time.
      const h5::File file = h5::File::open_read(stage.staged_output(), MPI_COMM_NULL);
      const h5::Node group = file.open_group("tiles").open_group(t.tile.name);
      LayerReader read = [&](size_t layer, size_t plane, const geo::Window& window, void* out) {
        const OutputLayer& l = job.layers.at(layer);
        const h5::Dataset ds = group.open_dataset(l.name);
        std::vector<hsize_t> offset{static_cast<hsize_t>(window.y0), static_cast<hsize_t>(window.x0)};
        std::vector<hsize_t> count{static_cast<hsize_t>(window.height), static_cast<hsize_t>(window.width)};
        if (l.depth > 0) {
          offset.insert(offset.begin(), static_cast<hsize_t>(plane));
          count.insert(count.begin(), 1);
        }
        if (l.int16)
          ds.read<std::int16_t>(offset, count, static_cast<std::int16_t*>(out));
        else
          ds.read<std::uint8_t>(offset, count, static_cast<std::uint8_t*>(out));
      };
      job.export_tile(t.tile, read);
    }
  }
  stage.finish(job.output);
}

}  // namespace s2crop::infer
