// assess --compare's bootstrap intervals against hand computations.
#include <gtest/gtest.h>

#include <cmath>

#include "s2crop/assess/compare.hpp"
#include "s2crop/common/errors.hpp"

namespace {

using s2crop::assess::compare_models;
using s2crop::assess::ModelPredictions;
using s2crop::assess::percentile;

TEST(Compare, PercentileInterpolatesLikeNumpy) {
  // numpy.percentile([1, 2, 3, 4], [2.5, 50, 97.5]) = 1.075, 2.5, 3.925
  EXPECT_NEAR(percentile({4, 1, 3, 2}, 0.025), 1.075, 1e-12);
  EXPECT_NEAR(percentile({4, 1, 3, 2}, 0.5), 2.5, 1e-12);
  EXPECT_NEAR(percentile({4, 1, 3, 2}, 0.975), 3.925, 1e-12);
  EXPECT_NEAR(percentile({NAN, 5, NAN}, 0.3), 5, 1e-12);
  EXPECT_TRUE(std::isnan(percentile({NAN}, 0.5)));
}

TEST(Compare, TwoUnitsByHand) {
  // Unit A (2 samples) right, unit B (2 samples) wrong: a resample of 2 units holds AA (p 1/4, OA 1), AB or BA
  // (p 1/2, OA 0.5) or BB (p 1/4, OA 0). The 2.5th percentile is 0, the 97.5th is 1; the point estimate 0.5.
  const std::vector<std::uint8_t> reference{0, 0, 1, 1};
  const std::vector<std::int64_t> unit{7, 7, 9, 9};
  const std::vector<ModelPredictions> models{{"m", {0, 0, 0, 0}}, {"n", {0, 0, 1, 1}}};
  const auto c = compare_models({"a", "b"}, reference, unit, models, 4000, 3);
  EXPECT_EQ(c.units, 2u);
  EXPECT_DOUBLE_EQ(c.models[0].overall.value, 0.5);
  EXPECT_DOUBLE_EQ(c.models[0].overall.lower, 0.0);
  EXPECT_DOUBLE_EQ(c.models[0].overall.upper, 1.0);
  // Model n is always right: its interval is the point.
  EXPECT_DOUBLE_EQ(c.models[1].overall.lower, 1.0);
  EXPECT_DOUBLE_EQ(c.models[1].overall.upper, 1.0);
  // Paired: m - n is 0 (AA), -0.5 (AB/BA) or -1 (BB) on the same resamples.
  ASSERT_EQ(c.pairs.size(), 1u);
  EXPECT_DOUBLE_EQ(c.pairs[0].overall.value, -0.5);
  EXPECT_DOUBLE_EQ(c.pairs[0].overall.lower, -1.0);
  EXPECT_DOUBLE_EQ(c.pairs[0].overall.upper, 0.0);
  EXPECT_FALSE(c.pairs[0].overall_clear());
}

TEST(Compare, OverallAccuracyIntervalMatchesTheBinomial) {
  // 400 independent samples, 320 right: the 95 % interval of a proportion is 0.8 -+ 1.96 sqrt(0.8 x 0.2 / 400) =
  // [0.7608, 0.8392]; the bootstrap's agrees within its own noise.
  std::vector<std::uint8_t> reference(400), right(400), half(400);
  std::vector<std::int64_t> unit(400);
  for (int k = 0; k < 400; ++k) {
    reference[static_cast<size_t>(k)] = static_cast<std::uint8_t>(k % 3);
    right[static_cast<size_t>(k)] = k % 5 == 0 ? static_cast<std::uint8_t>((k + 1) % 3) : reference[static_cast<size_t>(k)];
    half[static_cast<size_t>(k)] = k % 2 ? reference[static_cast<size_t>(k)] : static_cast<std::uint8_t>((k + 2) % 3);
    unit[static_cast<size_t>(k)] = k;
  }
  const auto c = compare_models({"a", "b", "c"}, reference, unit, {{"m", right}, {"h", half}}, 4000, 11);
  EXPECT_DOUBLE_EQ(c.models[0].overall.value, 0.8);
  const double half_width = 1.96 * std::sqrt(0.8 * 0.2 / 400);
  EXPECT_NEAR(c.models[0].overall.lower, 0.8 - half_width, 0.008);
  EXPECT_NEAR(c.models[0].overall.upper, 0.8 + half_width, 0.008);
  // 0.8 against 0.5 on 400 samples: clear.
  EXPECT_NEAR(c.pairs[0].overall.value, 0.3, 1e-12);
  EXPECT_TRUE(c.pairs[0].overall_clear());
  // The same seed, the same intervals.
  const auto again = compare_models({"a", "b", "c"}, reference, unit, {{"m", right}, {"h", half}}, 4000, 11);
  EXPECT_EQ(again.models[0].overall.lower, c.models[0].overall.lower);
  EXPECT_EQ(again.models[1].macro_f1.upper, c.models[1].macro_f1.upper);
}

TEST(Compare, BadInputsRefused) {
  const std::vector<std::uint8_t> reference{0, 1};
  const std::vector<std::int64_t> unit{0, 1};
  EXPECT_THROW(compare_models({"a", "b"}, reference, unit, {{"m", {0, 1}}}, 1000, 1), s2crop::Error);  // one model
  EXPECT_THROW(compare_models({"a", "b"}, reference, unit, {{"m", {0, 1}}, {"n", {0}}}, 1000, 1), s2crop::Error);
  EXPECT_THROW(compare_models({"a", "b"}, reference, unit, {{"m", {0, 1}}, {"n", {0, 2}}}, 1000, 1), s2crop::Error);
  EXPECT_THROW(compare_models({"a", "b"}, reference, unit, {{"m", {0, 1}}, {"n", {0, 1}}}, 10, 1), s2crop::Error);
}

}  // namespace
