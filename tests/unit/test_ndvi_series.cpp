// NDVI series for `s2crop ndvi`: the baselines (persistence, linear interpolation, per-class climatology), the
// gap-fill masks (deterministic, only observed months, at least one hidden and one visible) and the metrics.
// Torch-free on purpose: the masking and baselines are what the loss and the evaluation rely on.
#include <gtest/gtest.h>

#include <cmath>

#include "s2crop/common/errors.hpp"
#include "s2crop/samples/ndvi_series.hpp"

using namespace s2crop;
using namespace s2crop::samples;

TEST(NdviSeries, NdviOfReflectance) {
  EXPECT_FLOAT_EQ(ndvi_of(1000, 3000), 0.5f);
  EXPECT_FLOAT_EQ(ndvi_of(0, 0), 0.f);
  TrainingSetHeader h;
  h.bands = {"B04", "B8A"};
  std::vector<std::int16_t> x(12 * 2);
  for (int m = 0; m < 12; ++m) x[m * 2] = 1000, x[m * 2 + 1] = static_cast<std::int16_t>(1000 + 100 * m);
  auto v = ndvi_series(x, h, "t");
  ASSERT_EQ(v.size(), 12u);
  EXPECT_NEAR(v[11], 1100.0 / 3100.0, 1e-6);
  h.bands = {"B02", "B08"};
  EXPECT_THROW(ndvi_series(x, h, "t"), ConfigError);
}

TEST(NdviSeries, PersistenceAndLinearFill) {
  const float v[12] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f, 0.9f, 0.8f};
  std::uint8_t vis[12] = {0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_TRUE(std::isnan(persistence(v, vis, 0)));  // nothing known yet
  EXPECT_FLOAT_EQ(persistence(v, vis, 3), 0.2f);    // last known at or before month 3
  EXPECT_FLOAT_EQ(persistence(v, vis, 4), 0.5f);
  EXPECT_FLOAT_EQ(linear_fill(v, vis, 0), 0.2f);   // start holds the nearest
  EXPECT_NEAR(linear_fill(v, vis, 2), 0.2f + (0.5f - 0.2f) / 3.f, 1e-6);
  EXPECT_FLOAT_EQ(linear_fill(v, vis, 11), 0.5f);  // end holds the nearest
  std::uint8_t none[12] = {};
  EXPECT_TRUE(std::isnan(linear_fill(v, none, 5)));
}

TEST(NdviSeries, GapfillMaskHidesOnlyObservedMonthsDeterministically) {
  std::uint8_t clear[12] = {1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0};
  int hidden_total = 0;
  for (std::uint64_t step = 0; step < 200; ++step) {
    auto h = gapfill_hidden(clear, 42, 7, step, 0.25);
    EXPECT_EQ(h, gapfill_hidden(clear, 42, 7, step, 0.25));  // same on every rank
    int hidden = 0, visible = 0;
    for (int m = 0; m < 12; ++m) {
      if (!clear[m]) EXPECT_EQ(h[m], 0) << "an unobserved month can never be a target";
      hidden += h[m];
      visible += clear[m] && !h[m];
    }
    EXPECT_GE(hidden, 1);
    EXPECT_GE(visible, 1);
    hidden_total += hidden;
  }
  EXPECT_NEAR(hidden_total / 200.0 / 9.0, 0.25, 0.08);  // about the asked fraction of the 9 observed months
  EXPECT_NE(gapfill_hidden(clear, 42, 7, 1, 0.25), gapfill_hidden(clear, 42, 8, 1, 0.99));
  std::uint8_t one[12] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
  auto h = gapfill_hidden(one, 42, 7, 0, 0.9);
  for (int m = 0; m < 12; ++m) EXPECT_EQ(h[m], 0) << "a single observation stays visible";
}

TEST(NdviSeries, ClimatologyUsesObservedMonthsOnly) {
  // 2 classes; sample 0 (class 0) observed in months 0 and 2 only, its gap-filled value in month 1 is 9 (ignored).
  std::vector<float> ndvi(3 * 12, 9.f);
  std::vector<std::uint8_t> clear(3 * 12, 0), y = {0, 0, 1};
  ndvi[0] = 0.2f, clear[0] = 1;
  ndvi[2] = 0.4f, clear[2] = 1;
  ndvi[12 + 0] = 0.4f, clear[12 + 0] = 1;
  auto c = climatology(ndvi, clear, y, {0, 1, 2}, 3);
  EXPECT_NEAR(c.at(0, 0), 0.3, 1e-6);  // mean of the two class-0 observations
  EXPECT_NEAR(c.at(0, 1), 0.35, 1e-6);  // interpolated between months 0 and 2, not the gap-filled 9
  EXPECT_NEAR(c.at(0, 11), 0.4, 1e-6); // end holds the nearest
  EXPECT_NEAR(c.at(1, 0), 0.3, 1e-6);  // class 1 has no observation: all-class climatology
  EXPECT_NEAR(c.at(2, 5), 0.4, 1e-6);
}

TEST(NdviSeries, ErrorStats) {
  ErrorStats e;
  e.add(1.0, 0.0);
  e.add(0.0, 2.0);
  EXPECT_NEAR(e.rmse(), std::sqrt(2.5), 1e-12);
  EXPECT_NEAR(e.mae(), 1.5, 1e-12);
  EXPECT_NEAR(e.r2(), 1.0 - 5.0 / 2.0, 1e-12);
  ErrorStats perfect;
  for (double v : {0.1, 0.5, 0.9}) perfect.add(v, v);
  EXPECT_DOUBLE_EQ(perfect.r2(), 1.0);
}
