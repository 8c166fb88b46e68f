#pragma once
// Clouds of one acquisition: opaque cumulus-like fields (smooth noise thresholded to a target cover), their
// shadows displaced away from the sun, and thin cirrus. Computed on the 20 m grid, sampled bilinearly at 10 m.
#include <cstdint>
#include <vector>

namespace s2crop::synth {

struct CloudField {
  int size20 = 0;              // 20 m pixels per side
  std::vector<float> cloud;    // opacity 0..1 (20 m grid)
  std::vector<float> shadow;   // shadow darkness 0..1
  std::vector<float> cirrus;   // cirrus opacity 0..~0.15
  bool empty = true;           // no cloud, shadow or cirrus at all

  // Thresholds used for the SCL: opacity above kHighThreshold -> cloud high probability, above kMediumThreshold ->
  // medium; thinner cloud edges stay undetected (as in Sen2Cor, hence the dilation in composites).
  static constexpr float kHighThreshold = 0.55f;
  static constexpr float kMediumThreshold = 0.22f;
  static constexpr float kShadowThreshold = 0.3f;
  static constexpr float kCirrusThreshold = 0.03f;

  // Bilinear sample at 10 m pixel (x, y).
  void sample10(int x, int y, float& c, float& s, float& ci) const;
};

// `cover`: target fraction of the tile under cloud (detected or not); `cirrus`: whether a cirrus layer is present.
CloudField make_clouds(int size10, double cover, bool cirrus, std::uint64_t seed);

}  // namespace s2crop::synth
