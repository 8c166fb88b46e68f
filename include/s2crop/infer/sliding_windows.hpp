#pragma once
// The sliding windows of `segment predict` (torch-free, pure functions): ONE grid of windows per tile, fixed by the
// tile's size and the window options alone, so a pixel's prediction never depends on how the tile is cut into
// blocks or spread over ranks.
//
// Along each axis of length n: edge E = min(window, n), stride S = E - overlap, starts 0, S, 2S, ... as long as the
// window ends inside the axis, then one last window aligned to the far edge (start n - E), so every pixel is covered
// and no window sticks out. Windows are numbered row-major over (y start, x start): the global window order.
//
// Blending: a window's pixel (i, j) (row, column inside the window) has weight wy(i) * wx(j), each axis a raised-
// cosine ramp over the overlap margin m = min(overlap, E / 2):  ramp(i) = 0.5 - 0.5 cos(pi (i + 0.5) / m)  for the
// first m pixels of a side, mirrored at the far side, 1 in between. The ramp is strictly positive, and
// ramp(i) + ramp(m - 1 - i) = 1, so two windows overlapping by exactly m blend to a partition of unity. A side that
// lies on the tile border is not tapered (weight 1 up to the border: no pixel is down-weighted relative to
// nothing). A pixel's value is sum_k w_k p_k / sum_k w_k over the windows covering it, in global window order.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "s2crop/geo/grid.hpp"

namespace s2crop::infer {

// Window starts along an axis of `length` px for windows of `edge` px and `stride` px (edge <= length, stride >= 1):
// 0, stride, ... while start + edge < length, then length - edge (the last window touches the far edge).
std::vector<int> window_starts(int length, int edge, int stride);

// Weights of the `edge` pixels of a window along one axis: a raised-cosine ramp of `margin` px (clamped to
// edge / 2) at each side that is tapered, 1 elsewhere; every weight is in (0, 1].
std::vector<float> axis_weights(int edge, int margin, bool taper_start, bool taper_end);

// The blending's arithmetic (vectorised; the same IEEE operations in the same order for every pixel, whatever the
// CPU). One row of window k over a block row: w_i = wy * wx[i] * valid[i] (valid 0 or 1), den[i] += w_i and, for
// each output c, num[c * num_stride + i] += w_i * probs[c * probs_stride + i]. `probs` must be 0 where valid is 0
// (the sums then equal skipping those pixels); `w` (len) is scratch.
void blend_window_row(size_t len, size_t outputs, double wy, const float* wx, const std::uint8_t* valid,
                      const float* probs, size_t probs_stride, double* num, size_t num_stride, double* den, double* w);
// Per pixel of the blended sums (num [output][n]): the first output of the highest num / den and that value.
void blended_argmax(size_t n, size_t outputs, const double* num, const double* den, double* best, std::uint8_t* top);

class SlidingWindowGrid {
 public:
  // `window` >= 1, 0 <= `overlap` < `window` (ConfigError otherwise); a tile smaller than the window along an axis
  // gets one window of the tile's size along it.
  SlidingWindowGrid(int width, int height, int window, int overlap);

  int width() const { return width_; }
  int height() const { return height_; }
  int edge_x() const { return edge_x_; }
  int edge_y() const { return edge_y_; }
  const std::vector<int>& x_starts() const { return xs_; }
  const std::vector<int>& y_starts() const { return ys_; }
  size_t count() const { return xs_.size() * ys_.size(); }
  // Window k of the global order (row-major over y starts, then x starts).
  geo::Window window(size_t k) const;
  // The windows that intersect `block` (any rectangle inside the tile), in global order.
  std::vector<size_t> intersecting(const geo::Window& block) const;
  // Weights of window k along x (edge_x values) and y (edge_y values); its 2-D weight is wy[i] * wx[j].
  const std::vector<float>& weights_x(size_t k) const;
  const std::vector<float>& weights_y(size_t k) const;

 private:
  int width_, height_, edge_x_, edge_y_, margin_x_, margin_y_;
  std::vector<int> xs_, ys_;
  std::vector<std::vector<float>> wx_, wy_;  // per x start / y start
};

}  // namespace s2crop::infer
