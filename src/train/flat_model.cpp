#include "flat_model.hpp"

#include <algorithm>

namespace s2crop::train {

FlatModel flatten(const std::vector<torch::Tensor>& parameters) {
  FlatModel f;
  for (auto& p : parameters) f.n += p.numel();
  const auto on = torch::TensorOptions().dtype(torch::kFloat32).device(parameters.empty() ? torch::Device(torch::kCPU)
                                                                                          : parameters[0].device());
  f.param = torch::zeros({f.n}, on);
  f.grad = torch::zeros({f.n + 1}, on);
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

void allreduce_sum(Communicator& comm, torch::Tensor& buffer, size_t bucket) {
  TORCH_CHECK(buffer.is_contiguous(), "allreduce_sum: buffer must be contiguous");
  const bool staged = !buffer.is_cpu() && !comm.takes_device_memory();
  torch::Tensor host = staged ? buffer.to(torch::kCPU) : buffer;
  const size_t total = static_cast<size_t>(host.numel());
  for (size_t at = 0; at < total; at += bucket) {
    const size_t n = std::min(bucket, total - at);
    if (host.scalar_type() == torch::kFloat64) comm.allreduce_sum(host.data_ptr<double>() + at, n);
    else comm.allreduce_sum(host.data_ptr<float>() + at, n);
  }
  if (staged) buffer.copy_(host);
}

void broadcast(Communicator& comm, torch::Tensor& buffer, int root) {
  TORCH_CHECK(buffer.is_contiguous() && buffer.scalar_type() == torch::kFloat32, "broadcast: contiguous float buffer");
  const bool staged = !buffer.is_cpu() && !comm.takes_device_memory();
  torch::Tensor host = staged ? buffer.to(torch::kCPU) : buffer;
  comm.broadcast(host.data_ptr<float>(), static_cast<size_t>(host.numel()), root);
  if (staged) buffer.copy_(host);
}

double learning_rate(const TrainSettings& s, int epoch) {
  if (s.lr_schedule == "none") return s.lr;
  if (s.lr_schedule == "step") return s.lr * std::pow(0.5, epoch / std::max(1, s.epochs / 3));
  // cosine from lr down to lr/100 over the run
  double t = s.epochs > 1 ? static_cast<double>(epoch) / (s.epochs - 1) : 0.0;
  return s.lr * (0.01 + 0.99 * 0.5 * (1.0 + std::cos(M_PI * t)));
}

}  // namespace s2crop::train
