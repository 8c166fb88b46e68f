#include "augment.hpp"

#include <algorithm>
#include <cmath>

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

namespace {
double unit_draw(std::uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }  // [0, 1)
}  // namespace

void augment_series(torch::Tensor& x, const std::vector<std::uint64_t>& seeds, const SeriesAugmentation& a,
                    const nn::ModelSpec& spec) {
  if (!a.active() || x.numel() == 0) return;
  const auto device = x.device();
  torch::Tensor cpu = x.to(torch::kCPU).contiguous();
  const int64_t B = cpu.size(0), M = cpu.size(1), F = cpu.size(2);
  const int64_t n_bands = static_cast<int64_t>(spec.bands.size());  // the reflectance features come first
  float* base = cpu.data_ptr<float>();
  std::vector<float> series(static_cast<size_t>(M * F)), raw(static_cast<size_t>(M * F));
  std::vector<char> kept(static_cast<size_t>(M));
  for (int64_t b = 0; b < B; ++b) {
    float* v = base + b * M * F;
    const std::uint64_t h = seeds.at(static_cast<size_t>(b));
    // Gain per band, in normalised units: r' = r f  ->  x' = x f + (f - 1) mean / sd.
    for (int64_t k = 0; k < n_bands && a.jitter > 0; ++k) {
      const double f = 1.0 + a.jitter * (2.0 * unit_draw(hash64(h, 0x6A1ULL + static_cast<std::uint64_t>(k))) - 1.0);
      const double off = (f - 1.0) * spec.mean[static_cast<size_t>(k)] / spec.stddev[static_cast<size_t>(k)];
      for (int64_t m = 0; m < M; ++m) v[m * F + k] = static_cast<float>(v[m * F + k] * f + off);
    }
    // Lost months, gap-filled from the nearest kept ones (never all: the first kept month stays).
    if (a.mask_months > 0) {
      int n_kept = 0;
      for (int64_t m = 0; m < M; ++m) {
        kept[static_cast<size_t>(m)] = unit_draw(hash64(h, 0x3A5ULL + static_cast<std::uint64_t>(m))) >= a.mask_months;
        n_kept += kept[static_cast<size_t>(m)];
      }
      if (n_kept > 0 && n_kept < M) {
        std::copy(v, v + M * F, raw.begin());
        for (int64_t m = 0; m < M; ++m) {
          if (kept[static_cast<size_t>(m)]) continue;
          int64_t lo = m - 1, hi = m + 1;
          while (lo >= 0 && !kept[static_cast<size_t>(lo)]) --lo;
          while (hi < M && !kept[static_cast<size_t>(hi)]) ++hi;
          for (int64_t k = 0; k < F; ++k) {
            float value;
            if (lo < 0)
              value = raw[static_cast<size_t>(hi * F + k)];
            else if (hi >= M)
              value = raw[static_cast<size_t>(lo * F + k)];
            else
              value = raw[static_cast<size_t>(lo * F + k)] +
                      static_cast<float>(m - lo) / static_cast<float>(hi - lo) *
                          (raw[static_cast<size_t>(hi * F + k)] - raw[static_cast<size_t>(lo * F + k)]);
            v[m * F + k] = value;
          }
        }
      }
    }
    // The season shifted by d months (|d| <= shift): month m reads m + d, linearly between its neighbours.
    if (a.shift > 0) {
      const double d = a.shift * (2.0 * unit_draw(hash64(h, 0x5F1ULL)) - 1.0);
      const int64_t step = d >= 0 ? 1 : -1;
      const float w = static_cast<float>(std::abs(d));
      std::copy(v, v + M * F, series.begin());
      for (int64_t m = 0; m < M; ++m) {
        const int64_t n = std::clamp<int64_t>(m + step, 0, M - 1);
        for (int64_t k = 0; k < F; ++k)
          v[m * F + k] = (1 - w) * series[static_cast<size_t>(m * F + k)] + w * series[static_cast<size_t>(n * F + k)];
      }
    }
  }
  x = cpu.to(device);
}

}  // namespace s2crop::train
