#include "s2crop/infer/ndvi.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/composite/kernels.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/infer/tile_inference.hpp"
#include "s2crop/nn/device_torch.hpp"
#include "s2crop/nn/model_file.hpp"
#include "s2crop/nn/ndvi_lstm.hpp"
#include "s2crop/pipeline/composite_file.hpp"
#include "s2crop/pipeline/stage_support.hpp"
#include "s2crop/samples/ndvi_series.hpp"
#include "s2crop/train/trainer.hpp"
#include "s2crop/viz/draw.hpp"
#include "s2crop/viz/quicklook.hpp"

namespace s2crop::infer {

namespace {

using samples::ErrorStats;
using samples::kSeasonMonths;


std::string num(double v) { return json_number(v, 6); }

std::string stats_json(const ErrorStats& e) {
  return "{\"rmse\": " + num(e.rmse()) + ", \"mae\": " + num(e.mae()) + ", \"r2\": " + num(e.r2()) +
         ", \"n\": " + std::to_string(e.n) + "}";
}

// One group of targets (overall, a horizon, a month): every method's errors on the same targets.
struct Group {
  std::vector<ErrorStats> by_method;
};

void draw_line(viz::Image& im, int x0, int y0, int x1, int y1, viz::Colour c) {
  int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1, err = dx + dy;
  for (;;) {
    viz::fill_rect(im, x0, y0, 2, 2, c);
    if (x0 == x1 && y0 == y1) break;
    int e2 = 2 * err;
    if (e2 >= dy) err += dy, x0 += sx;
    if (e2 <= dx) err += dx, y0 += sy;
  }
}

// An NDVI model of the task and horizon asked for (empty / 0: any). Throws ConfigError naming the model file.
nn::ModelSpec read_ndvi_model_spec(const std::string& path, const std::string& task, int horizon) {
  nn::ModelSpec spec = nn::read_model_spec(path);
  if (!spec.is_ndvi_model())
    throw ConfigError(path + ": model kind '" + spec.kind + "' is a crop-type classifier, not an NDVI model");
  if (!task.empty() && task != spec.task)
    throw ConfigError(path + ": model was trained for task " + spec.task + ", not " + task);
  if (horizon > 0 && spec.task == "forecast" && horizon != spec.horizon)
    throw ConfigError(path + ": model was trained for a forecast horizon of " + std::to_string(spec.horizon) +
                      " month(s), not " + std::to_string(horizon) + ": train a model for that horizon");
  return spec;
}

}  // namespace

std::vector<float> predict_ndvi(const std::string& model_path, const samples::TrainingSet& set,
                                const std::vector<std::uint8_t>& visible, int* out_per_month,
                                const std::string& device_option) {
  nn::ModelSpec spec = nn::read_model_spec(model_path);
  if (!spec.is_ndvi_model())
    throw InputError(model_path, "model kind '" + spec.kind + "' is a crop-type classifier, not an NDVI model");
  nn::NdviLstm model(spec);
  nn::load_parameters(model_path, *model);
  model->eval();
  const nn::InferencePlace place(nn::choose_device(device_option, nn::torch_has_cuda(), nn::torch_gpus(), 0, 1),
                                 nn::Precision::Fp32);
  place.prepare(*model);
  const auto& bands = set.header.bands;
  std::vector<size_t> cov;
  for (auto& b : spec.bands) {
    auto it = std::find(bands.begin(), bands.end(), b);
    if (it == bands.end())
      throw ConfigError("the training set has bands " + join_items(bands, ",") + " but the NDVI model needs covariate " + b);
    cov.push_back(static_cast<size_t>(it - bands.begin()));
  }
  const size_t n = set.size(), nb = bands.size(), nc = cov.size();
  const auto ndvi = samples::ndvi_series(set.x, set.header, "training set");
  for (size_t i = 0; i < n; ++i) {
    bool any = false;
    for (int m = 0; m < kSeasonMonths; ++m) any = any || visible[i * kSeasonMonths + m];
    if (!any)
      throw InputError("sample " + std::to_string(i), "series has no clear observation in any month: there is nothing "
                                                      "to predict NDVI from (drop it or mark its observed months)");
  }
  const int out = spec.task == "forecast" ? spec.horizon : 1;
  if (out_per_month) *out_per_month = out;
  std::vector<float> result(n * kSeasonMonths * static_cast<size_t>(out));
  std::vector<std::int16_t> covariates;
  const int64_t nf = spec.n_features();
  torch::NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t at = 0; at < n; at += 4096) {
    const size_t b = std::min<size_t>(4096, n - at);
    covariates.assign(b * kSeasonMonths * nc, 0);
    for (size_t i = 0; i < b * kSeasonMonths; ++i)
      for (size_t c = 0; c < nc; ++c) covariates[i * nc + c] = set.x[(at * kSeasonMonths + i) * nb + cov[c]];
    auto input = torch::empty({static_cast<int64_t>(b), kSeasonMonths, nf});
    nn::ndvi_features(ndvi.data() + at * kSeasonMonths, visible.data() + at * kSeasonMonths,
                      nc ? covariates.data() : nullptr, static_cast<int>(nc), b, spec.season_start_month,
                      input.data_ptr<float>());
    auto y = nn::InferencePlace::out(model->forward(place.in(input)));
    std::copy(y.data_ptr<float>(), y.data_ptr<float>() + y.numel(), result.begin() + static_cast<long>(at * kSeasonMonths * out));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char line[200];
  std::snprintf(line, sizeof line, "predicted NDVI of %zu series in %.3f s (%.4g pixels/s on this rank, %d thread(s))", n,
                seconds, static_cast<double>(n) / std::max(seconds, 1e-9), torch::get_num_threads());
  log::info(line);
  return result;
}

void run_ndvi_evaluate(const NdviEvaluateSettings& s, const parallel::MpiContext& mpi) {
  if (s.model.empty()) throw ConfigError("ndvi evaluate: no model given (--model MODEL.h5)");
  if (s.samples.empty()) throw ConfigError("ndvi evaluate: no samples given (--samples SET.h5)");
  nn::resolve_device(s.device, mpi, "ndvi evaluate");  // a device a rank cannot use stops every rank here
  if (s.output_json.empty()) throw ConfigError("ndvi evaluate: no output given (--output METRICS.json)");
  std::string error;
  if (mpi.is_root()) {
    try {
      train::use_threads(train::threads_per_rank(s.threads, 1));
      const nn::ModelSpec spec = read_ndvi_model_spec(s.model, s.task, s.horizon);
      auto set = samples::read_training_set(s.samples);
      if (set.clear.empty()) set.clear.assign(set.size() * kSeasonMonths, 1);
      const auto& tiles = set.header.tiles;
      auto tile_ids = [&](const std::vector<std::string>& names) {
        std::vector<int> ids;
        for (auto& t : names) {
          auto it = std::find(tiles.begin(), tiles.end(), t);
          if (it == tiles.end()) throw ConfigError("tile " + t + " is not in " + s.samples + " (it has " + join_items(tiles, ",") + ")");
          ids.push_back(static_cast<int>(it - tiles.begin()));
        }
        return ids;
      };
      auto eval_ids = tile_ids(s.tiles), clim_ids = tile_ids(s.climatology_tiles);
      std::vector<std::uint32_t> eval, clim;
      for (std::uint32_t i = 0; i < set.size(); ++i) {
        const int t = set.tile[i];
        const bool is_eval = eval_ids.empty() || std::count(eval_ids.begin(), eval_ids.end(), t);
        if (is_eval) eval.push_back(i);
        if (clim_ids.empty() ? !is_eval || eval_ids.empty() : std::count(clim_ids.begin(), clim_ids.end(), t) > 0)
          clim.push_back(i);
      }
      const auto ndvi = samples::ndvi_series(set.x, set.header, s.samples);
      const auto climatology =
          samples::climatology(ndvi, set.clear, set.y, clim, static_cast<int>(set.header.class_names.size()));
      // The held-out series (with the months the methods may see).
      samples::TrainingSet held;
      held.header = set.header;
      std::vector<std::uint8_t> visible, hidden_all;
      for (auto i : eval) {
        const std::uint8_t* c = set.clear.data() + static_cast<size_t>(i) * kSeasonMonths;
        int observed = 0;
        for (int m = 0; m < kSeasonMonths; ++m) observed += c[m];
        if (observed == 0)
          throw InputError(s.samples, "sample " + std::to_string(i) + " (tile " + tiles[set.tile[i]] +
                                          ") has no clear observation in any month: there is nothing to predict its "
                                          "NDVI from (remove it, or mark its observed months in 'clear')");
        std::vector<std::uint8_t> hidden(kSeasonMonths, 0);
        if (spec.task == "gapfill") hidden = samples::gapfill_hidden(c, s.seed, i, 0, s.mask_fraction);
        for (int m = 0; m < kSeasonMonths; ++m) {
          visible.push_back(c[m] && !hidden[static_cast<size_t>(m)]);
          hidden_all.push_back(hidden[static_cast<size_t>(m)]);
        }
        held.add(set.x.data() + static_cast<size_t>(i) * set.values_per_sample(), set.y[i], set.tile[i]);
      }
      if (held.size() == 0) throw InputError(s.samples, "no held-out series with a clear observation to evaluate on");
      int out = 1;
      const auto pred = predict_ndvi(s.model, held, visible, &out, s.device);
      const auto held_ndvi = samples::ndvi_series(held.x, held.header, s.samples);
      const std::vector<std::string> methods = spec.task == "forecast"
                                                   ? std::vector<std::string>{"model", "persistence", "climatology"}
                                                   : std::vector<std::string>{"model", "linear_interpolation",
                                                                              "persistence", "climatology"};
      const size_t nm = methods.size();
      Group overall{std::vector<ErrorStats>(nm)};
      std::vector<Group> per_horizon(static_cast<size_t>(out), Group{std::vector<ErrorStats>(nm)});
      std::vector<Group> per_month(kSeasonMonths, Group{std::vector<ErrorStats>(nm)});
      auto add = [&](Group& g, const std::vector<double>& p, double y) {
        for (size_t k = 0; k < nm; ++k) g.by_method[k].add(p[k], y);
      };
      for (size_t i = 0; i < held.size(); ++i) {
        const float* v = held_ndvi.data() + i * kSeasonMonths;
        const std::uint8_t* vis = visible.data() + i * kSeasonMonths;
        const int cls = held.y[i];
        if (spec.task == "forecast") {
          for (int t = spec.t_min; t <= spec.t_max; ++t) {
            const float last = samples::persistence(v, vis, t - 1);
            if (!std::isfinite(last)) continue;
            for (int k = 0; k < out && t + k < kSeasonMonths; ++k) {
              const int m = t + k;
              if (!vis[m]) continue;  // targets: observed months only
              std::vector<double> p{pred[(i * kSeasonMonths + static_cast<size_t>(t - 1)) * out + k], last,
                                    climatology.at(cls, m)};
              add(overall, p, v[m]);
              add(per_horizon[static_cast<size_t>(k)], p, v[m]);
              add(per_month[static_cast<size_t>(m)], p, v[m]);
            }
          }
        } else {
          for (int m = 0; m < kSeasonMonths; ++m) {
            if (!hidden_all[i * kSeasonMonths + m]) continue;
            std::vector<double> p{pred[i * kSeasonMonths + m], samples::linear_fill(v, vis, m),
                                  samples::persistence(v, vis, m), climatology.at(cls, m)};
            if (!std::isfinite(p[2])) p[2] = p[1];  // nothing visible before m: persistence holds the next value
            add(overall, p, v[m]);
            add(per_month[static_cast<size_t>(m)], p, v[m]);
          }
        }
      }
      if (overall.by_method[0].n == 0) throw InputError(s.samples, "the held-out series have no observed target month");
      auto group_json = [&](const Group& g) {
        std::string o = "{";
        for (size_t k = 0; k < nm; ++k) o += (k ? ", \"" : "\"") + methods[k] + "\": " + stats_json(g.by_method[k]);
        return o + "}";
      };
      std::ostringstream js;
      js << "{\n  \"model\": " << json_string(s.model) << ",\n  \"samples\": " << json_string(s.samples)
         << ",\n  \"task\": " << json_string(spec.task) << ",\n  \"horizon\": " << spec.horizon << ",\n  \"t_min\": " << spec.t_min << ",\n  \"t_max\": " << spec.t_max
         << ",\n  \"tiles\": " << json_string(join_items(s.tiles, ",")) << ",\n  \"series\": " << held.size()
         << ",\n  \"methods\": [";
      for (size_t k = 0; k < nm; ++k) js << (k ? ", " : "") << "\"" << methods[k] << "\"";
      js << "],\n  \"overall\": " << group_json(overall) << ",\n  \"per_horizon\": [";
      if (spec.task == "forecast")
        for (int k = 0; k < out; ++k)
          js << (k ? ",\n    " : "\n    ") << "{\"horizon\": " << k + 1 << ", \"metrics\": " << group_json(per_horizon[static_cast<size_t>(k)]) << "}";
      js << "],\n  \"per_month\": [";
      bool first = true;
      for (int m = 0; m < kSeasonMonths; ++m) {
        if (per_month[static_cast<size_t>(m)].by_method[0].n == 0) continue;
        js << (first ? "\n    " : ",\n    ") << "{\"month\": \"" << held.header.months[static_cast<size_t>(m)]
           << "\", \"metrics\": " << group_json(per_month[static_cast<size_t>(m)]) << "}";
        first = false;
      }
      js << "]\n}\n";
      write_text_atomically(s.output_json, js.str());
      std::ostringstream line;
      line << "ndvi evaluate (" << spec.task << ", " << held.size() << " series, " << overall.by_method[0].n
           << " targets) RMSE:";
      for (size_t k = 0; k < nm; ++k) line << " " << methods[k] << " " << num(overall.by_method[k].rmse());
      log::info(line.str());

      // ---- plot: observed NDVI (dots, filled where clear) and the model's series for a few pixels
      if (!s.plot_png.empty()) {
        const int panels = std::max(1, std::min<int>(s.plot_samples, static_cast<int>(held.size())));
        const int pw = 520, ph = 200, margin = 30;
        viz::Image im(pw, panels * ph + 24);
        viz::fill_rect(im, 0, 0, im.width, im.height, {255, 255, 255});
        viz::draw_text(im, 6, 6, "NDVI " + spec.task + ": observed (black; hollow: not clear), model (red" +
                                     std::string(spec.task == "gapfill" ? "), hidden (blue)" : ", lead 1)"),
                       {0, 0, 0});
        for (int p = 0; p < panels; ++p) {
          const size_t i = static_cast<size_t>(p) * held.size() / static_cast<size_t>(panels);
          const int y0 = 24 + p * ph;
          viz::draw_rect_outline(im, margin, y0 + 10, pw - margin - 10, ph - 40, {120, 120, 120});
          auto px = [&](int m) { return margin + 10 + m * (pw - margin - 40) / (kSeasonMonths - 1); };
          auto py = [&](double v) {
            v = std::clamp(v, -0.2, 1.0);
            return y0 + 10 + static_cast<int>((1.0 - (v + 0.2) / 1.2) * (ph - 41));
          };
          viz::draw_text(im, 2, py(1.0), "1", {0, 0, 0});
          viz::draw_text(im, 2, py(0.0) - 3, "0", {0, 0, 0});
          for (int m = 0; m < kSeasonMonths; ++m)
            viz::draw_text(im, px(m) - 8, y0 + ph - 26, held.header.months[static_cast<size_t>(m)], {60, 60, 60});
          const float* v = held_ndvi.data() + i * kSeasonMonths;
          int prev_x = -1, prev_y = -1;
          for (int m = 0; m < kSeasonMonths; ++m) {
            double pv;
            if (spec.task == "forecast") {
              if (m < 1) continue;
              pv = pred[(i * kSeasonMonths + static_cast<size_t>(m - 1)) * out];  // lead 1 from months 1..m
            } else {
              pv = pred[i * kSeasonMonths + m];
            }
            if (prev_x >= 0) draw_line(im, prev_x, prev_y, px(m), py(pv), {220, 30, 30});
            prev_x = px(m), prev_y = py(pv);
          }
          for (int m = 0; m < kSeasonMonths; ++m) {
            const size_t k = i * kSeasonMonths + m;
            const bool vis = visible[k], hid = hidden_all[k];
            viz::Colour c = hid ? viz::Colour{30, 60, 220} : viz::Colour{0, 0, 0};
            if (vis || hid)
              viz::fill_rect(im, px(m) - 3, py(v[m]) - 3, 7, 7, c);
            else
              viz::draw_rect_outline(im, px(m) - 3, py(v[m]) - 3, 7, 7, c);
          }
        }
        viz::write_png(s.plot_png, im);
      }
    } catch (const ConfigError& e) {
      error = std::string("ConfigError:") + e.what();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  error = parallel::broadcast_string(mpi.world(), error);
  if (!error.empty()) {
    if (error.rfind("ConfigError:", 0) == 0) throw ConfigError(error.substr(12));
    throw AgreedError(error);
  }
}

// ---- ndvi predict: the NDVI LSTM over composite tiles

namespace {

constexpr std::int16_t kNoNdviValue = -32768;

std::int16_t ndvi_value(float ndvi) {
  return static_cast<std::int16_t>(std::lround(std::clamp(ndvi, -1.f, 1.f) * 10000.f));
}

// The model over one block. Payload: forecast [lead][px]; gapfill predicted [month][px] then filled [month][px].
class NdviBlocks : public BlockPredictor {
 public:
  NdviBlocks(const NdviPredictSettings& s, int origin, const nn::DeviceChoice& device)
      : s_(s), origin_(origin), place_(device, nn::parse_precision(s.precision)) {
    spec_ = nn::read_model_spec(s.model);
    model_ = nn::NdviLstm(spec_);
    nn::load_parameters(s.model, *model_);
    model_->eval();
    place_.prepare(*model_);
    if (!device.cuda && place_.dtype != torch::kFloat32) {
      // The fp32 twin of the model for the run's check of its reduced precision (finish()).
      reference_ = nn::NdviLstm(spec_);
      nn::load_parameters(s.model, *reference_);
      reference_->eval();
    }
    out_ = spec_.task == "forecast" ? spec_.horizon : 1;
    batch_ = static_cast<size_t>(s.batch_size);
    // On a GPU, per pixel: every step's gates and hidden states of each layer and direction.
    batch_ = std::max(batch_, place_.batch_that_fits(static_cast<std::size_t>(
                                  kSeasonMonths * (spec_.n_features() + 6 * spec_.hidden) * spec_.layers * 2) * 4 * 2));
  }
  BlockInput read(const pipeline::CompositeFile& composites, const pipeline::CompositeTile& tile,
                  const geo::Window& w) override {
    BlockInput in;
    in.reflectance = composites.read_reflectance(tile, w);
    in.clear_count = composites.read_clear_count(tile, w);
    return in;
  }
  void predict(const pipeline::CompositeFile&, const pipeline::CompositeTile& tile, const geo::Window& w,
               BlockInput input, std::uint8_t* payload) override {
    const size_t n = static_cast<size_t>(w.pixels()), nb = tile.bands.size(), ncov = spec_.bands.size();
    const auto band = [&](const std::string& name) {
      return static_cast<size_t>(std::find(tile.bands.begin(), tile.bands.end(), name) - tile.bands.begin());
    };
    const size_t red = band("B04"), nir = band(spec_.ndvi_nir);
    std::vector<size_t> cov;
    for (auto& b : spec_.bands) cov.push_back(band(b));
    const auto& block = input.reflectance;
    const auto& clear = input.clear_count;
    const bool forecast = spec_.task == "forecast";
    auto* out = reinterpret_cast<std::int16_t*>(payload);
    const size_t planes = forecast ? static_cast<size_t>(spec_.horizon) : 2 * kSeasonMonths;
    std::fill(out, out + planes * n, kNoNdviValue);
    // A pixel is predicted where the model sees at least one observed month (forecast: up to the origin).
    const int seen_months = forecast ? origin_ : kSeasonMonths;
    std::vector<std::uint32_t> pixels;
    std::vector<float> ndvi(n * kSeasonMonths);
    std::vector<std::uint8_t> visible(n * kSeasonMonths);
    for (size_t p = 0; p < n; ++p) {
      bool any = false;
      for (int m = 0; m < kSeasonMonths; ++m) {
        const std::int16_t r = block[(static_cast<size_t>(m) * nb + red) * n + p];
        const std::int16_t q = block[(static_cast<size_t>(m) * nb + nir) * n + p];
        const bool seen = clear[static_cast<size_t>(m) * n + p] > 0 && r != composite::kNoData && q != composite::kNoData;
        visible[p * kSeasonMonths + static_cast<size_t>(m)] = seen;
        ndvi[p * kSeasonMonths + static_cast<size_t>(m)] = seen ? samples::ndvi_of(r, q) : 0.f;
        any = any || (seen && m < seen_months);
      }
      if (any) pixels.push_back(static_cast<std::uint32_t>(p));
    }
    const size_t batch = std::min(batch_, std::max<size_t>(pixels.size(), 1));
    const int64_t nf = spec_.n_features();
    std::vector<float> b_ndvi(batch * kSeasonMonths);
    std::vector<std::uint8_t> b_visible(batch * kSeasonMonths);
    std::vector<std::int16_t> b_cov(batch * kSeasonMonths * std::max<size_t>(ncov, 1));
    auto features = torch::empty({static_cast<int64_t>(batch), kSeasonMonths, nf});
    for (size_t at = 0; at < pixels.size(); at += batch) {
      const size_t m = std::min(batch, pixels.size() - at);
      for (size_t i = 0; i < m; ++i) {
        const size_t p = pixels[at + i];
        std::copy_n(ndvi.data() + p * kSeasonMonths, kSeasonMonths, b_ndvi.data() + i * kSeasonMonths);
        std::copy_n(visible.data() + p * kSeasonMonths, kSeasonMonths, b_visible.data() + i * kSeasonMonths);
        for (int mo = 0; mo < kSeasonMonths; ++mo)
          for (size_t c = 0; c < ncov; ++c)
            b_cov[(i * kSeasonMonths + static_cast<size_t>(mo)) * ncov + c] =
                block[(static_cast<size_t>(mo) * nb + cov[c]) * n + p];
      }
      nn::ndvi_features(b_ndvi.data(), b_visible.data(), ncov ? b_cov.data() : nullptr, static_cast<int>(ncov), m,
                        spec_.season_start_month, features.data_ptr<float>());
      torch::InferenceMode guard;
      const auto x = features.narrow(0, 0, static_cast<int64_t>(m));
      auto y = nn::InferencePlace::out(model_->forward(place_.in(x)));
      const float* yp = y.data_ptr<float>();  // [pixel][12][out]
      if (reference_) {
        // Every kPrecisionCheckStride-th pixel again in fp32: the largest NDVI difference, as written (x 1e-4).
        const auto ref = reference_->forward(x.slice(0, 0, x.size(0), kPrecisionCheckStride).contiguous()).contiguous();
        const float* rp = ref.data_ptr<float>();
        const size_t per_pixel = kSeasonMonths * static_cast<size_t>(out_);
        for (int64_t j = 0; j < ref.size(0); ++j)
          for (size_t k = 0; k < per_pixel; ++k)
            worst_ = std::max(worst_, std::abs(ndvi_value(rp[static_cast<size_t>(j) * per_pixel + k]) -
                                               ndvi_value(yp[static_cast<size_t>(j * kPrecisionCheckStride) * per_pixel + k])));
        checked_ += ref.size(0);
      }
      for (size_t i = 0; i < m; ++i) {
        const size_t p = pixels[at + i];
        const float* row = yp + i * kSeasonMonths * static_cast<size_t>(out_);
        if (forecast) {
          for (int k = 0; k < spec_.horizon; ++k)
            out[static_cast<size_t>(k) * n + p] = ndvi_value(row[static_cast<size_t>(origin_ - 1) * static_cast<size_t>(out_) + static_cast<size_t>(k)]);
        } else {
          for (int mo = 0; mo < kSeasonMonths; ++mo) {
            const std::int16_t predicted = ndvi_value(row[mo]);
            const size_t at_month = static_cast<size_t>(mo) * n + p;
            out[at_month] = predicted;
            out[(kSeasonMonths + static_cast<size_t>(mo)) * n + p] =
                visible[p * kSeasonMonths + static_cast<size_t>(mo)]
                    ? ndvi_value(ndvi[p * kSeasonMonths + static_cast<size_t>(mo)])
                    : predicted;
          }
        }
      }
    }
  }

  void finish(const parallel::MpiContext& mpi) override {
    if (!reference_) return;
    int worst = worst_;
    MPI_Allreduce(MPI_IN_PLACE, &worst, 1, MPI_INT, MPI_MAX, mpi.world());
    const std::int64_t checked = parallel::sum(mpi.world(), checked_);
    if (!mpi.is_root() || checked == 0) return;
    char line[300];
    std::snprintf(line, sizeof line,
                  "ndvi predict: --precision %s is within %.4f NDVI of fp32 on %lld pixels recomputed in fp32 (every "
                  "%lldth pixel of every batch, all months)",
                  s_.precision.c_str(), worst / 10000.0, static_cast<long long>(checked),
                  static_cast<long long>(kPrecisionCheckStride));
    if (worst <= kWorstExpected)
      log::info(line);
    else
      log::warn(std::string(line) + ": more than the 0.02 s2crop measured; use --precision fp32 for this model");
  }

 private:
  const NdviPredictSettings& s_;
  int origin_;
  nn::InferencePlace place_;
  nn::ModelSpec spec_;
  nn::NdviLstm model_{nullptr};
  int out_ = 1;
  size_t batch_ = 0;
  static constexpr int kWorstExpected = 200;  // 0.02 NDVI, as written (x 1e-4)
  nn::NdviLstm reference_{nullptr};
  int worst_ = 0;
  std::int64_t checked_ = 0;
};

// An NDVI ramp per plane, side by side in rows of four, each labelled with its month; no data dark grey.
void write_ndvi_quicklook(const std::string& path, const pipeline::CompositeTile& tile, const LayerReader& read,
                          size_t layer, const std::vector<std::string>& labels) {
  const int W = tile.grid.width, H = tile.grid.height;
  std::vector<std::int16_t> values(static_cast<size_t>(W) * static_cast<size_t>(H));
  viz::write_panel_quicklook(
      path, W, H, labels, [&](size_t k) { read(layer, k, geo::Window{0, 0, W, H}, values.data()); },
      [&](int x, int y, std::uint8_t rgb[3]) {
        const std::int16_t v = values[static_cast<size_t>(y) * static_cast<size_t>(W) + static_cast<size_t>(x)];
        rgb[0] = rgb[1] = rgb[2] = 60;
        if (v != kNoNdviValue) viz::ndvi_colour(v / 10000.0, rgb);
      });
}

}  // namespace

void run_ndvi_predict(const NdviPredictSettings& s, const parallel::MpiContext& mpi) {
  if (s.composites.empty()) throw ConfigError("ndvi predict: no composite file given (--composites FILE.h5)");
  if (s.model.empty()) throw ConfigError("ndvi predict: no model given (--model MODEL.h5)");
  if (s.output.empty()) throw ConfigError("ndvi predict: no output given (--output NDVI.h5)");
  if (s.batch_size < 1) throw ConfigError("--batch-size must be positive");
  const nn::Precision precision = nn::parse_precision(s.precision);
  const nn::DeviceChoice device = nn::resolve_device(s.device, mpi, "ndvi predict", precision);
  nn::ModelSpec spec;
  int origin = 0;
  parallel::root_first(mpi.world(), [&] {
    spec = read_ndvi_model_spec(s.model, s.task, s.horizon);
    if (spec.task == "forecast") {
      origin = s.origin > 0 ? s.origin : std::min(spec.t_max, kSeasonMonths - spec.horizon);
      if (origin < 1 || origin + spec.horizon > kSeasonMonths)
        throw ConfigError("--origin " + std::to_string(origin) + ": with a horizon of " + std::to_string(spec.horizon) +
                          " month(s) the months observed must be 1-" + std::to_string(kSeasonMonths - spec.horizon));
      if (origin < spec.t_min || origin > spec.t_max)
        log::warn("--origin " + std::to_string(origin) + " is outside the months observed the model was trained "
                  "for (" + std::to_string(spec.t_min) + "-" + std::to_string(spec.t_max) + "): expect lower accuracy");
    } else if (s.origin > 0) {
      throw ConfigError("--origin is for forecast models; " + s.model + " is a gap-fill model");
    }
  });
  if (!mpi.is_root()) spec = read_ndvi_model_spec(s.model, s.task, s.horizon);
  MPI_Bcast(&origin, 1, MPI_INT, 0, mpi.world());
  const bool forecast = spec.task == "forecast";

  TileInferenceJob job;
  job.stage = "ndvi predict";
  job.format = "s2crop NDVI prediction";
  job.format_version = 1;
  job.part_magic = {'S', '2', 'N', 'D', 'V', 'I', 'P', '1'};
  job.composites = s.composites;
  job.model = s.model;
  job.output = s.output;
  job.tiles = s.tiles;
  job.block_size = s.block_size;
  job.threads = s.threads;
  job.overwrite = s.overwrite;
  job.deflate = s.deflate;
  job.config_text = s.config_text;
  job.options_fingerprint = "-n" + std::to_string(s.batch_size) + "-o" + std::to_string(origin) +
                            (precision == nn::Precision::Fp32 ? "" : "-" + s.precision);
  job.model_summary = forecast ? "forecast, months 1.." + std::to_string(origin) + " -> " + std::to_string(origin + 1) +
                                     ".." + std::to_string(origin + spec.horizon)
                               : "gap-fill";
  if (!spec.bands.empty()) job.model_summary += ", covariates " + join_items(spec.bands, ",");
  // The month labels are the same for every tile of a composite file (one season): taken from the first tile.
  std::vector<std::string> months;
  parallel::root_first(mpi.world(), [&] {
    pipeline::CompositeFile file(s.composites);
    if (file.tiles().empty()) throw InputError(s.composites, "has no tiles");
    months = file.tiles().front().months;
  });
  if (!mpi.is_root()) months = pipeline::CompositeFile(s.composites).tiles().front().months;
  auto ndvi_layer = [&](const std::string& name, std::vector<std::string> labels, const std::string& long_name) {
    OutputLayer l{name};
    l.int16 = true;
    l.depth = static_cast<std::int64_t>(labels.size());
    l.fill = kNoNdviValue;
    l.number_attrs = {{"scale_factor", 1e-4}, {"nodata", static_cast<double>(kNoNdviValue)}};
    l.text_attrs = {{"long_name", long_name}};
    l.depth_scale = forecast ? "forecast_month" : "month";
    l.depth_dimension = "month";
    l.depth_labels = std::move(labels);
    return l;
  };
  if (forecast) {
    std::vector<std::string> leads(months.begin() + origin, months.begin() + origin + spec.horizon);
    job.layers = {ndvi_layer("ndvi_forecast", leads, "NDVI forecast from months 1.." + std::to_string(origin) +
                                                         " of the season, x 10000")};
  } else {
    job.layers = {ndvi_layer("ndvi_predicted", months, "NDVI of each month predicted from the other observed months, x 10000"),
                  ndvi_layer("ndvi_filled", months, "observed NDVI where the month has a clear observation, else the "
                                                    "model's prediction, x 10000")};
  }
  job.check_tile = [&](const pipeline::CompositeTile& t) {
    const std::string where = s.composites + " tile " + t.name;
    if (std::find(t.bands.begin(), t.bands.end(), "B04") == t.bands.end() ||
        std::find(t.bands.begin(), t.bands.end(), spec.ndvi_nir) == t.bands.end())
      throw InputError(where, "lacks B04 or " + spec.ndvi_nir + ": no NDVI (it has " + join_items(t.bands, ",") + ")");
    for (auto& b : spec.bands)
      if (std::find(t.bands.begin(), t.bands.end(), b) == t.bands.end())
        throw InputError(where, "lacks band " + b + ", a covariate of the model " + s.model);
    nn::check_season(spec, s.model, t.season_start_month, where);
    if (t.months != months)
      throw InputError(where, "covers another season than the file's first tile; predict one season per run");
  };
  job.make_predictor = [&] { return std::make_unique<NdviBlocks>(s, origin, device); };
  job.file_attrs = [&](h5::File& file) {
    file.set_attr("task", spec.task);
    if (forecast) {
      file.set_attr("horizon", static_cast<std::int64_t>(spec.horizon));
      file.set_attr("origin", static_cast<std::int64_t>(origin));
    }
  };
  job.export_dirs = {s.cog_dir, s.quicklook_dir};
  if (!s.cog_dir.empty() || !s.quicklook_dir.empty()) {
    const size_t shown = forecast ? 0 : 1;  // the forecast, or the filled series
    job.export_tile = [&, shown](const pipeline::CompositeTile& t, const LayerReader& read) {
      const OutputLayer& layer = job.layers[shown];
      const std::string name = t.name + "_" + layer.name;
      if (!s.cog_dir.empty()) {
        std::vector<geo::RasterBandData> bands(layer.planes());
        for (size_t k = 0; k < bands.size(); ++k) {
          bands[k].description = layer.depth_labels[k];
          bands[k].read_block = [&read, shown, k](const geo::Window& w, void* out) { read(shown, k, w, out); };
        }
        geo::WriteOptions options;
        options.has_nodata = true;
        options.nodata = kNoNdviValue;
        options.read_block_size = s.block_size;
        options.metadata = {{"scale_factor", "0.0001"}, {"quantity", "NDVI x 10000"}, {"model", s.model}};
        geo::write_raster(s.cog_dir + "/" + name + ".tif", t.grid, geo::PixelType::Int16, bands, options);
      }
      if (!s.quicklook_dir.empty())
        write_ndvi_quicklook(s.quicklook_dir + "/" + name + ".png", t, read, shown, layer.depth_labels);
    };
  }
  run_tile_inference(job, mpi);
}

}  // namespace s2crop::infer
