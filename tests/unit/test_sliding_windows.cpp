// The sliding-window grid and blending weights of `segment predict` (infer/sliding_windows.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "s2crop/common/errors.hpp"
#include "s2crop/infer/sliding_windows.hpp"

using s2crop::infer::axis_weights;
using s2crop::infer::SlidingWindowGrid;
using s2crop::infer::window_starts;

TEST(SlidingWindows, StartsCoverTheAxisAndTheLastTouchesTheFarEdge) {
  EXPECT_EQ(window_starts(96, 32, 24), (std::vector<int>{0, 24, 48, 64}));
  EXPECT_EQ(window_starts(80, 32, 24), (std::vector<int>{0, 24, 48}));  // 48 + 32 = 80: exactly at the edge
  EXPECT_EQ(window_starts(32, 32, 24), (std::vector<int>{0}));
  EXPECT_EQ(window_starts(33, 32, 32), (std::vector<int>{0, 1}));
  for (int length : {1, 5, 31, 64, 100, 257, 1000})
    for (int edge : {1, 3, 16, 64, 128})
      for (int stride : {1, 7, 16, 96}) {
        if (edge > length || stride > edge) continue;
        auto s = window_starts(length, edge, stride);
        ASSERT_FALSE(s.empty());
        EXPECT_EQ(s.front(), 0);
        EXPECT_EQ(s.back() + edge, length) << "last window aligned to the far edge";
        for (size_t i = 1; i < s.size(); ++i) {
          EXPECT_GT(s[i], s[i - 1]) << "strictly increasing, no duplicate";
          EXPECT_LE(s[i] - s[i - 1], stride) << "no gap, regular stride up to the aligned last window";
          if (i + 1 < s.size()) EXPECT_EQ(s[i] - s[i - 1], stride);
        }
      }
  EXPECT_THROW(window_starts(10, 11, 1), s2crop::ConfigError);
  EXPECT_THROW(window_starts(10, 5, 0), s2crop::ConfigError);
}

TEST(SlidingWindows, WeightsArePositiveSymmetricAndBlendToOne) {
  for (int edge : {1, 2, 7, 32, 128})
    for (int margin : {0, 1, 8, 32, 100}) {
      auto w = axis_weights(edge, margin, true, true);
      ASSERT_EQ(w.size(), static_cast<size_t>(edge));
      for (size_t i = 0; i < w.size(); ++i) {
        EXPECT_GT(w[i], 0.f) << "edge " << edge << " margin " << margin << " i " << i;
        EXPECT_LE(w[i], 1.f);
        EXPECT_EQ(w[i], w[w.size() - 1 - i]) << "symmetric";
      }
      // monotone up to the middle
      for (size_t i = 1; i < w.size() / 2; ++i) EXPECT_GE(w[i], w[i - 1]);
    }
  // Two windows overlapping by exactly the margin: the weights of a pixel sum to 1 (partition of unity).
  const int edge = 32, margin = 8;
  auto w = axis_weights(edge, margin, true, true);
  for (int i = 0; i < margin; ++i) EXPECT_NEAR(w[static_cast<size_t>(edge - margin + i)] + w[static_cast<size_t>(i)], 1.f, 1e-6f);
  // the margin is clamped to half the window: a middle stays untouched, tapers never multiply
  auto narrow = axis_weights(6, 10, true, true);
  EXPECT_EQ(narrow[0], narrow[5]);
  EXPECT_LT(narrow[0], narrow[1]);
  EXPECT_LT(narrow[1], narrow[2]);
}

TEST(SlidingWindows, NoTaperOnTheTileBorder) {
  auto w = axis_weights(16, 4, false, true);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(w[static_cast<size_t>(i)], 1.f);
  EXPECT_LT(w[15], 0.5f);
  SlidingWindowGrid grid(100, 60, 32, 8);
  // first window along x: untapered left side (tile border), tapered right side (a neighbour follows)
  EXPECT_EQ(grid.weights_x(0).front(), 1.f);
  EXPECT_LT(grid.weights_x(0).back(), 1.f);
  // last window along x: aligned to the right border, untapered there
  const size_t last = grid.count() - 1;
  EXPECT_EQ(grid.window(last).x0 + grid.window(last).width, 100);
  EXPECT_EQ(grid.window(last).y0 + grid.window(last).height, 60);
  EXPECT_EQ(grid.weights_x(last).back(), 1.f);
  EXPECT_LT(grid.weights_x(last).front(), 1.f);
  EXPECT_EQ(grid.weights_y(last).back(), 1.f);
}

TEST(SlidingWindows, EveryPixelIsCoveredAndBlocksFindTheirWindowsInGlobalOrder) {
  for (auto [W, H, win, ov] : std::vector<std::array<int, 4>>{{96, 96, 32, 8}, {100, 37, 16, 5}, {257, 130, 128, 32},
                                                               {40, 40, 64, 16}, {7, 300, 32, 31}}) {
    SlidingWindowGrid grid(W, H, win, ov);
    EXPECT_EQ(grid.edge_x(), std::min(win, W));
    EXPECT_EQ(grid.edge_y(), std::min(win, H));
    std::vector<int> cover(static_cast<size_t>(W) * static_cast<size_t>(H), 0);
    std::vector<double> weight(cover.size(), 0);
    for (size_t k = 0; k < grid.count(); ++k) {
      auto w = grid.window(k);
      ASSERT_GE(w.x0, 0);
      ASSERT_GE(w.y0, 0);
      ASSERT_LE(w.x0 + w.width, W);
      ASSERT_LE(w.y0 + w.height, H);
      for (int y = 0; y < w.height; ++y)
        for (int x = 0; x < w.width; ++x) {
          const size_t p = static_cast<size_t>(w.y0 + y) * static_cast<size_t>(W) + static_cast<size_t>(w.x0 + x);
          ++cover[p];
          weight[p] += grid.weights_y(k)[static_cast<size_t>(y)] * grid.weights_x(k)[static_cast<size_t>(x)];
        }
    }
    for (size_t p = 0; p < cover.size(); ++p) {
      ASSERT_GE(cover[p], 1) << "pixel " << p << " of a " << W << "x" << H << " tile not covered";
      ASSERT_GT(weight[p], 0.0);
    }
    // Blocks of any size: exactly the windows that share a pixel with the block, in increasing (global) order.
    for (int bs : {16, 33, 1000}) {
      for (int by = 0; by < H; by += bs)
        for (int bx = 0; bx < W; bx += bs) {
          s2crop::geo::Window b{bx, by, std::min(bs, W - bx), std::min(bs, H - by)};
          auto ks = grid.intersecting(b);
          EXPECT_TRUE(std::is_sorted(ks.begin(), ks.end()));
          std::vector<size_t> expect;
          for (size_t k = 0; k < grid.count(); ++k) {
            auto w = grid.window(k);
            if (w.x0 < b.x0 + b.width && b.x0 < w.x0 + w.width && w.y0 < b.y0 + b.height && b.y0 < w.y0 + w.height)
              expect.push_back(k);
          }
          EXPECT_EQ(ks, expect);
        }
    }
  }
}

TEST(SlidingWindows, TileSmallerThanTheWindowGetsOneWindowOfItsSize) {
  SlidingWindowGrid grid(40, 20, 128, 32);
  ASSERT_EQ(grid.count(), 1u);
  auto w = grid.window(0);
  EXPECT_EQ(w.x0, 0);
  EXPECT_EQ(w.y0, 0);
  EXPECT_EQ(w.width, 40);
  EXPECT_EQ(w.height, 20);
  for (float v : grid.weights_x(0)) EXPECT_EQ(v, 1.f);  // both sides on the tile border: no taper at all
  for (float v : grid.weights_y(0)) EXPECT_EQ(v, 1.f);
  // smaller along one axis only
  SlidingWindowGrid tall(40, 300, 64, 16);
  EXPECT_EQ(tall.x_starts().size(), 1u);
  EXPECT_EQ(tall.edge_x(), 40);
  EXPECT_EQ(tall.y_starts(), (std::vector<int>{0, 48, 96, 144, 192, 236}));
}

TEST(SlidingWindows, BadOptionsAreConfigErrors) {
  EXPECT_THROW(SlidingWindowGrid(10, 10, 0, 0), s2crop::ConfigError);
  EXPECT_THROW(SlidingWindowGrid(10, 10, 8, 8), s2crop::ConfigError);
  EXPECT_THROW(SlidingWindowGrid(10, 10, 8, -1), s2crop::ConfigError);
  EXPECT_NO_THROW(SlidingWindowGrid(10, 10, 8, 7));
}
