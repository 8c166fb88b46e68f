#include "s2crop/synth/random.hpp"

#include "s2crop/common/hash.hpp"

namespace s2crop::synth {

std::uint64_t hash_string(const std::string& text) {
  return mix64(hash::fnv1a(text));
}

namespace {
inline float lattice(std::int64_t ix, std::int64_t iy, std::uint64_t seed) {
  std::uint64_t k = mix64(seed ^ (static_cast<std::uint64_t>(ix) * 0x9e3779b97f4a7c15ULL) ^
                          (static_cast<std::uint64_t>(iy) * 0xc2b2ae3d27d4eb4fULL));
  return static_cast<float>(k >> 40) * (1.0f / 16777216.0f);
}
inline double smooth(double t) { return t * t * (3.0 - 2.0 * t); }
}  // namespace

float value_noise(double x, double y, std::uint64_t seed) {
  double fx = std::floor(x), fy = std::floor(y);
  auto ix = static_cast<std::int64_t>(fx), iy = static_cast<std::int64_t>(fy);
  double tx = smooth(x - fx), ty = smooth(y - fy);
  float v00 = lattice(ix, iy, seed), v10 = lattice(ix + 1, iy, seed);
  float v01 = lattice(ix, iy + 1, seed), v11 = lattice(ix + 1, iy + 1, seed);
  double a = v00 + (v10 - v00) * tx, b = v01 + (v11 - v01) * tx;
  return static_cast<float>(a + (b - a) * ty);
}

float fbm(double x, double y, double scale, int octaves, std::uint64_t seed) {
  double sum = 0, norm = 0, amp = 1, f = 1.0 / scale;
  for (int o = 0; o < octaves; ++o) {
    sum += amp * value_noise(x * f, y * f, mix64(seed + static_cast<std::uint64_t>(o)));
    norm += amp;
    amp *= 0.5;
    f *= 2.0;
  }
  return static_cast<float>(sum / norm);
}

}  // namespace s2crop::synth
