#include "s2crop/nn/simsiam.hpp"

#include <algorithm>
#include <vector>

namespace s2crop::nn {

SimSiamImpl::SimSiamImpl(const UNetSpec& spec, int64_t projection, bool dense_, double reconstruction)
    : dense(dense_), reconstruction_weight(dense_ ? reconstruction : 0.0) {
  spec.check();
  encoder = register_module("encoder", UNetEncoder(spec));
  kept = std::make_shared<torch::nn::Module>("UNetPretrained");
  kept->register_module("encoder", encoder);
  if (reconstructs()) {
    decoder = register_module("decoder", UNetDecoder(spec));
    reconstruct = register_module("reconstruct", torch::nn::Conv2d(torch::nn::Conv2dOptions(spec.width, spec.in_channels, 1)));
    kept->register_module("decoder", decoder);
  }
  if (dense) {
    int64_t features = 0;
    for (int l = 0; l <= spec.depth; ++l) features += spec.channels(l);
    projector = register_module(
        "projector", torch::nn::Sequential(torch::nn::Linear(features, projection),
                                           torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(projection).track_running_stats(false)),
                                           torch::nn::ReLU(), torch::nn::Linear(projection, projection)));
    return;
  }
  const int64_t features = encoder->out_channels(), bottleneck = std::max<int64_t>(1, projection / 4);
  // Batch statistics always (no running statistics: nothing to checkpoint or to keep equal across ranks).
  auto bn = [](int64_t n, bool affine = true) {
    return torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(n).track_running_stats(false).affine(affine));
  };
  projector = register_module("projector",
                              torch::nn::Sequential(torch::nn::Linear(features, projection), bn(projection),
                                                    torch::nn::ReLU(), torch::nn::Linear(projection, projection),
                                                    bn(projection, false)));
  predictor = register_module("predictor",
                              torch::nn::Sequential(torch::nn::Linear(projection, bottleneck), bn(bottleneck),
                                                    torch::nn::ReLU(), torch::nn::Linear(bottleneck, projection)));
}

SiameseLoss SimSiamImpl::loss(const SiameseViews& views, torch::Tensor* projection1) {
  const torch::Tensor &view1 = views.view1, &view2 = views.view2;
  // Both views in one pass: the batch norms see 2 x batch samples, so even a rank holding one patch of the global
  // batch can normalise.
  const int64_t n = view1.size(0);
  namespace F = torch::nn::functional;
  if (dense) {
    // Hypercolumns at a regular grid of pixels (8 x 8 per patch; level l read at (y >> l, x >> l)), both views in
    // one projector pass (its batch norm sees every sampled pixel).
    const int64_t H = view1.size(2), W = view1.size(3), g = 8;
    auto grid = [&](int64_t size) {
      std::vector<int64_t> at;
      for (int64_t k = 0; k < g; ++k) at.push_back(std::min(size - 1, (2 * k + 1) * size / (2 * g)));
      return at;
    };
    const auto ys = grid(H), xs = grid(W);
    int64_t top = 0, left = 0;
    auto features = encoder->forward(pad_to_multiple(torch::cat({view1, view2}), encoder->spec.multiple(), top, left));
    SiameseLoss out;
    if (reconstructs()) {
      // Every pixel of each view: the unjittered patch, the view's dropped months weighted 1 and its kept ones 0.05
      // (those pass through the skip connections almost as they are; the small weight keeps them calibrated).
      auto predicted = reconstruct->forward(decoder->forward(features)).narrow(2, top, H).narrow(3, left, W);
      auto error = (predicted - torch::cat({views.target, views.target})).pow(2).mean({2, 3});  // [2n][C]
      auto weight = torch::cat({views.dropped1, views.dropped2}).to(error.dtype()) + 0.05;
      auto per_view = (error * weight).sum(1) / weight.sum(1);
      out.reconstruction = 0.5 * (per_view.narrow(0, 0, n) + per_view.narrow(0, n, n));
    }
    std::vector<torch::Tensor> columns;
    for (size_t l = 0; l < features.size(); ++l) {
      std::vector<int64_t> yl, xl;
      for (auto y : ys) yl.push_back((y + top) >> l);
      for (auto x : xs) xl.push_back((x + left) >> l);
      const auto on = features[l].device();
      columns.push_back(features[l].index_select(2, torch::tensor(yl).to(on)).index_select(3, torch::tensor(xl).to(on)));
    }
    auto h = torch::cat(columns, 1);                                   // [2n][features][g][g]
    auto z = projector->forward(h.permute({0, 2, 3, 1}).reshape({2 * n * g * g, -1}));
    const int64_t m = n * g * g;
    // VICReg (Bardes, Ponce & LeCun, 2022) per pixel: invariance (the same pixel in both views), variance (every
    // dimension keeps a standard deviation of at least 1 over the sampled pixels) and covariance (dimensions
    // decorrelated). No negatives: pixels of one parcel may share an embedding, which a crop map wants.
    auto z1 = z.narrow(0, 0, m), z2 = z.narrow(0, m, m);
    if (projection1) *projection1 = F::normalize(z1, F::NormalizeFuncOptions().dim(1)).detach();
    const double d = static_cast<double>(z.size(1));
    auto spread = [&](const torch::Tensor& v) {
      auto c = v - v.mean(0, true);
      auto std = torch::sqrt(c.var(0) + 1e-4);
      auto cov = torch::mm(c.t(), c) / static_cast<double>(std::max<int64_t>(1, v.size(0) - 1));
      auto off = cov.pow(2).sum() - cov.diagonal().pow(2).sum();
      return 25.0 * torch::relu(1.0 - std).mean() + off / d;
    };
    auto invariance = (z1 - z2).pow(2).mean(1).reshape({n, g * g}).mean(1);  // per patch
    out.siamese = 25.0 * invariance + (spread(z1) + spread(z2)) / static_cast<double>(n);
    out.total = reconstructs() ? out.siamese + reconstruction_weight * out.reconstruction : out.siamese;
    return out;
  }
  auto z = projector->forward(encoder->pooled(torch::cat({view1, view2})));
  auto p = predictor->forward(z);
  auto z1 = z.narrow(0, 0, n), z2 = z.narrow(0, n, n), p1 = p.narrow(0, 0, n), p2 = p.narrow(0, n, n);
  if (projection1) *projection1 = z1.detach();
  auto d = [](const torch::Tensor& a, const torch::Tensor& b) {
    return -F::cosine_similarity(a, b.detach(), F::CosineSimilarityFuncOptions().dim(1));
  };
  SiameseLoss out;
  out.siamese = out.total = 0.5 * d(p1, z2) + 0.5 * d(p2, z1);
  return out;
}

}  // namespace s2crop::nn
