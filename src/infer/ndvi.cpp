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

}  // namespace

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
    auto y = nn::InferencePlace::out(model->infer(place.in(input)));
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

}  // namespace s2crop::infer
