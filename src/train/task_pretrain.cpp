#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "augment.hpp"
#include "patches.hpp"
#include "task.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/nn/simsiam.hpp"

namespace s2crop::train {
namespace {

// ---- self-supervised pre-training of the U-Net encoder (`s2crop pretrain`): SimSiam on unlabelled patches
// Two views of a patch, each a function of (seed, patch, step, view): flip, quarter turns and band brightness as in
// segment training, a random crop of 50-100 % of the side resized back (bilinear), and whole months dropped to no
// data (20 % each, as a cloudy month would be). Validation uses fixed views; its score is minus the loss. The
// spread of the normalised projections is logged: near 0 means the encoder collapsed to a constant.
struct PretrainTask : Task {
  const TrainSettings& s;
  nn::ModelSpec spec_;
  samples::PatchSetHeader header;
  torch::Tensor input;  // shard [n][C][S][S], normalised
  nn::SimSiam model{nullptr};
  static constexpr std::uint64_t kValidationStep = ~0ULL;

  PretrainTask(const TrainSettings& settings, samples::PatchSetHeader header_, nn::ModelSpec spec,
               const std::vector<std::uint32_t>& train, size_t shard_begin, size_t shard_end,
               const parallel::MpiContext& mpi)
      : s(settings), spec_(std::move(spec)), header(std::move(header_)) {
    input = load_patch_inputs(s.samples, header, spec_, train, shard_begin, shard_end, mpi, nullptr);
  }
  void build() override {
    torch::manual_seed(s.seed);
    model = nn::SimSiam(spec_.unet, s.segment.projection, s.segment.objective == "dense", s.segment.reconstruction);
  }
  torch::nn::Module& module() override { return *model; }
  torch::nn::Module& saved_module() override { return *model->kept; }
  const nn::ModelSpec& spec() const override { return spec_; }
  double weight(std::uint32_t, std::int64_t) const override { return 1.0; }

  // Global objective: each view its own flip, turns, brightness, crop (resized back) and dropped months.
  // Dense objective: the views share flip and turns (pixel (y, x) of one is pixel (y, x) of the other) and differ in
  // brightness and dropped months, so each pixel's embedding must not depend on which months were seen.
  // `dropped` (optional) receives [C], 1 for the channels of the months the view blanked; with `geometry_only`, the
  // patch is only flipped and turned (the reconstruction target, aligned with the dense views).
  torch::Tensor view(std::int64_t pos, std::uint32_t i, std::uint64_t step, std::uint64_t v,
                     torch::Tensor* dropped = nullptr, bool geometry_only = false) const {
    const std::uint64_t h = hash64(hash64(hash64(i, step), v + 1), s.seed ^ 0x51A5ULL);
    const bool dense = s.segment.objective == "dense";
    torch::Tensor x = input[pos], none;
    torch::Tensor t, m;
    augment_geometry(x, t, m, dense ? hash64(hash64(i, step), s.seed ^ 0x6E0ULL) : h);
    if (geometry_only) return x.contiguous();
    augment_brightness(x, h, s.segment.jitter, spec_);
    const int64_t S = x.size(1);
    auto uniform = [&](std::uint64_t salt) { return static_cast<double>(hash64(h, salt) >> 11) * 0x1.0p-53; };
    const int64_t side = std::max<int64_t>(4, static_cast<int64_t>(std::lround(S * (0.5 + 0.5 * uniform(11)))));
    if (!dense && side < S) {
      const int64_t y0 = static_cast<int64_t>(uniform(12) * static_cast<double>(S - side + 1));
      const int64_t x0 = static_cast<int64_t>(uniform(13) * static_cast<double>(S - side + 1));
      namespace F = torch::nn::functional;
      x = F::interpolate(x.narrow(1, std::min(y0, S - side), side).narrow(2, std::min(x0, S - side), side).unsqueeze(0),
                         F::InterpolateFuncOptions().size(std::vector<int64_t>{S, S}).mode(torch::kBilinear).align_corners(false))
              .squeeze(0);
    }
    const int64_t bands = static_cast<int64_t>(spec_.bands.size());
    if (dropped) *dropped = torch::zeros({x.size(0)});
    for (size_t k = 0; k < spec_.unet.months.size(); ++k)
      if (uniform(100 + k) < s.segment.drop_months) {
        x.narrow(0, static_cast<int64_t>(k) * bands, bands).zero_();
        if (dropped) dropped->narrow(0, static_cast<int64_t>(k) * bands, bands).fill_(1.0);
      }
    return x.contiguous();
  }
  nn::SiameseLoss batch_loss(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>& global,
                             std::uint64_t step, torch::Tensor* projections = nullptr) {
    const bool target = model->reconstructs();
    std::vector<torch::Tensor> a, b, c, da, db;
    for (size_t k = 0; k < local_pos.size(); ++k) {
      torch::Tensor d1, d2;
      a.push_back(view(local_pos[k], global[k], step, 0, target ? &d1 : nullptr));
      b.push_back(view(local_pos[k], global[k], step, 1, target ? &d2 : nullptr));
      if (!target) continue;
      c.push_back(view(local_pos[k], global[k], step, 2, nullptr, true));
      da.push_back(d1);
      db.push_back(d2);
    }
    nn::SiameseViews views;
    views.view1 = nn::to_device(torch::stack(a), device);
    views.view2 = nn::to_device(torch::stack(b), device);
    if (target) {
      views.target = nn::to_device(torch::stack(c), device);
      views.dropped1 = nn::to_device(torch::stack(da), device);
      views.dropped2 = nn::to_device(torch::stack(db), device);
    }
    return model->loss(views, projections);
  }
  torch::Tensor loss(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>& global,
                     std::int64_t step, double batch_weight) override {
    return batch_loss(local_pos, global, static_cast<std::uint64_t>(step)).total.sum() / std::max(batch_weight, 1e-12);
  }
  std::vector<double> validate(const std::vector<std::int64_t>& local_pos,
                               const std::vector<std::uint32_t>& global) override {
    // loss sum, count, sum of the per-batch spread of normalised projections, siamese and reconstruction loss sums
    std::vector<double> sums(5, 0.0);
    for (size_t at = 0; at < local_pos.size(); at += 32) {
      const size_t end = std::min(local_pos.size(), at + 32);
      std::vector<std::int64_t> lp(local_pos.begin() + static_cast<long>(at), local_pos.begin() + static_cast<long>(end));
      std::vector<std::uint32_t> gl(global.begin() + static_cast<long>(at), global.begin() + static_cast<long>(end));
      torch::Tensor z;
      auto l = batch_loss(lp, gl, kValidationStep, &z);
      sums[0] += l.total.sum().item<double>();
      sums[3] += l.siamese.sum().item<double>();
      if (l.reconstruction.defined()) sums[4] += l.reconstruction.sum().item<double>();
      sums[1] += static_cast<double>(lp.size());
      if (z.size(0) > 1) {  // over the patches (global) or the sampled pixels (dense)
        auto zn = torch::nn::functional::normalize(z, torch::nn::functional::NormalizeFuncOptions().dim(1));
        sums[2] += zn.std(0).mean().item<double>() * static_cast<double>(lp.size());
      }
    }
    return sums;
  }
  double score(const std::vector<double>& v) const override { return v[1] > 0 ? -v[0] / v[1] : 0.0; }
  std::string val_text(const std::vector<double>& v) const override {
    char line[400];
    const double n = std::max(v[1], 1.0);
    if (s.segment.objective == "dense" && s.segment.reconstruction > 0)
      std::snprintf(line, sizeof line, "val dense loss %.4f (VICReg %.4f: lower, views agree; masked-month "
                    "reconstruction %.4f: normalised MSE, x %g)  projection spread %.3f (0: collapsed; healthy near %.3f)",
                    v[0] / n, v[3] / n, v[4] / n, s.segment.reconstruction, v[2] / n,
                    1.0 / std::sqrt(static_cast<double>(s.segment.projection)));
    else if (s.segment.objective == "dense")
      std::snprintf(line, sizeof line, "val dense loss %.4f (VICReg %.4f: lower, views agree)  projection spread "
                    "%.3f (0: collapsed; healthy near %.3f)", v[0] / n, v[3] / n, v[2] / n,
                    1.0 / std::sqrt(static_cast<double>(s.segment.projection)));
    else
      std::snprintf(line, sizeof line, "val SimSiam loss %.4f (-1: views agree)  projection spread %.3f (0: collapsed; "
                    "healthy near %.3f)", v[1] > 0 ? v[0] / v[1] : 0.0, v[1] > 0 ? v[2] / v[1] : 0.0,
                    1.0 / std::sqrt(static_cast<double>(s.segment.projection)));
    return line;
  }
  std::string score_name() const override {
    return s.segment.objective == "dense" ? "validation dense loss" : "validation SimSiam loss";
  }
  double score_display(double score) const override { return -score; }
  std::string provenance_key() const override { return "best_val_simsiam_score"; }
  std::string describe(int64_t n_params) const override {
    const auto& u = spec_.unet;
    const bool body = model->reconstructs();
    return std::string(s.segment.objective != "dense" ? "global SimSiam"
                       : body ? "dense (per-pixel VICReg + masked-month reconstruction)" : "dense (per-pixel VICReg)") +
           " pre-training of a U-Net " + u.encoder + " encoder (depth " + std::to_string(u.depth) + ", width " +
           std::to_string(u.width) + ", " + u.norm + " norm), projection " + std::to_string(s.segment.projection) + ", " +
           std::to_string(n_params) + " parameters (" + (body ? "the encoder and decoder are kept" : "only the encoder is kept") + ")";
  }
  std::string inputs_text() const override {
    return "unlabelled patches " + std::to_string(header.patch_size) + " px, " + std::to_string(spec_.unet.in_channels) +
           " channels (" + std::to_string(spec_.unet.months.size()) + " months x " + join_items(spec_.bands, ",") + ")";
  }
  std::string fingerprint_extra() const override {
    std::ostringstream o;
    const auto& g = s.segment;
    o << " pretrain=" << g.depth << "/" << g.width << "/" << g.blocks << "/" << g.norm << "/" << g.encoder << " projection="
      << g.projection << " jitter=" << g.jitter << " objective=" << g.objective << " drop=" << g.drop_months
      << " reconstruction=" << (g.objective == "dense" ? g.reconstruction : 0.0);
    for (int m : spec_.unet.months) o << "," << m;
    return o.str();
  }
};

}  // namespace

std::unique_ptr<Task> make_pretrain_task(const TrainSettings& settings, samples::PatchSetHeader header,
                                         nn::ModelSpec spec, const std::vector<std::uint32_t>& train,
                                         size_t shard_begin, size_t shard_end, const parallel::MpiContext& mpi) {
  return std::make_unique<PretrainTask>(settings, std::move(header), std::move(spec), train, shard_begin, shard_end,
                                        mpi);
}

}  // namespace s2crop::train
