#pragma once
// The flat parameter buffer, its optimiser and the learning-rate schedule. Private to src/train.
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "s2crop/train/communicator.hpp"
#include "s2crop/train/trainer.hpp"

namespace s2crop::train {

// The parameters and gradients of a model in one flat buffer each: parameters become views into flat_param and
// autograd accumulates into views of flat_grad, so the all-reduce and the optimiser work on a few large buffers
// (the gradient buckets) instead of one small tensor per parameter. Both buffers live on the parameters' device.
struct FlatModel {
  torch::Tensor param, grad;  // grad has one extra slot at the end: the batch's loss sum rides along
  int64_t n = 0;
};

FlatModel flatten(const std::vector<torch::Tensor>& parameters);

// In-place sum over all ranks of a flat buffer (float or double, contiguous), `bucket` values per collective. A buffer
// on a GPU goes to a communicator that takes device memory (NCCL) as it is; otherwise (MPI) through one host copy.
void allreduce_sum(Communicator& comm, torch::Tensor& buffer, size_t bucket);
// `buffer` (float) from rank `root` to every rank, the same way.
void broadcast(Communicator& comm, torch::Tensor& buffer, int root);

// AdamW (decoupled weight decay) on the flat parameter buffer: a handful of vectorised kernels per step.
struct FusedAdamW {
  torch::Tensor m, v;
  torch::Tensor lr_scale;  // per parameter value (undefined: 1 everywhere), e.g. a pre-trained encoder's smaller rate
  int64_t step = 0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  void init(int64_t n, const torch::Device& device = torch::kCPU) {
    m = torch::zeros({n}, torch::TensorOptions().device(device));
    v = torch::zeros({n}, torch::TensorOptions().device(device));
  }
  void update(torch::Tensor& param, const torch::Tensor& grad, double lr, double weight_decay) {
    torch::NoGradGuard no_grad;
    ++step;
    m.mul_(beta1).add_(grad, 1.0 - beta1);
    v.mul_(beta2).addcmul_(grad, grad, 1.0 - beta2);
    const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
    const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
    auto denom = (v.sqrt() / std::sqrt(bc2)).add_(eps);
    if (lr_scale.defined()) {
      if (weight_decay > 0) param.sub_(param * lr_scale, lr * weight_decay);
      param.addcdiv_(m * lr_scale, denom, -lr / bc1);
      return;
    }
    if (weight_decay > 0) param.mul_(1.0 - lr * weight_decay);
    param.addcdiv_(m, denom, -lr / bc1);
  }
};

double learning_rate(const TrainSettings& s, int epoch);

}  // namespace s2crop::train
