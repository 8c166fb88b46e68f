#pragma once
// The torch side of nn/device.hpp. Includes LibTorch: only for nn/train/infer sources.
#include <torch/torch.h>

#include "s2crop/nn/device.hpp"

namespace s2crop::nn {

inline torch::Device torch_device(const DeviceChoice& d) {
  return d.cuda ? torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(d.index)) : torch::Device(torch::kCPU);
}

inline torch::ScalarType scalar_type(Precision p) {
  return p == Precision::Bf16 ? torch::kBFloat16 : p == Precision::Fp16 ? torch::kFloat16 : torch::kFloat32;
}

// A host tensor on its way to `device`: on a GPU, copied from pinned memory without blocking the host (the copy
// overlaps what the host does next); on the CPU, the tensor itself.
inline torch::Tensor to_device(const torch::Tensor& host, const torch::Device& device) {
  if (device.is_cpu()) return host;
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

// Where and in which precision a model infers. prepare() moves the model there and casts it to the precision; in()
// takes a host float32 batch there (cast alike), out() brings a result back as contiguous float32 on the host. (The
// LSTM classifier on the CPU skips both: it keeps float32 weights and runs only its GEMMs in the precision.)
struct InferencePlace {
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat32;

  InferencePlace() = default;
  InferencePlace(const DeviceChoice& d, Precision p) : device(torch_device(d)), dtype(scalar_type(p)) {}
  void prepare(torch::nn::Module& model) const {
    model.to(device);
    if (dtype != torch::kFloat32) model.to(dtype);
  }
  // A host float32 batch on the device (cast to the precision there).
  torch::Tensor in(const torch::Tensor& host) const {
    auto t = to_device(host, device);
    return dtype == torch::kFloat32 ? t : t.to(dtype);
  }
  static torch::Tensor out(const torch::Tensor& t) { return t.to(torch::kCPU).to(torch::kFloat32).contiguous(); }
  // Pixels per model call on a GPU: a quarter of its free memory at `bytes_per_pixel` (0 on the CPU or where the
  // build cannot tell).
  std::size_t batch_that_fits(std::size_t bytes_per_pixel) const {
    std::size_t free_bytes = 0, total_bytes = 0;
    if (device.is_cpu() || !gpu_memory(device.index(), free_bytes, total_bytes)) return 0;
    return free_bytes / 4 / std::max<std::size_t>(bytes_per_pixel, 1);
  }
};

}  // namespace s2crop::nn
