#include <algorithm>
#include <cmath>
#include <cstdio>

#include "augment.hpp"
#include "sampling.hpp"
#include "task.hpp"
#include "s2crop/nn/lstm_classifier.hpp"

namespace s2crop::train {
namespace {

std::vector<float> class_weights(const samples::TrainingSet& labels, const std::vector<std::uint32_t>& train,
                                 const std::string& mode, size_t n_classes) {
  std::vector<double> count(n_classes, 0.0);
  for (auto i : train) count[labels.y[i]] += 1.0;
  std::vector<float> w(n_classes, 1.f);
  if (mode == "none") return w;
  double total = 0.0, norm = 0.0;
  for (size_t c = 0; c < n_classes; ++c) {
    if (count[c] == 0) continue;
    w[c] = static_cast<float>(mode == "inverse" ? 1.0 / count[c] : 1.0 / std::sqrt(count[c]));
    total += count[c];
    norm += count[c] * w[c];
  }
  // Scaled so that the average weight of a training sample is 1: the learning rate keeps its meaning.
  for (auto& v : w) v = static_cast<float>(v * total / norm);
  return w;
}

struct Metrics {
  double loss = 0, oa = 0, macro_f1 = 0;
  std::int64_t n = 0;
};

Metrics metrics_from(const std::vector<double>& confusion, size_t nc, double loss_sum) {
  Metrics m;
  double total = 0, diag = 0, f1_sum = 0;
  int present = 0;
  for (size_t r = 0; r < nc; ++r)
    for (size_t c = 0; c < nc; ++c) total += confusion[r * nc + c];
  for (size_t k = 0; k < nc; ++k) {
    double tp = confusion[k * nc + k], pred = 0, ref = 0;
    for (size_t j = 0; j < nc; ++j) {
      pred += confusion[k * nc + j];  // rows: predicted
      ref += confusion[j * nc + k];   // columns: reference
    }
    diag += tp;
    if (ref > 0) {
      ++present;
      f1_sum += (pred + ref) > 0 ? 2 * tp / (pred + ref) : 0.0;
    }
  }
  m.n = static_cast<std::int64_t>(total);
  m.oa = total > 0 ? diag / total : 0;
  m.macro_f1 = present ? f1_sum / present : 0;
  m.loss = total > 0 ? loss_sum / total : 0;
  return m;
}

// ---- crop-type classification (the original `s2crop train`)
struct ClassifyTask : Task {
  const TrainSettings& s;
  const samples::TrainingSet& labels;
  nn::ModelSpec spec_;
  std::vector<float> weights;
  torch::Tensor features, labels_shard, weight_tensor;
  nn::LstmClassifier model{nullptr};
  size_t nc = 0, shard_begin = 0;
  SeriesAugmentation augmentation_;

  ClassifyTask(const TrainSettings& settings, const samples::TrainingSet& labels_, nn::ModelSpec spec,
               const Split& split, size_t shard_begin_, size_t shard_end, const parallel::MpiContext& mpi)
      : s(settings), labels(labels_), spec_(std::move(spec)), shard_begin(shard_begin_) {
    augmentation_.jitter = s.series.jitter;
    augmentation_.mask_months = s.series.mask_months;
    augmentation_.shift = s.series.shift;
    nc = spec_.class_names.size();
    weights = class_weights(labels, split.train, s.class_weights, nc);
    auto x = samples::read_training_set_x(s.samples, shard_begin, shard_end);
    nn::FeatureMap raw_features(spec_, labels.header.bands, s.samples);
    const int64_t nf = spec_.n_features(), months = spec_.months;
    features = torch::empty({static_cast<int64_t>(shard_end - shard_begin), months, nf});
    raw_features.apply(x.data(), shard_end - shard_begin, features.data_ptr<float>(), true);
    x = {};
    {
      // Normalisation statistics over the training samples of all shards.
      std::vector<double> acc = feature_sums(features.data_ptr<float>(), shard_begin, shard_end - shard_begin,
                                             split.train, static_cast<int>(months), static_cast<int>(nf));
      MPI_Allreduce(MPI_IN_PLACE, acc.data(), static_cast<int>(acc.size()), MPI_DOUBLE, MPI_SUM, mpi.world());
      set_normalisation(spec_, acc, static_cast<int>(nf));
      auto mean = torch::tensor(spec_.mean).view({1, 1, nf}), sd = torch::tensor(spec_.stddev).view({1, 1, nf});
      features.sub_(mean).div_(sd);
    }
    labels_shard = torch::from_blob(const_cast<std::uint8_t*>(labels.y.data()) + shard_begin,
                                    {static_cast<int64_t>(shard_end - shard_begin)}, torch::kUInt8)
                       .to(torch::kInt64);
    weight_tensor = torch::tensor(weights);
  }
  void build() override {
    torch::manual_seed(s.seed);  // the same initial weights everywhere; rank 0's are broadcast anyway
    model = nn::LstmClassifier(spec_);
  }
  torch::nn::Module& module() override { return *model; }
  // The shard's features go to the device whole (TimeSen2Crop's 1.2 M series are 0.6 GB): batches are gathered there.
  void place(const torch::Device& to) override {
    Task::place(to);
    features = features.to(to);
    labels_shard = labels_shard.to(to);
    weight_tensor = weight_tensor.to(to);
  }
  const nn::ModelSpec& spec() const override { return spec_; }
  double weight(std::uint32_t i, std::int64_t) const override { return weights[labels.y[i]]; }
  torch::Tensor loss(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>& global,
                     std::int64_t step, double batch_weight) override {
    auto idx = torch::from_blob(const_cast<std::int64_t*>(local_pos.data()), {static_cast<int64_t>(local_pos.size())},
                                torch::kInt64)
                   .to(device);
    auto xb = features.index_select(0, idx);
    if (s.series.augment > 0) {
      std::vector<std::uint64_t> seeds(global.size());
      for (size_t k = 0; k < global.size(); ++k)
        seeds[k] = hash64(hash64(global[k], static_cast<std::uint64_t>(step)), s.seed ^ 0xA065ULL);
      augment_series(xb, seeds, augmentation_, spec_);
    }
    auto yb = labels_shard.index_select(0, idx);
    auto logp = model->forward(xb);
    auto nll = -logp.gather(1, yb.unsqueeze(1)).squeeze(1);
    if (s.loss == "focal") nll = nll * torch::pow(1.0 - torch::exp(-nll), s.focal_gamma);
    return (nll * weight_tensor.index_select(0, yb)).sum() / batch_weight;
  }
  std::vector<double> validate(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>&) override {
    std::vector<double> confusion(nc * nc + 1, 0.0);
    for (size_t at = 0; at < local_pos.size(); at += 4096) {
      auto idx = torch::from_blob(const_cast<std::int64_t*>(local_pos.data()) + at,
                                  {static_cast<int64_t>(std::min<size_t>(4096, local_pos.size() - at))}, torch::kInt64)
                     .to(device);
      auto logp = model->forward(features.index_select(0, idx));
      auto yb = labels_shard.index_select(0, idx);
      confusion[nc * nc] += -logp.gather(1, yb.unsqueeze(1)).sum().item<double>();
      auto pred = logp.argmax(1).to(torch::kCPU);
      yb = yb.to(torch::kCPU);
      auto p = pred.accessor<int64_t, 1>();
      auto y = yb.accessor<int64_t, 1>();
      for (int64_t k = 0; k < p.size(0); ++k) confusion[static_cast<size_t>(p[k]) * nc + static_cast<size_t>(y[k])] += 1;
    }
    return confusion;
  }
  double score(const std::vector<double>& c) const override { return metrics_from(c, nc, c[nc * nc]).macro_f1; }
  std::string val_text(const std::vector<double>& c) const override {
    Metrics val = metrics_from(c, nc, c[nc * nc]);
    char line[160];
    std::snprintf(line, sizeof line, "val loss %.4f  val OA %.4f  val macro-F1 %.4f", val.loss, val.oa, val.macro_f1);
    return line;
  }
  std::string score_name() const override { return "validation macro-F1"; }
  std::string provenance_key() const override { return "best_val_macro_f1"; }
  std::string describe(int64_t n_params) const override {
    return "model LSTM " + std::to_string(spec_.hidden) + " hidden x " + std::to_string(spec_.layers) + " layers, " +
           std::to_string(n_params) + " parameters, " + std::to_string(nc) + " classes";
  }
};

}  // namespace

std::unique_ptr<Task> make_classify_task(const TrainSettings& settings, const samples::TrainingSet& labels,
                                         nn::ModelSpec spec, const Split& split, size_t shard_begin, size_t shard_end,
                                         const parallel::MpiContext& mpi) {
  return std::make_unique<ClassifyTask>(settings, labels, std::move(spec), split, shard_begin, shard_end, mpi);
}

}  // namespace s2crop::train
