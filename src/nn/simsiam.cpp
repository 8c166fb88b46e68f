#include "s2crop/nn/simsiam.hpp"

namespace s2crop::nn {

SimSiamImpl::SimSiamImpl(const UNetSpec& spec, int64_t projection) {
  spec.check();
  encoder = register_module("encoder", UNetEncoder(spec));
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

torch::Tensor SimSiamImpl::loss(const torch::Tensor& view1, const torch::Tensor& view2, torch::Tensor* projection1) {
  // Both views in one pass: the batch norms see 2 x batch samples, so even a rank holding one patch of the global
  // batch can normalise.
  const int64_t n = view1.size(0);
  auto z = projector->forward(encoder->pooled(torch::cat({view1, view2})));
  auto p = predictor->forward(z);
  auto z1 = z.narrow(0, 0, n), z2 = z.narrow(0, n, n), p1 = p.narrow(0, 0, n), p2 = p.narrow(0, n, n);
  if (projection1) *projection1 = z1.detach();
  namespace F = torch::nn::functional;
  auto d = [](const torch::Tensor& a, const torch::Tensor& b) {
    return -F::cosine_similarity(a, b.detach(), F::CosineSimilarityFuncOptions().dim(1));
  };
  return 0.5 * d(p1, z2) + 0.5 * d(p2, z1);
}

}  // namespace s2crop::nn
