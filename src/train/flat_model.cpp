#include "flat_model.hpp"

#include <algorithm>

namespace s2crop::train {

FlatModel flatten(const std::vector<torch::Tensor>& parameters) {
  FlatModel f;
  for (auto& p : parameters) f.n += p.numel();
  f.param = torch::zeros({f.n});
  f.grad = torch::zeros({f.n + 1});
  int64_t at = 0;
  torch::NoGradGuard no_grad;
  for (auto p : parameters) {
    int64_t k = p.numel();
    f.param.narrow(0, at, k).copy_(p.detach().reshape({-1}));
    p.set_data(f.param.narrow(0, at, k).view(p.sizes()));
    p.mutable_grad() = f.grad.narrow(0, at, k).view(p.sizes());
    at += k;
  }
  return f;
}

double learning_rate(const TrainSettings& s, int epoch) {
  if (s.lr_schedule == "none") return s.lr;
  if (s.lr_schedule == "step") return s.lr * std::pow(0.5, epoch / std::max(1, s.epochs / 3));
  // cosine from lr down to lr/100 over the run
  double t = s.epochs > 1 ? static_cast<double>(epoch) / (s.epochs - 1) : 0.0;
  return s.lr * (0.01 + 0.99 * 0.5 * (1.0 + std::cos(M_PI * t)));
}

}  // namespace s2crop::train
