#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "task.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/nn/ndvi_lstm.hpp"
#include "s2crop/samples/ndvi_series.hpp"

namespace s2crop::train {
namespace {

// ---- NDVI prediction (`s2crop ndvi train`): forecast or gap-fill, loss only on observed (clear) months
struct NdviTask : Task {
  const TrainSettings& s;
  nn::ModelSpec spec_;
  std::vector<std::uint8_t> clear;      // all samples [sample][12]
  std::vector<float> ndvi;              // shard [sample][12]
  std::vector<std::int16_t> covariates; // shard [sample][12][cov]
  std::vector<double> forecast_weight;  // all samples: (origin, lead) pairs with an observed target
  nn::NdviLstm model{nullptr};
  size_t shard_begin = 0;
  int n_cov = 0;
  static constexpr std::uint64_t kValidationStep = ~0ULL;

  NdviTask(const TrainSettings& settings, const samples::TrainingSet& labels, nn::ModelSpec spec, size_t shard_begin_,
           size_t shard_end)
      : s(settings), spec_(std::move(spec)), shard_begin(shard_begin_) {
    const size_t n_all = labels.size();
    {
      h5::File f = h5::File::open_read(s.samples, MPI_COMM_NULL);
      if (!f.exists("clear") && !s.assume_clear)
        throw ConfigError(s.samples + " has no per-month clear flags (dataset 'clear'): the NDVI loss may only use "
                          "observed months, and without them gap-filled values would count as observations. Extract "
                          "the samples again ('s2crop extract' writes the flags) or pass --assume-clear if every month "
                          "of every series was observed");
    }
    clear = samples::read_training_set_clear(s.samples, 0, n_all);
    auto x = samples::read_training_set_x(s.samples, shard_begin, shard_end);
    ndvi = samples::ndvi_series(x, labels.header, s.samples);
    const auto& bands = labels.header.bands;
    n_cov = static_cast<int>(spec_.bands.size());
    std::vector<size_t> cov_index;
    for (auto& b : spec_.bands) cov_index.push_back(static_cast<size_t>(std::find(bands.begin(), bands.end(), b) - bands.begin()));
    const size_t n = shard_end - shard_begin, nb = bands.size();
    covariates.resize(n * 12 * static_cast<size_t>(n_cov));
    for (size_t i = 0; i < n * 12; ++i)
      for (int c = 0; c < n_cov; ++c) covariates[i * n_cov + c] = x[i * nb + cov_index[static_cast<size_t>(c)]];
    spec_.mean.assign(static_cast<size_t>(spec_.n_features()), 0.f);
    spec_.stddev.assign(static_cast<size_t>(spec_.n_features()), 1.f);
    if (spec_.task == "forecast") {
      forecast_weight.assign(n_all, 0.0);
      for (size_t i = 0; i < n_all; ++i)
        for (int t = spec_.t_min; t <= spec_.t_max; ++t)
          for (int k = 0; k < spec_.horizon && t + k < 12; ++k) forecast_weight[i] += clear[i * 12 + static_cast<size_t>(t + k)];
    }
  }
  void build() override {
    torch::manual_seed(s.seed);
    model = nn::NdviLstm(spec_);
  }
  torch::nn::Module& module() override { return *model; }
  const nn::ModelSpec& spec() const override { return spec_; }
  std::vector<std::uint8_t> hidden(std::uint32_t i, std::uint64_t step) const {
    return samples::gapfill_hidden(clear.data() + static_cast<size_t>(i) * 12, s.seed, i, step, s.mask_fraction);
  }
  double weight(std::uint32_t i, std::int64_t step) const override {
    if (spec_.task == "forecast") return forecast_weight[i];
    double w = 0;
    for (auto h : hidden(i, static_cast<std::uint64_t>(step))) w += h;
    return w;
  }
  // Inputs, targets and loss mask of the batch: [b][12][out].
  void batch(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>& global, std::uint64_t step,
             torch::Tensor& input, torch::Tensor& target, torch::Tensor& mask) const {
    const int64_t b = static_cast<int64_t>(local_pos.size()), nf = spec_.n_features();
    const int64_t out = spec_.task == "forecast" ? spec_.horizon : 1;
    input = torch::empty({b, 12, nf});
    target = torch::zeros({b, 12, out});
    mask = torch::zeros({b, 12, out});
    std::vector<float> series(12);
    std::vector<std::uint8_t> visible(12);
    float* in = input.data_ptr<float>();
    float* tg = target.data_ptr<float>();
    float* mk = mask.data_ptr<float>();
    for (int64_t r = 0; r < b; ++r) {
      const size_t p = static_cast<size_t>(local_pos[static_cast<size_t>(r)]);
      const std::uint32_t g = global[static_cast<size_t>(r)];
      const float* v = ndvi.data() + p * 12;
      const std::uint8_t* c = clear.data() + static_cast<size_t>(g) * 12;
      if (spec_.task == "forecast") {
        for (int m = 0; m < 12; ++m) visible[static_cast<size_t>(m)] = c[m];
        for (int t = spec_.t_min; t <= spec_.t_max; ++t)
          for (int k = 0; k < out && t + k < 12; ++k) {
            const size_t at = (static_cast<size_t>(r) * 12 + static_cast<size_t>(t - 1)) * static_cast<size_t>(out) + k;
            tg[at] = v[t + k];
            mk[at] = c[t + k] ? 1.f : 0.f;
          }
      } else {
        auto h = hidden(g, step);
        for (int m = 0; m < 12; ++m) {
          visible[static_cast<size_t>(m)] = c[m] && !h[static_cast<size_t>(m)];
          tg[static_cast<size_t>(r) * 12 + m] = v[m];
          mk[static_cast<size_t>(r) * 12 + m] = h[static_cast<size_t>(m)] ? 1.f : 0.f;
        }
      }
      nn::ndvi_features(v, visible.data(), n_cov ? covariates.data() + p * 12 * n_cov : nullptr, n_cov, 1,
                        spec_.season_start_month, in + static_cast<size_t>(r) * 12 * static_cast<size_t>(nf));
    }
  }
  torch::Tensor loss(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>& global,
                     std::int64_t step, double batch_weight) override {
    torch::Tensor input, target, mask;
    batch(local_pos, global, static_cast<std::uint64_t>(step), input, target, mask);
    auto e = model->forward(nn::to_device(input, device)) - nn::to_device(target, device);
    return (e * e * nn::to_device(mask, device)).sum() / std::max(batch_weight, 1e-12);
  }
  std::vector<double> validate(const std::vector<std::int64_t>& local_pos,
                               const std::vector<std::uint32_t>& global) override {
    std::vector<double> sums(2, 0.0);  // squared error, count
    for (size_t at = 0; at < local_pos.size(); at += 4096) {
      const size_t end = std::min(local_pos.size(), at + 4096);
      std::vector<std::int64_t> lp(local_pos.begin() + static_cast<long>(at), local_pos.begin() + static_cast<long>(end));
      std::vector<std::uint32_t> gl(global.begin() + static_cast<long>(at), global.begin() + static_cast<long>(end));
      torch::Tensor input, target, mask;
      batch(lp, gl, kValidationStep, input, target, mask);
      mask = nn::to_device(mask, device);
      auto e = model->forward(nn::to_device(input, device)) - nn::to_device(target, device);
      sums[0] += (e * e * mask).sum().item<double>();
      sums[1] += mask.sum().item<double>();
    }
    return sums;
  }
  double score(const std::vector<double>& v) const override { return v[1] > 0 ? -std::sqrt(v[0] / v[1]) : 0.0; }
  std::string val_text(const std::vector<double>& v) const override {
    char line[120];
    std::snprintf(line, sizeof line, "val NDVI RMSE %.4f (%.0f months)", v[1] > 0 ? std::sqrt(v[0] / v[1]) : 0.0, v[1]);
    return line;
  }
  std::string score_name() const override { return "validation NDVI RMSE"; }
  double score_display(double score) const override { return -score; }
  std::string provenance_key() const override { return "best_val_score"; }
  std::string describe(int64_t n_params) const override {
    std::string what = spec_.task == "forecast"
                           ? "forecast " + std::to_string(spec_.horizon) + " month(s) from " + std::to_string(spec_.t_min) +
                                 "-" + std::to_string(spec_.t_max) + " observed months"
                           : "gap-fill (masked input, " + std::to_string(s.mask_fraction) + " of the observed months hidden)";
    return "model NDVI LSTM " + std::to_string(spec_.hidden) + " hidden x " + std::to_string(spec_.layers) + " layers, " +
           std::to_string(n_params) + " parameters, " + what;
  }
  std::string fingerprint_extra() const override {
    std::ostringstream o;
    o << " task=" << spec_.task << " horizon=" << spec_.horizon << " t=" << spec_.t_min << "-" << spec_.t_max
      << " mask=" << s.mask_fraction << " covariates=" << join_items(spec_.bands, ",");
    return o.str();
  }
};

}  // namespace

std::unique_ptr<Task> make_ndvi_task(const TrainSettings& settings, const samples::TrainingSet& labels,
                                     nn::ModelSpec spec, size_t shard_begin, size_t shard_end) {
  return std::make_unique<NdviTask>(settings, labels, std::move(spec), shard_begin, shard_end);
}

}  // namespace s2crop::train
