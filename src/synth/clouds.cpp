#include "s2crop/synth/clouds.hpp"

#include <algorithm>
#include <cmath>

#include "s2crop/synth/random.hpp"

namespace s2crop::synth {

void CloudField::sample10(int x, int y, float& c, float& s, float& ci) const {
  if (empty) {
    c = s = ci = 0;
    return;
  }
  // 10 m pixel centre in 20 m pixel coordinates.
  float fx = (x + 0.5f) * 0.5f - 0.5f, fy = (y + 0.5f) * 0.5f - 0.5f;
  int x0 = static_cast<int>(std::floor(fx)), y0 = static_cast<int>(std::floor(fy));
  float tx = fx - x0, ty = fy - y0;
  int xa = std::clamp(x0, 0, size20 - 1), xb = std::clamp(x0 + 1, 0, size20 - 1);
  int ya = std::clamp(y0, 0, size20 - 1), yb = std::clamp(y0 + 1, 0, size20 - 1);
  auto at = [&](const std::vector<float>& v) {
    float a = v[static_cast<size_t>(ya) * size20 + xa], b = v[static_cast<size_t>(ya) * size20 + xb];
    float d = v[static_cast<size_t>(yb) * size20 + xa], e = v[static_cast<size_t>(yb) * size20 + xb];
    float top = a + (b - a) * tx, bot = d + (e - d) * tx;
    return top + (bot - top) * ty;
  };
  c = at(cloud);
  s = at(shadow);
  ci = at(cirrus);
}

CloudField make_clouds(int size10, double cover, bool with_cirrus, std::uint64_t seed) {
  CloudField f;
  int n = size10 / 2;
  f.size20 = n;
  size_t count = static_cast<size_t>(n) * n;
  f.cloud.assign(count, 0.0f);
  f.shadow.assign(count, 0.0f);
  f.cirrus.assign(count, 0.0f);
  Rng rng(hash_combine(seed, 0x636c6f756473ULL));
  // Cloud structure in 20 m pixels: features of ~2-8 km. World coordinates (not tile-relative) would make clouds
  // continuous across tiles, but each tile has its own acquisition stream anyway.
  double scale = rng.uniform(60, 220);
  double ox = rng.uniform(0, 1e5), oy = rng.uniform(0, 1e5);
  // Shadows fall away from the sun (south-east in the morning overpass): towards north-west, 0.5-2 km.
  double shadow_len = rng.uniform(25, 90);
  double azimuth = rng.uniform(130, 160) * M_PI / 180.0;  // sun azimuth from north, clockwise
  double sdx = std::sin(azimuth) * shadow_len, sdy = -std::cos(azimuth) * shadow_len;  // +y = south in image rows
  std::uint64_t cseed = rng.next();
  double thickness = rng.uniform(0.85, 1.0);
  float soft = static_cast<float>(rng.uniform(0.05, 0.1));

  if (cover > 0) {
    std::vector<float> noise(count);
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) noise[static_cast<size_t>(y) * n + x] = fbm(x + ox, y + oy, scale, 5, cseed);
    // Threshold at the (1 - cover) quantile so the cloud fraction matches the target.
    std::vector<float> sample;
    for (size_t i = 0; i < count; i += 7) sample.push_back(noise[i]);
    size_t k = std::min(sample.size() - 1, static_cast<size_t>((1.0 - cover) * static_cast<double>(sample.size())));
    std::nth_element(sample.begin(), sample.begin() + static_cast<long>(k), sample.end());
    float thr = cover >= 0.999 ? -1.0f : sample[k];
    auto opacity = [&](float v) {
      float a = std::clamp((v - thr) / soft, 0.0f, 1.0f);
      return static_cast<float>(thickness * std::pow(a, 0.7f));
    };
    for (size_t i = 0; i < count; ++i) f.cloud[i] = opacity(noise[i]);
    // The shadow at pixel p is cast by the cloud at p + displacement (the cloud lies towards the sun).
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        float v = fbm(x + sdx + ox, y + sdy + oy, scale, 5, cseed);
        f.shadow[static_cast<size_t>(y) * n + x] = 0.75f * opacity(v);
      }
    f.empty = false;
  }
  if (with_cirrus) {
    double cscale = rng.uniform(150, 400);
    double strength = rng.uniform(0.05, 0.14);
    std::uint64_t ciseed = rng.next();
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        float v = fbm(x + ox, y + oy, cscale, 3, ciseed);
        f.cirrus[static_cast<size_t>(y) * n + x] =
            static_cast<float>(strength * std::clamp((v - 0.5) / 0.2, 0.0, 1.0));
      }
    f.empty = false;
  }
  return f;
}

}  // namespace s2crop::synth
