#include "s2crop/infer/classify.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/blas.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/geo/class_raster.hpp"
#include "s2crop/geo/grid.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/nn/model_file.hpp"
#include "s2crop/pipeline/composite_file.hpp"
#include "s2crop/pipeline/stage_support.hpp"
#include "s2crop/train/trainer.hpp"
#include "s2crop/version.hpp"
#include "s2crop/viz/class_map.hpp"

namespace fs = std::filesystem;

namespace s2crop::infer {

namespace {

constexpr const char* kMapFormat = "s2crop class map";
constexpr std::int64_t kMapFormatVersion = 1;
constexpr char kPartMagic[8] = {'S', '2', 'C', 'M', 'A', 'P', 'P', '1'};
constexpr std::int16_t kNoData = -32768;

struct TileInput {
  std::string name;
  geo::Grid grid;
  std::vector<std::string> bands;
  std::int64_t year = 0;
  std::string season_start;
  std::vector<geo::Window> blocks;
};

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

std::uint64_t fnv1a(const void* data, size_t n, std::uint64_t h = 1469598103934665603ULL) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

std::uint64_t file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf(1 << 20);
  std::uint64_t h = 1469598103934665603ULL;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h = fnv1a(buf.data(), static_cast<size_t>(in.gcount()), h);
  }
  return h;
}

std::vector<TileInput> read_tiles(const ClassifySettings& s) {
  pipeline::CompositeFile file(s.composites);
  std::vector<std::string> names;
  if (s.tiles.empty())
    for (auto& t : file.tiles()) names.push_back(t.name);
  else
    names = s.tiles;
  std::vector<TileInput> out;
  for (auto& n : names) {
    const auto& c = file.tile(n);  // throws, naming the tiles the file has
    TileInput t;
    t.name = c.name;
    t.grid = c.grid;
    t.bands = c.bands;
    t.year = c.year;
    char label[16];
    std::snprintf(label, sizeof label, "%04d-%02d", c.year, c.season_start_month);
    t.season_start = label;
    t.blocks = geo::cut_blocks(t.grid.width, t.grid.height, s.block_size);
    out.push_back(std::move(t));
  }
  return out;
}

std::string part_path(const ClassifySettings& s, const TileInput& t, size_t block) {
  return s.output + ".parts/" + t.name + "/" + std::to_string(block) + ".part";
}

size_t payload_bytes(const geo::Window& w, size_t n_classes, bool probabilities) {
  return static_cast<size_t>(w.pixels()) * (2 + (probabilities ? n_classes : 0));
}


// The model over one block: payload = class [px], confidence [px], then optionally probabilities [class][px].
std::vector<std::uint8_t> classify_block(nn::LstmClassifier& model, const nn::FeatureMap& features,
                                         const pipeline::CompositeFile& composites, const TileInput& t,
                                         const geo::Window& w, const ClassifySettings& s, size_t n_classes) {
  const size_t nb = t.bands.size(), n = static_cast<size_t>(w.pixels());
  const std::vector<std::int16_t> block = composites.read_reflectance(composites.tile(t.name), w);
  std::vector<std::uint8_t> out(payload_bytes(w, n_classes, s.probabilities), 0);
  std::uint8_t* cls = out.data();
  std::uint8_t* conf = cls + n;
  std::uint8_t* prob = conf + n;
  std::fill(cls, cls + n, kNoClass);
  // Pixels with data, as series [pixel][month][band] (the composite stores [month][band][pixel]).
  std::vector<std::uint32_t> valid;
  valid.reserve(n);
  for (size_t p = 0; p < n; ++p) {
    bool ok = true;
    for (size_t k = 0; k < 12 * nb && ok; k += nb) ok = block[k * n + p] != kNoData;
    if (ok) valid.push_back(static_cast<std::uint32_t>(p));
  }
  const size_t batch = static_cast<size_t>(s.batch_size);
  std::vector<std::int16_t> series(batch * 12 * nb);
  const int64_t nf = features.n_features();
  auto input = torch::empty({static_cast<int64_t>(batch), 12, nf});
  for (size_t at = 0; at < valid.size(); at += batch) {
    const size_t m = std::min(batch, valid.size() - at);
    for (size_t i = 0; i < m; ++i) {
      const size_t p = valid[at + i];
      for (size_t k = 0; k < 12 * nb; ++k) series[i * 12 * nb + k] = block[k * n + p];
    }
    features.apply(series.data(), m, input.data_ptr<float>());
    torch::InferenceMode guard;
    auto probs = torch::exp(model->infer(input.narrow(0, 0, static_cast<int64_t>(m)))).contiguous();
    auto top = probs.max(1);
    auto top_p = std::get<0>(top).contiguous();
    auto top_k = std::get<1>(top).contiguous();
    const float* pp = top_p.data_ptr<float>();
    const int64_t* kk = top_k.data_ptr<int64_t>();
    const float* all = probs.data_ptr<float>();
    for (size_t i = 0; i < m; ++i) {
      const size_t p = valid[at + i];
      cls[p] = static_cast<std::uint8_t>(kk[i]);
      conf[p] = static_cast<std::uint8_t>(std::lround(pp[i] * 100.f));
      if (s.probabilities)
        for (size_t c = 0; c < n_classes; ++c)
          prob[c * n + p] = static_cast<std::uint8_t>(std::lround(all[i * n_classes + c] * 100.f));
    }
  }
  return out;
}

std::vector<std::array<std::uint8_t, 3>> class_colours(const std::vector<std::string>& names) {
  std::vector<std::array<std::uint8_t, 3>> out;
  for (size_t i = 0; i < names.size(); ++i) {
    int id = crop_class_id(names[i]);
    if (id >= 0) {
      auto& c = crop_class(id);
      out.push_back({c.r, c.g, c.b});
    } else {  // a class outside TimeSen2Crop's: a distinct grey level
      auto v = static_cast<std::uint8_t>(60 + (i * 37) % 160);
      out.push_back({v, v, v});
    }
  }
  return out;
}

// Collective from start to end; noexcept for the same reason as the composite assembly (see main).
void write_map(const std::vector<TileInput>& tiles, const ClassifySettings& s, const nn::ModelSpec& spec,
               const std::string& fingerprint, const std::string& composite_inputs,
               const parallel::MpiContext& mpi) noexcept(true) {
  const size_t nc = spec.class_names.size();
  const hsize_t bs = static_cast<hsize_t>(s.block_size);
  h5::File file = h5::File::create(s.output + ".partial.h5", mpi.world());
  file.set_attr("format", std::string(kMapFormat));
  file.set_attr("format_version", kMapFormatVersion);
  file.set_attr("s2crop_version", std::string(kVersion));
  file.set_attr("created", parallel::broadcast_string(mpi.world(), log::utc_timestamp()));
  file.set_attr("config", s.config_text);
  file.set_attr("inputs", std::vector<std::string>{s.composites, s.model, composite_inputs});
  file.set_attr("model", s.model);
  file.set_attr("class_names", spec.class_names);
  std::vector<double> colours;
  for (auto& c : class_colours(spec.class_names)) colours.insert(colours.end(), c.begin(), c.end());
  file.set_attr("class_colours", colours);
  file.set_attr("run_fingerprint", fingerprint);
  {
    h5::Node group = file.create_group("tiles");
    for (auto& t : tiles) {
      h5::Node g = group.create_group(t.name);
      auto [x_ds, y_ds] = pipeline::write_tile_georeference(g, t.grid);
      g.set_attr("year", t.year);
      g.set_attr("season_start", t.season_start);
      const hsize_t H = static_cast<hsize_t>(t.grid.height), W = static_cast<hsize_t>(t.grid.width);
      auto cls = g.create_dataset<std::uint8_t>("class", {H, W}, {std::min(bs, H), std::min(bs, W)}, s.deflate,
                                                kNoClass);
      cls.set_attr("nodata", static_cast<double>(kNoClass));
      cls.set_attr("long_name", std::string("crop class, index into the file's class_names"));
      auto conf = g.create_dataset<std::uint8_t>("confidence", {H, W}, {std::min(bs, H), std::min(bs, W)}, s.deflate,
                                                 std::uint8_t{0});
      conf.set_attr("scale_factor", 0.01);
      conf.set_attr("long_name", std::string("probability of the mapped class x 100"));
      h5::Dataset prob;
      if (s.probabilities) {
        prob = g.create_dataset<std::uint8_t>("probability", {nc, H, W}, {1, std::min(bs, H), std::min(bs, W)},
                                              s.deflate, std::uint8_t{0});
        prob.set_attr("scale_factor", 0.01);
      }
      cls.attach_scale(y_ds, 0);
      cls.attach_scale(x_ds, 1);
      conf.attach_scale(y_ds, 0);
      conf.attach_scale(x_ds, 1);
      if (s.probabilities) {
        auto class_ds = g.create_string_dataset("class_name", spec.class_names);
        class_ds.make_scale("class");
        prob.attach_scale(class_ds, 0);
        prob.attach_scale(y_ds, 1);
        prob.attach_scale(x_ds, 2);
      }
      // Collective writes: every rank calls once per round, ranks without a block select nothing.
      const size_t ranks = static_cast<size_t>(mpi.size());
      const size_t rounds = (t.blocks.size() + ranks - 1) / ranks;
      for (size_t round = 0; round < rounds; ++round) {
        size_t b = round * ranks + static_cast<size_t>(mpi.rank());
        if (b < t.blocks.size()) {
          const geo::Window& w = t.blocks[b];
          const hsize_t n = static_cast<hsize_t>(w.pixels());
          auto payload = pipeline::read_part_file(part_path(s, t, b), kPartMagic, payload_bytes(w, nc, s.probabilities));
          std::vector<hsize_t> off = {static_cast<hsize_t>(w.y0), static_cast<hsize_t>(w.x0)};
          std::vector<hsize_t> cnt = {static_cast<hsize_t>(w.height), static_cast<hsize_t>(w.width)};
          cls.write(off, cnt, payload.data(), true);
          conf.write(off, cnt, payload.data() + n, true);
          if (s.probabilities) prob.write({0, off[0], off[1]}, {nc, cnt[0], cnt[1]}, payload.data() + 2 * n, true);
        } else {
          cls.write<std::uint8_t>({}, {}, nullptr, true);
          conf.write<std::uint8_t>({}, {}, nullptr, true);
          if (s.probabilities) prob.write<std::uint8_t>({}, {}, nullptr, true);
        }
      }
    }
  }
  file.close();
}

// Optional exports, one tile per rank in turn: a COG with colour table and class names, a quicklook with legend.
void export_tile(const TileInput& t, const ClassifySettings& s, const nn::ModelSpec& spec);

}  // namespace

void run_classify(const ClassifySettings& s, const parallel::MpiContext& mpi) {
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  if (s.composites.empty()) throw ConfigError("classify: no composite file given (--composites FILE.h5)");
  if (s.model.empty()) throw ConfigError("classify: no model given (--model MODEL.h5)");
  if (s.output.empty()) throw ConfigError("classify: no output given (--output MAP.h5)");
  if (s.block_size < 16 || s.block_size > 4096) throw ConfigError("--block-size must be between 16 and 4096");
  if (s.batch_size < 1) throw ConfigError("--batch-size must be positive");

  // ---- plan: rank 0 validates inputs (one clear message), then every rank reads the small metadata
  std::vector<TileInput> tiles;
  nn::ModelSpec spec;
  std::string composite_fingerprint, fingerprint;
  bool already_complete = false;
  parallel::root_first(mpi.world(), [&] {
    tiles = read_tiles(s);
    spec = nn::read_model_spec(s.model);
    if (spec.kind != "lstm")
      throw InputError(s.model, "model kind '" + spec.kind + "' is an NDVI model, not a crop-type classifier: use "
                                "'s2crop ndvi predict'");
    for (auto& t : tiles) nn::FeatureMap check(spec, t.bands, s.composites + " tile " + t.name);
    {
      h5::File f = h5::File::open_read(s.composites, MPI_COMM_NULL);
      composite_fingerprint = f.has_attr("run_fingerprint") ? f.attr_string("run_fingerprint") : "";
    }
    std::ostringstream fp;
    fp << std::hex << fnv1a(composite_fingerprint.data(), composite_fingerprint.size()) << "-" << file_hash(s.model)
       << "-" << file_hash(s.composites) << std::dec << "-b" << s.block_size << "-n" << s.batch_size << "-p"
       << s.probabilities;
    for (auto& t : tiles) fp << "-" << t.name;
    fingerprint = fp.str();
    std::string parent = fs::path(s.output).parent_path().string();
    pipeline::ensure_dir(parent.empty() ? "." : parent);
    if (fs::exists(s.output)) {
      std::string previous;
      try {
        previous = h5::File::open_read(s.output, MPI_COMM_NULL).attr_string("run_fingerprint");
      } catch (const Error&) {
      }
      if (previous == fingerprint && !s.overwrite) {
        already_complete = true;
        return;
      }
      if (!s.overwrite)
        throw OutputError(s.output, "exists from a different run (other composites, model or options); pass "
                                    "--overwrite to replace it");
    }
    const std::string dir = s.output + ".parts", manifest = dir + "/run_fingerprint";
    if (fs::exists(manifest)) {
      std::ifstream in(manifest);
      std::string previous;
      in >> previous;
      if (previous != fingerprint) {
        if (!s.overwrite)
          throw OutputError(dir, "holds blocks of an interrupted run with other inputs or options; remove it or pass "
                                 "--overwrite");
        fs::remove_all(dir);
      }
    }
    for (auto& t : tiles) pipeline::ensure_dir(dir + "/" + t.name);
    std::ofstream out(manifest);
    out << fingerprint << "\n";
    if (!out) throw OutputError(manifest, "cannot write");
  });
  int complete = already_complete ? 1 : 0;
  MPI_Bcast(&complete, 1, MPI_INT, 0, mpi.world());
  if (complete) {
    log::root(s.output + " is already complete for this model and these composites: nothing to do");
    return;
  }
  fingerprint = parallel::broadcast_string(mpi.world(), fingerprint);
  if (!mpi.is_root()) {
    tiles = read_tiles(s);
    spec = nn::read_model_spec(s.model);
  }
  const size_t nc = spec.class_names.size();

  // ---- resume: parts already there are verified in parallel; damaged ones are recomputed
  std::vector<std::pair<size_t, size_t>> units, found;
  for (size_t ti = 0; ti < tiles.size(); ++ti)
    for (size_t b = 0; b < tiles[ti].blocks.size(); ++b) units.push_back({ti, b});
  std::vector<char> done(units.size(), 0);
  {
    std::vector<int> ok(units.size(), 0);
    for (size_t u = static_cast<size_t>(mpi.rank()); u < units.size(); u += static_cast<size_t>(mpi.size())) {
      auto [ti, b] = units[u];
      std::string path = part_path(s, tiles[ti], b);
      if (!fs::exists(path)) continue;
      try {
        pipeline::read_part_file(path, kPartMagic, payload_bytes(tiles[ti].blocks[b], nc, s.probabilities));
        ok[u] = 1;
      } catch (const InputError& e) {
        log::warn(std::string(e.what()) + " - recomputing that block");
        std::error_code ec;
        fs::remove(path, ec);
      }
    }
    MPI_Allreduce(MPI_IN_PLACE, ok.data(), static_cast<int>(ok.size()), MPI_INT, MPI_MAX, mpi.world());
    for (size_t u = 0; u < units.size(); ++u) done[u] = static_cast<char>(ok[u]);
  }
  std::vector<size_t> todo;
  std::vector<double> costs;
  for (size_t u = 0; u < units.size(); ++u)
    if (!done[u]) {
      todo.push_back(u);
      costs.push_back(static_cast<double>(tiles[units[u].first].blocks[units[u].second].pixels()));
    }
  const auto already = static_cast<std::int64_t>(units.size() - todo.size());
  const int threads = train::threads_per_rank(s.threads, mpi.node_size());
  train::use_threads(threads);
  if (mpi.is_root())
    log::info("classify: " + std::to_string(tiles.size()) + " tile(s), " + std::to_string(units.size()) +
              " blocks of " + std::to_string(s.block_size) + " px, " + std::to_string(already) + " already done, " +
              std::to_string(todo.size()) + " to classify on " + std::to_string(mpi.size()) + " rank(s) x " +
              std::to_string(threads) + " thread(s); model " + s.model + " (" + std::to_string(nc) + " classes, " +
              join(spec.bands) + (spec.ndvi ? ",NDVI" : "") + ")");

  if (mpi.is_root())
    if (auto blas_line = blas::describe(); !blas_line.empty()) log::info(blas_line);

  // ---- compute
  auto assignment = parallel::balance(costs, mpi.size());
  auto t_compute = clock::now();
  long long pixels = 0;
  {
    nn::ModelSpec loaded;
    auto model = nn::load_model(s.model, loaded);
    pipeline::CompositeFile composites(s.composites);
    pipeline::UnitProgress progress(mpi, "classify", static_cast<std::int64_t>(units.size()), already);
    for (size_t k : assignment[static_cast<size_t>(mpi.rank())]) {
      auto [ti, b] = units[todo[k]];
      const TileInput& t = tiles[ti];
      nn::FeatureMap features(loaded, t.bands, s.composites + " tile " + t.name);
      auto payload = classify_block(model, features, composites, t, t.blocks[b], s, nc);
      pipeline::write_part_file(part_path(s, t, b), kPartMagic, payload);
      pixels += t.blocks[b].pixels();
      progress.unit_done();
    }
    progress.finish(static_cast<std::int64_t>(units.size()));
  }
  MPI_Barrier(mpi.world());
  const long long total_pixels = parallel::sum(mpi.world(), pixels);
  const double compute_s = std::chrono::duration<double>(clock::now() - t_compute).count();
  if (mpi.is_root() && total_pixels > 0) {
    char line[200];
    std::snprintf(line, sizeof line, "classified %lld pixels in %.2f s (%.4g pixels/s, %.4g per rank)", total_pixels,
                  compute_s, static_cast<double>(total_pixels) / std::max(compute_s, 1e-9),
                  static_cast<double>(total_pixels) / std::max(compute_s, 1e-9) / mpi.size());
    log::info(line);
  }
  pipeline::log_peak_memory(mpi, "after classifying");

  // ---- assemble, export, move into place
  std::string composite_inputs;
  parallel::root_first(mpi.world(), [&] {
    h5::File f = h5::File::open_read(s.composites, MPI_COMM_NULL);
    if (f.has_attr("inputs"))
      for (auto& i : f.attr_strings("inputs")) composite_inputs += (composite_inputs.empty() ? "" : " ") + i;
  });
  composite_inputs = parallel::broadcast_string(mpi.world(), composite_inputs);
  write_map(tiles, s, spec, fingerprint, composite_inputs, mpi);
  if (!s.cog_dir.empty() || !s.quicklook_dir.empty()) {
    if (mpi.is_root()) {
      if (!s.cog_dir.empty()) pipeline::ensure_dir(s.cog_dir);
      if (!s.quicklook_dir.empty()) pipeline::ensure_dir(s.quicklook_dir);
    }
    MPI_Barrier(mpi.world());
    for (size_t ti = static_cast<size_t>(mpi.rank()); ti < tiles.size(); ti += static_cast<size_t>(mpi.size()))
      export_tile(tiles[ti], s, spec);
    MPI_Barrier(mpi.world());
  }
  parallel::root_first(mpi.world(), [&] {
    std::error_code ec;
    fs::rename(s.output + ".partial.h5", s.output, ec);
    if (ec) throw OutputError(s.output, "cannot move the finished map into place: " + ec.message());
    fs::remove_all(s.output + ".parts", ec);
    log::info("wrote " + s.output + " in " +
              log::format_duration(std::chrono::duration<double>(clock::now() - t0).count()));
  });
}

std::vector<std::uint8_t> predict_samples(const std::string& model_path, const samples::TrainingSet& set,
                                          std::vector<float>* confidence) {
  nn::ModelSpec spec;
  auto model = nn::load_model(model_path, spec);
  nn::FeatureMap features(spec, set.header.bands, "the sample set");
  const size_t n = set.size(), per = set.values_per_sample(), batch = 8192;
  std::vector<std::uint8_t> out(n);
  if (confidence) confidence->assign(n, 0.f);
  auto input = torch::empty({static_cast<int64_t>(batch), 12, features.n_features()});
  torch::InferenceMode guard;
  for (size_t at = 0; at < n; at += batch) {
    const size_t m = std::min(batch, n - at);
    features.apply(set.x.data() + at * per, m, input.data_ptr<float>());
    auto top = model->infer(input.narrow(0, 0, static_cast<int64_t>(m))).max(1);
    auto p = torch::exp(std::get<0>(top)).contiguous();
    auto k = std::get<1>(top).contiguous();
    for (size_t i = 0; i < m; ++i) {
      out[at + i] = static_cast<std::uint8_t>(k.data_ptr<int64_t>()[i]);
      if (confidence) (*confidence)[at + i] = p.data_ptr<float>()[i];
    }
  }
  return out;
}

namespace {

void export_tile(const TileInput& t, const ClassifySettings& s, const nn::ModelSpec& spec) {
  const size_t nc = spec.class_names.size();
  const size_t W = static_cast<size_t>(t.grid.width), H = static_cast<size_t>(t.grid.height);
  std::vector<std::uint8_t> classes(W * H, kNoClass);
  for (size_t b = 0; b < t.blocks.size(); ++b) {
    const geo::Window& w = t.blocks[b];
    auto payload = pipeline::read_part_file(part_path(s, t, b), kPartMagic, payload_bytes(w, nc, s.probabilities));
    for (int y = 0; y < w.height; ++y)
      std::copy_n(payload.data() + static_cast<size_t>(y) * static_cast<size_t>(w.width), w.width,
                  classes.data() + (static_cast<size_t>(w.y0 + y) * W + static_cast<size_t>(w.x0)));
  }
  auto colours = class_colours(spec.class_names);
  if (!s.cog_dir.empty())
    geo::write_class_cog(s.cog_dir + "/" + t.name + "_class.tif", t.grid, classes.data(), spec.class_names, colours,
                         kNoClass);
  if (!s.quicklook_dir.empty())
    viz::write_class_quicklook(s.quicklook_dir + "/" + t.name + "_class.png", classes.data(), static_cast<int>(W),
                               static_cast<int>(H), viz::ClassLegend{spec.class_names, colours}, kNoClass);
}

}  // namespace

}  // namespace s2crop::infer
