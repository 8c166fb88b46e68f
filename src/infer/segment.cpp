#include "s2crop/common/text.hpp"
#include "s2crop/infer/segment.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/composite/kernels.hpp"
#include "s2crop/geo/class_raster.hpp"
#include "s2crop/geo/grid.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/infer/sliding_windows.hpp"
#include "s2crop/infer/tile_inference.hpp"
#include "s2crop/nn/device_torch.hpp"
#include "s2crop/nn/model_file.hpp"
#include "s2crop/nn/model_spec.hpp"
#include "s2crop/pipeline/composite_file.hpp"
#include "s2crop/pipeline/stage_support.hpp"
#include "s2crop/viz/class_map.hpp"
#include "s2crop/viz/draw.hpp"
#include "s2crop/viz/quicklook.hpp"

namespace s2crop::infer {

namespace {

constexpr const char* kSegmentFormat = "s2crop segmentation map";
constexpr std::int64_t kSegmentFormatVersion = 1;
constexpr std::int16_t kNoData = -32768;
constexpr std::uint8_t kNoValue = 255;  // no data in every uint8 layer but confidence


std::uint8_t percent(double p) {
  return static_cast<std::uint8_t>(std::clamp<long>(std::lround(p * 100.0), 0, 100));
}

// Planes ([month][band] of the composite) of the channels the model reads: a pixel is data where any is.
std::vector<size_t> used_planes(const nn::ModelSpec& spec, const std::vector<std::string>& bands) {
  std::vector<size_t> planes;
  for (int m : spec.unet.months)
    for (auto& b : spec.bands) {
      auto it = std::find(bands.begin(), bands.end(), b);
      if (it != bands.end())
        planes.push_back(static_cast<size_t>(m) * bands.size() + static_cast<size_t>(it - bands.begin()));
    }
  return planes;
}

// Least recently used entries (values with a last_used clock) out of `cache` until one more fits in `capacity`.
template <typename Cache>
void make_room(Cache& cache, size_t capacity) {
  while (!cache.empty() && cache.size() >= capacity) {
    auto oldest = cache.begin();
    for (auto e = cache.begin(); e != cache.end(); ++e)
      if (e->second.last_used < oldest->second.last_used) oldest = e;
    cache.erase(oldest);
  }
}

// Decoded reflectance of one chunk of the composite's grid: [plane][y][x] over `window`.
struct ReflectanceCell {
  geo::Window window;
  std::vector<std::int16_t> refl;
};

// What read() hands predict(): the chunks covering every window that intersects the block.
struct BlockCells {
  std::vector<std::shared_ptr<const ReflectanceCell>> cells;
  size_t planes = 0;

  // [plane][y][x] of `w` (inside the cells' union) into `out`.
  void cut(const geo::Window& w, std::int16_t* out) const {
    const size_t wpx = static_cast<size_t>(w.pixels());
    for (auto& cell : cells) {
      const geo::Window& c = cell->window;
      const int x0 = std::max(w.x0, c.x0), x1 = std::min(w.x0 + w.width, c.x0 + c.width);
      const int y0 = std::max(w.y0, c.y0), y1 = std::min(w.y0 + w.height, c.y0 + c.height);
      if (x0 >= x1 || y0 >= y1) continue;
      const size_t cpx = static_cast<size_t>(c.pixels());
      for (size_t plane = 0; plane < planes; ++plane)
        for (int y = y0; y < y1; ++y)
          std::copy_n(cell->refl.data() + plane * cpx + static_cast<size_t>(y - c.y0) * static_cast<size_t>(c.width) +
                          static_cast<size_t>(x0 - c.x0),
                      x1 - x0,
                      out + plane * wpx + static_cast<size_t>(y - w.y0) * static_cast<size_t>(w.width) +
                          static_cast<size_t>(x0 - w.x0));
    }
  }
};

// The U-Net over sliding windows. A block's pixels are blended from every global window intersecting it, each
// window run alone (batch of one) on its own reflectance, in global window order: the result cannot depend on the
// block partition. Window results are cached (per rank, least recently used out) since neighbouring blocks share
// windows; a cached result is the same bytes as a recomputed one.
//
// Reading: the windows of neighbouring blocks overlap, and so do the chunks they cover; read() (on the engine's
// reading thread, while the previous block computes) decodes each chunk of the composite's grid once and keeps the
// decoded chunks (least recently used out, kCellBytes) for the next blocks, which share a column of them.
class UNetBlocks : public BlockPredictor {
 public:
  UNetBlocks(const SegmentPredictSettings& s, const nn::DeviceChoice& device)
      : s_(s), place_(device, nn::parse_precision(s.precision)) {
    model_ = nn::load_unet(s.model, spec_);
    place_.prepare(*model_);
    outputs_ = static_cast<size_t>(spec_.unet.outputs);
    multiclass_ = spec_.unet.task == "multiclass";
  }

  // Runs on the reading thread: touches only the chunk cache (predict() never does).
  BlockInput read(const pipeline::CompositeFile& composites, const pipeline::CompositeTile& tile,
                  const geo::Window& block) override {
    const SlidingWindowGrid grid(tile.grid.width, tile.grid.height, s_.window, s_.overlap);
    int x0 = block.x0, y0 = block.y0, x1 = block.x0 + block.width, y1 = block.y0 + block.height;
    for (size_t k : grid.intersecting(block)) {
      const geo::Window w = grid.window(k);
      x0 = std::min(x0, w.x0), y0 = std::min(y0, w.y0);
      x1 = std::max(x1, w.x0 + w.width), y1 = std::max(y1, w.y0 + w.height);
    }
    const int edge = tile.block_size;
    auto cells = std::make_shared<BlockCells>();
    cells->planes = static_cast<size_t>(composite::kMonths) * tile.bands.size();
    for (int cy = y0 / edge; cy * edge < y1; ++cy)
      for (int cx = x0 / edge; cx * edge < x1; ++cx) cells->cells.push_back(cell(composites, tile, cx, cy));
    BlockInput in;
    in.prepared = std::move(cells);
    return in;
  }

  void predict(const pipeline::CompositeFile&, const pipeline::CompositeTile& tile, const geo::Window& block,
               BlockInput input, std::uint8_t* out) override {
    TileState& ts = tile_state(tile);
    const auto& cells = *std::static_pointer_cast<const BlockCells>(input.prepared);
    const size_t n = static_cast<size_t>(block.pixels()), O = outputs_;
    std::vector<double> num(O * n, 0.0), den(n, 0.0), row_weight(static_cast<size_t>(block.width));
    for (size_t k : ts.grid.intersecting(block)) {
      const WindowResult& r = window_result(tile, ts, k, cells);
      if (r.probs.empty()) continue;  // a window without data pixels covers none of the block's data pixels
      const geo::Window win = ts.grid.window(k);
      const std::vector<float>& wx = ts.grid.weights_x(k);
      const std::vector<float>& wy = ts.grid.weights_y(k);
      const size_t wpx = static_cast<size_t>(win.pixels());
      const int x0 = std::max(win.x0, block.x0), x1 = std::min(win.x0 + win.width, block.x0 + block.width);
      const int y0 = std::max(win.y0, block.y0), y1 = std::min(win.y0 + win.height, block.y0 + block.height);
      const size_t len = static_cast<size_t>(x1 - x0);
      for (int y = y0; y < y1; ++y) {
        const size_t q0 = static_cast<size_t>(y - win.y0) * static_cast<size_t>(win.width) +
                          static_cast<size_t>(x0 - win.x0);
        const size_t p0 = static_cast<size_t>(y - block.y0) * static_cast<size_t>(block.width) +
                          static_cast<size_t>(x0 - block.x0);
        blend_window_row(len, O, wy[static_cast<size_t>(y - win.y0)], wx.data() + (x0 - win.x0), r.valid.data() + q0,
                         r.probs.data() + q0, wpx, num.data() + p0, n, den.data() + p0, row_weight.data());
      }
    }
    // den is a sum of positive weights where any window had data, 0 where none had.
    if (multiclass_) {
      std::uint8_t* cls = out;
      std::uint8_t* conf = cls + n;
      std::uint8_t* prob = conf + n;
      std::vector<double> best(n);
      std::vector<std::uint8_t> top(n);
      blended_argmax(n, O, num.data(), den.data(), best.data(), top.data());
      for (size_t p = 0; p < n; ++p) {
        if (den[p] == 0.0) {
          cls[p] = kNoValue;
          conf[p] = 0;
          continue;
        }
        cls[p] = top[p];
        conf[p] = percent(best[p]);
      }
      if (s_.probabilities)
        for (size_t c = 0; c < O; ++c)
          for (size_t p = 0; p < n; ++p) prob[c * n + p] = den[p] == 0.0 ? kNoValue : percent(num[c * n + p] / den[p]);
    } else {
      std::uint8_t* prob = out;
      std::uint8_t* label = out + O * n;
      for (size_t c = 0; c < O; ++c)
        for (size_t p = 0; p < n; ++p) {
          if (den[p] == 0.0) {
            prob[c * n + p] = label[c * n + p] = kNoValue;
            continue;
          }
          const double v = num[c * n + p] / den[p];
          prob[c * n + p] = percent(v);
          label[c * n + p] = v >= s_.threshold ? 1 : 0;
        }
    }
  }

 private:
  struct WindowResult {
    std::vector<float> probs;          // [output][window pixel]; empty when the window has no data pixel
    std::vector<std::uint8_t> valid;   // [window pixel]: any channel the model uses holds data
    std::uint64_t last_used = 0;
  };
  struct TileState {
    SlidingWindowGrid grid;
    nn::ImageInputMap input;
    std::vector<size_t> planes;
  };
  struct CachedCell {
    std::shared_ptr<const ReflectanceCell> cell;
    std::uint64_t last_used = 0;
  };

  TileState& tile_state(const pipeline::CompositeTile& tile) {
    auto it = tiles_.find(tile.name);
    if (it == tiles_.end()) {
      auto state = std::make_unique<TileState>(TileState{
          SlidingWindowGrid(tile.grid.width, tile.grid.height, s_.window, s_.overlap),
          nn::ImageInputMap(spec_, tile.bands, s_.composites + " tile " + tile.name), used_planes(spec_, tile.bands)});
      it = tiles_.emplace(tile.name, std::move(state)).first;
    }
    return *it->second;
  }

  // Chunk (cx, cy) of the tile's composite grid, decoded once while the cache keeps it; at least the 3 x 3 chunks
  // a block's windows can cover stay, so that the next block finds the column it shares.
  std::shared_ptr<const ReflectanceCell> cell(const pipeline::CompositeFile& composites,
                                              const pipeline::CompositeTile& tile, int cx, int cy) {
    const auto key = std::make_tuple(tile.name, cx, cy);
    auto it = cells_.find(key);
    if (it != cells_.end()) {
      it->second.last_used = ++cell_clock_;
      return it->second.cell;
    }
    const int edge = tile.block_size;
    auto c = std::make_shared<ReflectanceCell>();
    c->window = geo::Window{cx * edge, cy * edge, std::min(edge, tile.grid.width - cx * edge),
                            std::min(edge, tile.grid.height - cy * edge)};
    c->refl = composites.read_reflectance(tile, c->window);
    const size_t bytes = c->refl.size() * sizeof(std::int16_t);
    make_room(cells_, std::max<size_t>(9, kCellBytes / std::max<size_t>(bytes, 1)));
    cells_.emplace(key, CachedCell{c, ++cell_clock_});
    return c;
  }

  // The window's result from the cache, or computed from the block's decoded chunks (which cover every window
  // intersecting the block).
  const WindowResult& window_result(const pipeline::CompositeTile& tile, TileState& ts, size_t k,
                                    const BlockCells& cells) {
    const auto key = std::make_pair(tile.name, k);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      it->second.last_used = ++clock_;
      return it->second;
    }
    const geo::Window win = ts.grid.window(k);
    const size_t wpx = static_cast<size_t>(win.pixels());
    WindowResult r;
    std::vector<std::int16_t> refl(cells.planes * wpx);  // [month][band][pixel] of the window
    cells.cut(win, refl.data());
    r.valid.assign(wpx, 0);
    for (size_t plane : ts.planes) {
      const std::int16_t* v = refl.data() + plane * wpx;
      for (size_t q = 0; q < wpx; ++q) r.valid[q] |= static_cast<std::uint8_t>(v[q] != kNoData);
    }
    if (std::find(r.valid.begin(), r.valid.end(), 1) != r.valid.end()) {
      auto x = torch::empty({1, ts.input.channels(), win.height, win.width});
      ts.input.apply(refl.data(), wpx, x.data_ptr<float>());
      torch::InferenceMode guard;
      auto p = nn::InferencePlace::out(model_->probabilities(place_.in(x)));  // [1][outputs][h][w]
      r.probs.assign(p.data_ptr<float>(), p.data_ptr<float>() + outputs_ * wpx);
      // No-data pixels out of the blending (blend_window_row adds their weight 0 times their probability).
      for (size_t c = 0; c < outputs_; ++c)
        for (size_t q = 0; q < wpx; ++q)
          if (!r.valid[q]) r.probs[c * wpx + q] = 0.f;
    }
    const size_t bytes = wpx * (outputs_ * sizeof(float) + 1);
    make_room(cache_, std::max<size_t>(8, kCacheBytes / std::max<size_t>(bytes, 1)));
    r.last_used = ++clock_;
    return cache_.emplace(key, std::move(r)).first->second;
  }

  static constexpr size_t kCacheBytes = size_t{256} << 20;
  static constexpr size_t kCellBytes = size_t{384} << 20;
  const SegmentPredictSettings& s_;
  nn::InferencePlace place_;
  nn::ModelSpec spec_;
  nn::UNet model_{nullptr};
  size_t outputs_ = 0;
  bool multiclass_ = true;
  std::map<std::string, std::unique_ptr<TileState>> tiles_;
  std::map<std::pair<std::string, size_t>, WindowResult> cache_;
  std::uint64_t clock_ = 0;
  std::map<std::tuple<std::string, int, int>, CachedCell> cells_;  // the reading thread's alone
  std::uint64_t cell_clock_ = 0;
};

// A grey ramp (probability 0 black .. 100 white) per label, side by side in rows of four, each labelled; no data
// in a muted blue so it cannot be read as probability 0.
void write_label_quicklook(const std::string& path, const pipeline::CompositeTile& tile, const LayerReader& read,
                           size_t layer, const std::vector<std::string>& labels) {
  const int W = tile.grid.width, H = tile.grid.height;
  std::vector<std::uint8_t> values(static_cast<size_t>(W) * static_cast<size_t>(H));
  viz::write_panel_quicklook(
      path, W, H, labels, [&](size_t k) { read(layer, k, geo::Window{0, 0, W, H}, values.data()); },
      [&](int x, int y, std::uint8_t rgb[3]) {
        const std::uint8_t v = values[static_cast<size_t>(y) * static_cast<size_t>(W) + static_cast<size_t>(x)];
        if (v == kNoValue) {
          rgb[0] = 70, rgb[1] = 90, rgb[2] = 140;
        } else {
          rgb[0] = rgb[1] = rgb[2] = static_cast<std::uint8_t>(std::lround(std::min<int>(v, 100) * 2.55));
        }
      });
}

}  // namespace

void run_segment_predict(const SegmentPredictSettings& s, const parallel::MpiContext& mpi) {
  if (s.composites.empty()) throw ConfigError("segment predict: no composite file given (--composites FILE.h5)");
  if (s.model.empty()) throw ConfigError("segment predict: no model given (--model UNET.h5)");
  if (s.output.empty()) throw ConfigError("segment predict: no output given (--output MAP.h5)");
  if (s.window < 1) throw ConfigError("--window must be at least 1 pixel");
  if (s.overlap < 0 || s.overlap >= s.window)
    throw ConfigError("--overlap must be at least 0 and smaller than --window (" + std::to_string(s.window) + ")");
  if (!(s.threshold >= 0 && s.threshold <= 1)) throw ConfigError("--threshold must be in [0, 1]");
  const nn::Precision precision = nn::parse_precision(s.precision);
  const nn::DeviceChoice device = nn::resolve_device(s.device, mpi, "segment predict", precision);
  nn::ModelSpec spec;
  auto read_spec = [&] { spec = nn::read_segmentation_model_spec(s.model); };
  parallel::root_first(mpi.world(), read_spec);
  if (!mpi.is_root()) read_spec();
  const bool multiclass = spec.unet.task == "multiclass";
  const size_t no = spec.class_names.size();
  const viz::ClassLegend legend = viz::class_legend(spec.class_names);
  if (mpi.is_root() && s.window % spec.unet.multiple() != 0)
    log::warn("--window " + std::to_string(s.window) + " is not a multiple of " +
              std::to_string(spec.unet.multiple()) + " (2^depth of the U-Net): every window is padded internally");

  TileInferenceJob job;
  job.stage = "segment predict";
  job.format = kSegmentFormat;
  job.format_version = kSegmentFormatVersion;
  job.part_magic = {'S', '2', 'C', 'S', 'E', 'G', 'P', '1'};
  job.composites = s.composites;
  job.model = s.model;
  job.output = s.output;
  job.tiles = s.tiles;
  job.block_size = s.block_size;
  job.threads = s.threads;
  job.overwrite = s.overwrite;
  job.deflate = s.deflate;
  job.config_text = s.config_text;
  char threshold[32];
  std::snprintf(threshold, sizeof threshold, "%.17g", s.threshold);
  job.options_fingerprint = "-w" + std::to_string(s.window) + "-o" + std::to_string(s.overlap) +
                            (multiclass ? "-p" + std::to_string(s.probabilities ? 1 : 0) : std::string("-t") + threshold) +
                            (precision == nn::Precision::Fp32 ? "" : "-" + s.precision);
  std::string months;
  for (int m : spec.unet.months) months += (months.empty() ? "" : ",") + std::to_string(m + 1);
  job.model_summary = spec.unet.task + " U-Net, " + std::to_string(no) + (multiclass ? " classes" : " labels") +
                      ", months " + months + " x " + join_items(spec.bands, ",") + "; windows of " + std::to_string(s.window) +
                      " px, overlap " + std::to_string(s.overlap);
  auto output_layer = [&](const std::string& name, const std::string& long_name) {
    OutputLayer l{name};
    l.depth = static_cast<std::int64_t>(no);
    l.fill = kNoValue;
    l.number_attrs = {{"nodata", static_cast<double>(kNoValue)}};
    l.text_attrs = {{"long_name", long_name}};
    l.depth_scale = "output_name";
    l.depth_dimension = "output";
    l.depth_labels = spec.class_names;
    return l;
  };
  if (multiclass) {
    OutputLayer cls{"class"};
    cls.fill = kNoValue;
    cls.number_attrs = {{"nodata", static_cast<double>(kNoValue)}};
    cls.text_attrs = {{"long_name", "class of the highest blended probability, index into the file's output_names"}};
    OutputLayer conf{"confidence"};
    conf.number_attrs = {{"scale_factor", 0.01}};
    conf.text_attrs = {{"long_name", "blended probability of the mapped class x 100"}};
    job.layers = {cls, conf};
    if (s.probabilities) {
      OutputLayer prob = output_layer("probability", "blended probability of each class x 100");
      prob.number_attrs.push_back({"scale_factor", 0.01});
      job.layers.push_back(prob);
    }
  } else {
    OutputLayer prob = output_layer("probability", "blended probability of each label x 100");
    prob.number_attrs.push_back({"scale_factor", 0.01});
    job.layers = {prob, output_layer("label", "1 where the label's probability >= the file's threshold, else 0")};
  }
  job.check_tile = [&](const pipeline::CompositeTile& t) {
    const std::string where = s.composites + " tile " + t.name;
    for (auto& b : spec.bands)
      if (std::find(t.bands.begin(), t.bands.end(), b) == t.bands.end())
        throw InputError(where, "lacks band " + b + ", an input of the model " + s.model + " (the tile has " +
                                    join_items(t.bands, ",") + ")");
    nn::ImageInputMap check(spec, t.bands, where);
    nn::check_season(spec, s.model, t.season_start_month, where);
    SlidingWindowGrid grid(t.grid.width, t.grid.height, s.window, s.overlap);
  };
  job.make_predictor = [&] { return std::make_unique<UNetBlocks>(s, device); };
  job.file_attrs = [&](h5::File& file) {
    file.set_attr("task", spec.unet.task);
    file.set_attr("output_names", spec.class_names);
    file.set_attr("window", static_cast<std::int64_t>(s.window));
    file.set_attr("overlap", static_cast<std::int64_t>(s.overlap));
    if (multiclass) {
      file.set_attr("class_names", spec.class_names);
      std::vector<double> flat;
      for (auto& c : legend.colours) flat.insert(flat.end(), c.begin(), c.end());
      file.set_attr("class_colours", flat);
    } else {
      file.set_attr("threshold", s.threshold);
    }
  };
  job.export_dirs = {s.cog_dir, s.quicklook_dir};
  if (!s.cog_dir.empty() || !s.quicklook_dir.empty()) {
    job.export_tile = [&](const pipeline::CompositeTile& t, const LayerReader& read) {
      const int W = t.grid.width, H = t.grid.height;
      if (multiclass) {
        std::vector<std::uint8_t> classes(static_cast<size_t>(W) * static_cast<size_t>(H), kNoValue);
        read(0, 0, geo::Window{0, 0, W, H}, classes.data());
        if (!s.cog_dir.empty())
          geo::write_class_cog(s.cog_dir + "/" + t.name + "_class.tif", t.grid, classes.data(), spec.class_names,
                               legend.colours, kNoValue);
        if (!s.quicklook_dir.empty())
          viz::write_class_quicklook(s.quicklook_dir + "/" + t.name + "_class.png", classes.data(), W, H, legend,
                                     kNoValue);
        return;
      }
      if (!s.cog_dir.empty()) {
        std::vector<geo::RasterBandData> bands(no);
        for (size_t k = 0; k < no; ++k) {
          bands[k].description = spec.class_names[k];
          bands[k].read_block = [&read, k](const geo::Window& w, void* out) { read(0, k, w, out); };
        }
        geo::WriteOptions options;
        options.has_nodata = true;
        options.nodata = kNoValue;
        options.read_block_size = s.block_size;
        options.metadata = {{"scale_factor", "0.01"}, {"quantity", "label probability x 100"}, {"model", s.model}};
        geo::write_raster(s.cog_dir + "/" + t.name + "_probability.tif", t.grid, geo::PixelType::UInt8, bands,
                          options);
      }
      if (!s.quicklook_dir.empty())
        write_label_quicklook(s.quicklook_dir + "/" + t.name + "_probability.png", t, read, 0, spec.class_names);
    };
  }
  run_tile_inference(job, mpi);
}

}  // namespace s2crop::infer
