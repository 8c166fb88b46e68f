// The classifier's series augmentation (train/augment.hpp): what each part does to a series, and that a sample's
// augmentation depends on its seed alone.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "s2crop/nn/model_spec.hpp"
#include "train/augment.hpp"

namespace {

using s2crop::train::augment_series;
using s2crop::train::SeriesAugmentation;

s2crop::nn::ModelSpec two_bands() {
  s2crop::nn::ModelSpec spec;
  spec.bands = {"B04", "B08"};
  spec.ndvi = true;                 // features: B04, B08, NDVI
  spec.mean = {0.1f, 0.3f, 0.5f};
  spec.stddev = {0.05f, 0.1f, 0.2f};
  return spec;
}

torch::Tensor ramp(int64_t batch) {  // [batch][12][3], month m of feature k = m + 10 k (+ 100 b)
  auto x = torch::empty({batch, 12, 3});
  auto a = x.accessor<float, 3>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t m = 0; m < 12; ++m)
      for (int64_t k = 0; k < 3; ++k) a[b][m][k] = static_cast<float>(m + 10 * k + 100 * b);
  return x;
}

TEST(SeriesAugmentation, GainPerBandKeepsNdviAndIsAnAffineMapOfReflectance) {
  SeriesAugmentation a;
  a.jitter = 0.2;
  a.mask_months = 0;
  a.shift = 0;
  const auto spec = two_bands();
  auto x = ramp(1), before = x.clone();
  augment_series(x, {12345}, a, spec);
  for (int64_t k = 0; k < 2; ++k) {
    // In reflectance units r' = r f: x' sd + mean = (x sd + mean) f  ->  one f for all months of the band.
    const double r0 = before[0][0][k].item<double>() * spec.stddev[k] + spec.mean[k];
    const double f = (x[0][0][k].item<double>() * spec.stddev[k] + spec.mean[k]) / r0;
    EXPECT_GE(f, 0.8);
    EXPECT_LE(f, 1.2);
    EXPECT_NE(f, 1.0);
    for (int64_t m = 1; m < 12; ++m) {
      const double r = before[0][m][k].item<double>() * spec.stddev[k] + spec.mean[k];
      EXPECT_NEAR(x[0][m][k].item<double>() * spec.stddev[k] + spec.mean[k], r * f, 1e-4);
    }
  }
  EXPECT_TRUE(torch::equal(x.select(2, 2), before.select(2, 2)));  // NDVI untouched
}

TEST(SeriesAugmentation, MaskedMonthsAreInterpolatedFromKeptNeighbours) {
  SeriesAugmentation a;
  a.jitter = 0;
  a.mask_months = 0.5;
  a.shift = 0;
  auto x = ramp(8), before = x.clone();
  std::vector<std::uint64_t> seeds{1, 2, 3, 4, 5, 6, 7, 8};
  augment_series(x, seeds, a, two_bands());
  // The series is linear in the month: interpolation between kept months gives back the same values inside the
  // season; only months before the first / after the last kept one change (copied from it). At least one sample
  // masked some month.
  int changed_edges = 0;
  for (int64_t b = 0; b < 8; ++b) {
    for (int64_t m = 0; m < 12; ++m) {
      const float v = x[b][m][0].item<float>(), r = before[b][m][0].item<float>();
      if (v != r) ++changed_edges;
      // Any value is one of the series' own (a copy) or the same (interpolated): never outside the season's range.
      EXPECT_GE(v, before[b][0][0].item<float>());
      EXPECT_LE(v, before[b][11][0].item<float>());
    }
  }
  EXPECT_GT(changed_edges, 0);
}

TEST(SeriesAugmentation, DependsOnTheSampleSeedAlone) {
  SeriesAugmentation a;  // the defaults: every part
  const auto spec = two_bands();
  auto both = ramp(2);
  augment_series(both, {77, 99}, a, spec);
  auto second = ramp(2).narrow(0, 1, 1).contiguous();
  augment_series(second, {99}, a, spec);
  EXPECT_TRUE(torch::equal(both.narrow(0, 1, 1), second));  // the same sample, seed 99, in another batch
  auto other = ramp(2).narrow(0, 1, 1).contiguous();
  augment_series(other, {100}, a, spec);
  EXPECT_FALSE(torch::equal(other, second));
  SeriesAugmentation off;
  off.jitter = off.mask_months = off.shift = 0;
  auto same = ramp(1), ref = same.clone();
  augment_series(same, {5}, off, spec);
  EXPECT_TRUE(torch::equal(same, ref));
}

}  // namespace
