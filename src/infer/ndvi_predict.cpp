// `s2crop ndvi predict`: the NDVI LSTM over every pixel of composite tiles, on the tile-inference engine
// (tile_inference.hpp); training sets and `ndvi evaluate` are in ndvi.cpp.
#include "s2crop/infer/ndvi.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

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
#include "s2crop/viz/draw.hpp"
#include "s2crop/viz/quicklook.hpp"

namespace s2crop::infer {

using samples::kSeasonMonths;

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
      auto y = nn::InferencePlace::out(model_->infer(place_.in(x)));
      const float* yp = y.data_ptr<float>();  // [pixel][12][out]
      if (reference_) {
        // Every kPrecisionCheckStride-th pixel again in fp32: the largest NDVI difference, as written (x 1e-4).
        const auto ref = reference_->infer(x.slice(0, 0, x.size(0), kPrecisionCheckStride).contiguous()).contiguous();
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
