#include "s2crop/infer/sliding_windows.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "s2crop/common/errors.hpp"

namespace s2crop::infer {

std::vector<int> window_starts(int length, int edge, int stride) {
  if (length < 1 || edge < 1 || edge > length || stride < 1)
    throw ConfigError("sliding windows: need 1 <= edge <= length and stride >= 1 (length " + std::to_string(length) +
                      ", edge " + std::to_string(edge) + ", stride " + std::to_string(stride) + ")");
  std::vector<int> starts;
  for (int p = 0;; p += stride) {
    if (p + edge >= length) {
      starts.push_back(length - edge);
      break;
    }
    starts.push_back(p);
  }
  return starts;
}

std::vector<float> axis_weights(int edge, int margin, bool taper_start, bool taper_end) {
  std::vector<float> w(static_cast<size_t>(std::max(edge, 0)), 1.f);
  const int m = std::min(margin, edge / 2);
  constexpr double kPi = 3.14159265358979323846;
  for (int i = 0; i < m; ++i) {
    const auto r = static_cast<float>(0.5 - 0.5 * std::cos(kPi * (i + 0.5) / m));
    if (taper_start) w[static_cast<size_t>(i)] = r;
    if (taper_end) w[static_cast<size_t>(edge - 1 - i)] = r;
  }
  return w;
}

// Built with -fno-trapping-math (CMakeLists.txt), without which GCC keeps the selects as branches; no value changes.
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
void blend_window_row(size_t len, size_t outputs, double wy, const float* wx, const std::uint8_t* valid,
                      const float* probs, size_t probs_stride, double* num, size_t num_stride, double* den, double* w) {
  for (size_t i = 0; i < len; ++i) {
    w[i] = wy * static_cast<double>(wx[i]) * static_cast<double>(valid[i]);
    den[i] += w[i];
  }
  for (size_t c = 0; c < outputs; ++c) {
    const float* prob = probs + c * probs_stride;
    double* numc = num + c * num_stride;
    for (size_t i = 0; i < len; ++i) numc[i] += w[i] * static_cast<double>(prob[i]);
  }
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
void blended_argmax(size_t n, size_t outputs, const double* num, const double* den, double* best, std::uint8_t* top) {
  for (size_t p = 0; p < n; ++p) {
    best[p] = num[p] / den[p];
    top[p] = 0;
  }
  for (size_t c = 1; c < outputs; ++c) {
    const double* numc = num + c * n;
    const auto label = static_cast<std::uint8_t>(c);
    for (size_t p = 0; p < n; ++p) {
      const double v = numc[p] / den[p];
      const bool higher = v > best[p];
      best[p] = higher ? v : best[p];
      top[p] = higher ? label : top[p];
    }
  }
}

SlidingWindowGrid::SlidingWindowGrid(int width, int height, int window, int overlap)
    : width_(width), height_(height) {
  if (window < 1) throw ConfigError("--window must be at least 1 pixel (got " + std::to_string(window) + ")");
  if (overlap < 0 || overlap >= window)
    throw ConfigError("--overlap must be at least 0 and smaller than --window (got " + std::to_string(overlap) +
                      " for a window of " + std::to_string(window) + ")");
  if (width < 1 || height < 1) throw ConfigError("sliding windows: empty tile");
  edge_x_ = std::min(window, width);
  edge_y_ = std::min(window, height);
  // A tile narrower than the window has one window along that axis: no stride, no overlap.
  xs_ = window_starts(width, edge_x_, edge_x_ == width ? 1 : window - overlap);
  ys_ = window_starts(height, edge_y_, edge_y_ == height ? 1 : window - overlap);
  margin_x_ = overlap;
  margin_y_ = overlap;
  for (int x : xs_) wx_.push_back(axis_weights(edge_x_, margin_x_, x > 0, x + edge_x_ < width));
  for (int y : ys_) wy_.push_back(axis_weights(edge_y_, margin_y_, y > 0, y + edge_y_ < height));
}

geo::Window SlidingWindowGrid::window(size_t k) const {
  const size_t nx = xs_.size();
  return geo::Window{xs_.at(k % nx), ys_.at(k / nx), edge_x_, edge_y_};
}

std::vector<size_t> SlidingWindowGrid::intersecting(const geo::Window& block) const {
  std::vector<size_t> out;
  if (block.width <= 0 || block.height <= 0) return out;
  const size_t nx = xs_.size();
  for (size_t iy = 0; iy < ys_.size(); ++iy) {
    if (ys_[iy] >= block.y0 + block.height || ys_[iy] + edge_y_ <= block.y0) continue;
    for (size_t ix = 0; ix < nx; ++ix) {
      if (xs_[ix] >= block.x0 + block.width || xs_[ix] + edge_x_ <= block.x0) continue;
      out.push_back(iy * nx + ix);
    }
  }
  return out;
}

const std::vector<float>& SlidingWindowGrid::weights_x(size_t k) const { return wx_.at(k % xs_.size()); }
const std::vector<float>& SlidingWindowGrid::weights_y(size_t k) const { return wy_.at(k / xs_.size()); }

}  // namespace s2crop::infer
