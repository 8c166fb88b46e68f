#include "augment.hpp"

#include <algorithm>

#include "sampling.hpp"

namespace s2crop::train {

void augment_geometry(torch::Tensor& x, torch::Tensor& t, torch::Tensor& m, std::uint64_t h) {
  const bool flip = h & 1;
  const int64_t turns = static_cast<int64_t>((h >> 1) & 3);
  auto geometry = [&](torch::Tensor v) {
    if (!v.defined()) return v;
    const int64_t d = v.dim();
    if (flip) v = v.flip({d - 1});
    if (turns) v = torch::rot90(v, turns, {d - 2, d - 1});
    return v.contiguous();
  };
  x = geometry(x);
  t = geometry(t);
  m = geometry(m);
}
void augment_brightness(torch::Tensor& x, std::uint64_t h, double jitter, const nn::ModelSpec& spec) {
  if (jitter <= 0) return;
  const int64_t C = x.size(0);
  const size_t n_bands = std::max<size_t>(1, spec.bands.size());
  auto factor = torch::empty({C, 1, 1}), offset = torch::empty({C, 1, 1});
  float* fp = factor.data_ptr<float>();
  float* op = offset.data_ptr<float>();
  for (int64_t c = 0; c < C; ++c) {
    const std::uint64_t hb = hash64(h, static_cast<std::uint64_t>(c) % n_bands + 1);
    const double f = 1.0 + jitter * (2.0 * (static_cast<double>(hb >> 11) * 0x1.0p-53) - 1.0);
    fp[c] = static_cast<float>(f);
    op[c] = static_cast<float>((f - 1.0) * spec.mean[static_cast<size_t>(c)] / spec.stddev[static_cast<size_t>(c)]);
  }
  x = x * factor + offset;
}
void augment_patch(torch::Tensor& x, torch::Tensor& t, torch::Tensor& m, std::uint64_t h, double jitter,
                   const nn::ModelSpec& spec) {
  augment_geometry(x, t, m, h);
  augment_brightness(x, h, jitter, spec);
}

}  // namespace s2crop::train
