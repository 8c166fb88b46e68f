// Unit tests of the monthly compositing kernels (include/s2crop/composite/kernels.hpp).
// Every kernel is checked against a deliberately naive reference (std::sort of a whole vector, double arithmetic
// with std::floor(x + 0.5), O(d^2) dilation) on random data, plus hand-computed edge cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "s2crop/common/errors.hpp"
#include "s2crop/composite/kernels.hpp"

namespace {

using s2crop::composite::apply_offset;
using s2crop::composite::composite_month;
using s2crop::composite::fill_gaps;
using s2crop::composite::kMonths;
using s2crop::composite::kNoData;
using s2crop::composite::Method;
using s2crop::composite::parse_method;
using s2crop::composite::scl_to_valid;

using I16 = std::vector<std::int16_t>;
using U8 = std::vector<std::uint8_t>;

// ---------------------------------------------------------------------------------------------------------------
// Reference implementations (different code from the kernels on purpose).

std::int16_t ref_median(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  if (n % 2 == 1) return static_cast<std::int16_t>(v[n / 2]);
  const double m = (static_cast<double>(v[n / 2 - 1]) + static_cast<double>(v[n / 2])) / 2.0;
  return static_cast<std::int16_t>(std::floor(m + 0.5));
}

std::int16_t ref_mean(const std::vector<int>& v) {
  double s = 0;
  for (int x : v) s += x;
  return static_cast<std::int16_t>(std::floor(s / static_cast<double>(v.size()) + 0.5));
}

void ref_composite(const I16& obs, const U8& valid, std::size_t n_obs, std::size_t n_bands, std::size_t n_pixels,
                   Method method, I16& out, U8& count) {
  out.assign(n_bands * n_pixels, 0);
  count.assign(n_pixels, 0);
  for (std::size_t p = 0; p < n_pixels; ++p) {
    std::size_t c = 0;
    for (std::size_t o = 0; o < n_obs; ++o) c += valid[o * n_pixels + p] ? 1 : 0;
    count[p] = static_cast<std::uint8_t>(c > 255 ? 255 : c);
    for (std::size_t b = 0; b < n_bands; ++b) {
      std::vector<int> vals;
      for (std::size_t o = 0; o < n_obs; ++o)
        if (valid[o * n_pixels + p]) vals.push_back(obs[(o * n_bands + b) * n_pixels + p]);
      if (vals.empty())
        out[b * n_pixels + p] = kNoData;
      else
        out[b * n_pixels + p] = method == Method::Median ? ref_median(vals) : ref_mean(vals);
    }
  }
}

void ref_fill_gaps(I16& values, const U8& count, std::size_t n_months, std::size_t n_bands, std::size_t n_pixels) {
  const I16 in = values;
  auto at = [&](std::size_t m, std::size_t b, std::size_t p) { return m * n_bands * n_pixels + b * n_pixels + p; };
  for (std::size_t p = 0; p < n_pixels; ++p) {
    for (std::size_t b = 0; b < n_bands; ++b) {
      for (std::size_t m = 0; m < n_months; ++m) {
        if (count[m * n_pixels + p] != 0) continue;
        long prev = -1, next = -1;
        for (long k = static_cast<long>(m) - 1; k >= 0; --k)
          if (count[static_cast<std::size_t>(k) * n_pixels + p] != 0) { prev = k; break; }
        for (std::size_t k = m + 1; k < n_months; ++k)
          if (count[k * n_pixels + p] != 0) { next = static_cast<long>(k); break; }
        std::int16_t r;
        if (prev < 0 && next < 0) {
          r = kNoData;
        } else if (prev < 0) {
          r = in[at(static_cast<std::size_t>(next), b, p)];
        } else if (next < 0) {
          r = in[at(static_cast<std::size_t>(prev), b, p)];
        } else {
          const double v0 = in[at(static_cast<std::size_t>(prev), b, p)];
          const double v1 = in[at(static_cast<std::size_t>(next), b, p)];
          const double mm = static_cast<double>(m);
          const double x = (v0 * (next - mm) + v1 * (mm - prev)) / static_cast<double>(next - prev);
          r = static_cast<std::int16_t>(std::floor(x + 0.5));
        }
        values[at(m, b, p)] = r;
      }
    }
  }
}

U8 ref_scl(const U8& scl, int w, int h, const U8& classes, int d) {
  U8 out(scl.size());
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      bool ok = classes[scl[y * w + x]] != 0;
      for (int yy = y - d; yy <= y + d && ok; ++yy)
        for (int xx = x - d; xx <= x + d && ok; ++xx) {
          if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
          const int c = scl[yy * w + xx];
          if (c == 3 || c == 8 || c == 9 || c == 10) ok = false;
        }
      out[y * w + x] = ok ? 1 : 0;
    }
  return out;
}

U8 default_classes() {
  U8 c(256, 0);
  c[4] = c[5] = c[6] = c[7] = 1;
  return c;
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers for the kernels under test.

struct Result {
  I16 out;
  U8 count;
};

Result run_composite(const I16& obs, const U8& valid, std::size_t n_obs, std::size_t n_bands, std::size_t n_pixels,
                     Method method) {
  Result r;
  r.out.assign(n_bands * n_pixels, 12345);
  r.count.assign(n_pixels, 77);
  composite_month(obs.data(), valid.data(), n_obs, n_bands, n_pixels, method, r.out.data(), r.count.data());
  return r;
}

// Single pixel, single band, all observations clear.
std::int16_t one(const std::vector<int>& vals, Method method) {
  I16 obs(vals.begin(), vals.end());
  U8 valid(vals.size(), 1);
  return run_composite(obs, valid, vals.size(), 1, 1, method).out[0];
}

// ---------------------------------------------------------------------------------------------------------------
// parse_method

TEST(CompositeKernelParse, KnownNames) {
  EXPECT_EQ(parse_method("median"), Method::Median);
  EXPECT_EQ(parse_method("mean"), Method::Mean);
}

TEST(CompositeKernelParse, UnknownNameThrowsConfigError) {
  EXPECT_THROW(parse_method("average"), s2crop::ConfigError);
  EXPECT_THROW(parse_method(""), s2crop::ConfigError);
  EXPECT_THROW(parse_method("max"), s2crop::ConfigError);
}

// ---------------------------------------------------------------------------------------------------------------
// composite_month: explicit cases

TEST(CompositeKernelMonth, NoClearObservationGivesNoDataAndZeroCount) {
  // 3 obs x 2 bands x 2 pixels, nothing clear.
  I16 obs(3 * 2 * 2, 500);
  U8 valid(3 * 2, 0);
  for (Method m : {Method::Median, Method::Mean}) {
    Result r = run_composite(obs, valid, 3, 2, 2, m);
    EXPECT_EQ(r.out, I16(4, kNoData));
    EXPECT_EQ(r.count, U8(2, 0));
  }
}

TEST(CompositeKernelMonth, ZeroObservations) {
  I16 obs;
  U8 valid;
  for (Method m : {Method::Median, Method::Mean}) {
    Result r = run_composite(obs, valid, 0, 3, 5, m);
    EXPECT_EQ(r.out, I16(15, kNoData));
    EXPECT_EQ(r.count, U8(5, 0));
  }
}

TEST(CompositeKernelMonth, OneObservation) {
  EXPECT_EQ(one({1234}, Method::Median), 1234);
  EXPECT_EQ(one({1234}, Method::Mean), 1234);
  EXPECT_EQ(one({-700}, Method::Median), -700);
  EXPECT_EQ(one({-700}, Method::Mean), -700);
}

TEST(CompositeKernelMonth, EvenCountMedianRoundsHalfUp) {
  EXPECT_EQ(one({1, 2}, Method::Median), 2);
  EXPECT_EQ(one({2, 1}, Method::Median), 2);
  EXPECT_EQ(one({-3, -2}, Method::Median), -2);
  EXPECT_EQ(one({-2, -3}, Method::Median), -2);
  EXPECT_EQ(one({10, 13, 20, 40}, Method::Median), 17);
  EXPECT_EQ(one({40, 20, 10, 13}, Method::Median), 17);
  EXPECT_EQ(one({-1, 0}, Method::Median), 0);
  EXPECT_EQ(one({-5, 2}, Method::Median), -1);   // -1.5 -> -1
  EXPECT_EQ(one({-32767, 32767}, Method::Median), 0);
  EXPECT_EQ(one({32766, 32767}, Method::Median), 32767);
  EXPECT_EQ(one({-32767, -32766}, Method::Median), -32766);
}

TEST(CompositeKernelMonth, OddCountMedian) {
  EXPECT_EQ(one({5, 1, 3}, Method::Median), 3);
  EXPECT_EQ(one({-100, 50, -20, 7, 7}, Method::Median), 7);
  EXPECT_EQ(one({-1, -9, -4}, Method::Median), -4);
}

TEST(CompositeKernelMonth, MeanRoundsHalfUp) {
  EXPECT_EQ(one({1, 2}, Method::Mean), 2);          // 1.5 -> 2
  EXPECT_EQ(one({-3, -2}, Method::Mean), -2);       // -2.5 -> -2
  EXPECT_EQ(one({10, 13, 20, 40}, Method::Mean), 21);  // 20.75 -> 21
  EXPECT_EQ(one({1, 1, 2}, Method::Mean), 1);       // 1.333 -> 1
  EXPECT_EQ(one({1, 2, 2}, Method::Mean), 2);       // 1.667 -> 2
  EXPECT_EQ(one({-1, -1, -2}, Method::Mean), -1);   // -1.333 -> -1
  EXPECT_EQ(one({-1, -2, -2}, Method::Mean), -2);   // -1.667 -> -2
  EXPECT_EQ(one({32767, 32767, 32767}, Method::Mean), 32767);
  EXPECT_EQ(one({-32767, -32767}, Method::Mean), -32767);
}

TEST(CompositeKernelMonth, MaskedObservationsAreIgnored) {
  // 4 obs, 1 band, 2 pixels. Pixel 0: obs 1 and 3 clear; pixel 1: obs 0 clear only. Masked entries hold garbage.
  const std::size_t np = 2;
  I16 obs = {kNoData, 9, /*o1*/ 100, 32767, /*o2*/ -32767, kNoData, /*o3*/ 300, 1};
  U8 valid = {0, 1, /*o1*/ 1, 0, /*o2*/ 0, 0, /*o3*/ 1, 0};
  Result med = run_composite(obs, valid, 4, 1, np, Method::Median);
  EXPECT_EQ(med.out, (I16{200, 9}));
  EXPECT_EQ(med.count, (U8{2, 1}));
  Result mean = run_composite(obs, valid, 4, 1, np, Method::Mean);
  EXPECT_EQ(mean.out, (I16{200, 9}));
  EXPECT_EQ(mean.count, (U8{2, 1}));
}

TEST(CompositeKernelMonth, BandsShareTheObservationMask) {
  // 3 obs, 2 bands, 1 pixel: obs 1 masked.
  I16 obs = {10, -10, /*o1*/ 999, 999, /*o2*/ 30, -40};
  U8 valid = {1, 0, 1};
  Result r = run_composite(obs, valid, 3, 2, 1, Method::Median);
  EXPECT_EQ(r.out, (I16{20, -25}));
  EXPECT_EQ(r.count, (U8{2}));
}

TEST(CompositeKernelMonth, CountSaturatesAt255) {
  for (std::size_t n_obs : {254u, 255u, 256u, 300u}) {
    I16 obs(n_obs);
    for (std::size_t o = 0; o < n_obs; ++o) obs[o] = static_cast<std::int16_t>(o);
    U8 valid(n_obs, 1);
    for (Method m : {Method::Median, Method::Mean}) {
      Result r = run_composite(obs, valid, n_obs, 1, 1, m);
      EXPECT_EQ(r.count[0], std::min<std::size_t>(n_obs, 255)) << n_obs;
      // values 0..n-1: median and mean both (n-1)/2 rounded half up
      EXPECT_EQ(r.out[0], static_cast<std::int16_t>(n_obs / 2)) << n_obs;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// composite_month: random data against the reference

TEST(CompositeKernelMonth, RandomAgainstReference) {
  std::mt19937 rng(20240611);
  const std::size_t pixel_sizes[] = {1, 2, 7, 64, 333, 1030};
  const std::size_t obs_sizes[] = {0, 1, 2, 3, 4, 5, 6, 12, 13, 31, 32, 33, 34, 64, 65, 200, 256, 257, 300};
  const std::size_t band_sizes[] = {1, 3, 10};
  const double densities[] = {0.0, 0.05, 0.5, 1.0};
  int cases = 0;
  for (std::size_t np : pixel_sizes)
    for (std::size_t no : obs_sizes)
      for (std::size_t nb : band_sizes)
        for (double dens : densities) {
          if (np * no * nb > 300000) continue;
          // Alternate between the full int16 range and a narrow range (many ties).
          const bool narrow = (cases % 2) == 1;
          std::uniform_int_distribution<int> val(narrow ? -5 : -32767, narrow ? 5 : 32767);
          std::uniform_int_distribution<int> garbage(-32768, 32767);
          std::bernoulli_distribution clear(dens);
          std::bernoulli_distribution extreme(0.1);
          const int extremes[4] = {-32768, -32767, 32766, 32767};
          U8 valid(no * np);
          for (auto& v : valid) v = clear(rng) ? 1 : 0;
          I16 obs(no * nb * np);
          for (std::size_t o = 0; o < no; ++o)
            for (std::size_t i = 0; i < nb * np; ++i) {
              const std::size_t p = i % np;
              int x = valid[o * np + p] ? val(rng) : garbage(rng);
              // Some clear values at the extremes (32767 equals the network's sentinel; even kNoData is a value
              // to the kernel once marked clear).
              if (!narrow && valid[o * np + p] && extreme(rng)) x = extremes[garbage(rng) & 3];
              obs[o * nb * np + i] = static_cast<std::int16_t>(x);
            }
          for (Method m : {Method::Median, Method::Mean}) {
            I16 ref_out;
            U8 ref_count;
            ref_composite(obs, valid, no, nb, np, m, ref_out, ref_count);
            Result r = run_composite(obs, valid, no, nb, np, m);
            ASSERT_EQ(r.count, ref_count) << "np=" << np << " no=" << no << " nb=" << nb << " dens=" << dens;
            ASSERT_EQ(r.out, ref_out) << "np=" << np << " no=" << no << " nb=" << nb << " dens=" << dens
                                      << " method=" << (m == Method::Median ? "median" : "mean");
          }
          ++cases;
        }
  EXPECT_GT(cases, 500);
}

// ---------------------------------------------------------------------------------------------------------------
// fill_gaps: explicit cases

// One pixel, one band, 12 months; `filled` lists (month, value).
I16 fill_one(const std::vector<std::pair<int, int>>& filled) {
  I16 v(kMonths, kNoData);
  U8 c(kMonths, 0);
  for (auto [m, x] : filled) {
    v[m] = static_cast<std::int16_t>(x);
    c[m] = 3;
  }
  fill_gaps(v.data(), c.data(), kMonths, 1, 1);
  return v;
}

TEST(GapFillKernel, AllMonthsEmptyStaysNoData) {
  EXPECT_EQ(fill_one({}), I16(kMonths, kNoData));
  // Several bands and pixels, all empty.
  I16 v(kMonths * 2 * 3, kNoData);
  U8 c(kMonths * 3, 0);
  fill_gaps(v.data(), c.data(), kMonths, 2, 3);
  EXPECT_EQ(v, I16(kMonths * 2 * 3, kNoData));
}

TEST(GapFillKernel, OnlyFirstMonthFilled) {
  EXPECT_EQ(fill_one({{0, 321}}), I16(kMonths, 321));
}

TEST(GapFillKernel, OnlyLastMonthFilled) {
  EXPECT_EQ(fill_one({{11, -45}}), I16(kMonths, -45));
}

TEST(GapFillKernel, InterpolationRoundsHalfUp) {
  I16 v = fill_one({{0, 100}, {3, 200}});
  EXPECT_EQ(v[0], 100);
  EXPECT_EQ(v[1], 133);
  EXPECT_EQ(v[2], 167);
  EXPECT_EQ(v[3], 200);
  for (int m = 4; m < kMonths; ++m) EXPECT_EQ(v[m], 200) << m;
}

TEST(GapFillKernel, EndsHoldNearestValue) {
  I16 v = fill_one({{3, 10}, {5, 20}, {8, 50}});
  const I16 expected = {10, 10, 10, 10, 15, 20, 30, 40, 50, 50, 50, 50};
  EXPECT_EQ(v, expected);
}

TEST(GapFillKernel, NegativeAndHalfValues) {
  // (1, -3) -> month 1: -1 exactly; (0,-3),(2,-2): month 1 = -2.5 -> -2; (0,1),(2,2): 1.5 -> 2
  EXPECT_EQ(fill_one({{0, 1}, {2, -3}})[1], -1);
  EXPECT_EQ(fill_one({{0, -3}, {2, -2}})[1], -2);
  EXPECT_EQ(fill_one({{0, 1}, {2, 2}})[1], 2);
  // Long gap with negatives: 0=-100, 11=100 -> month m: -100 + 200 m / 11
  I16 v = fill_one({{0, -100}, {11, 100}});
  for (int m = 0; m < kMonths; ++m)
    EXPECT_EQ(v[m], static_cast<std::int16_t>(std::floor(-100.0 + 200.0 * m / 11.0 + 0.5))) << m;
  // Extremes do not overflow.
  I16 e = fill_one({{0, -32767}, {2, 32767}});
  EXPECT_EQ(e[1], 0);
  I16 e2 = fill_one({{0, 32767}, {3, 32766}});
  EXPECT_EQ(e2[1], 32767);  // 32766.667
  EXPECT_EQ(e2[2], 32766);  // 32766.333
}

TEST(GapFillKernel, FilledMonthsAreUntouched) {
  // Count > 0 months keep their value even if it is unusual; all full -> unchanged.
  I16 v(kMonths);
  U8 c(kMonths, 1);
  for (int m = 0; m < kMonths; ++m) v[m] = static_cast<std::int16_t>(m * 7 - 30);
  I16 before = v;
  fill_gaps(v.data(), c.data(), kMonths, 1, 1);
  EXPECT_EQ(v, before);
}

TEST(GapFillKernel, BandsAndPixelsIndependent) {
  // 12 months, 2 bands, 2 pixels. Pixel 0 filled in months 0 and 2; pixel 1 only in month 5.
  const std::size_t nb = 2, np = 2;
  I16 v(kMonths * nb * np, kNoData);
  U8 c(kMonths * np, 0);
  auto at = [&](std::size_t m, std::size_t b, std::size_t p) { return m * nb * np + b * np + p; };
  c[0 * np + 0] = 1;
  c[2 * np + 0] = 1;
  c[5 * np + 1] = 1;
  v[at(0, 0, 0)] = 10;
  v[at(0, 1, 0)] = -10;
  v[at(2, 0, 0)] = 20;
  v[at(2, 1, 0)] = -20;
  v[at(5, 0, 1)] = 7;
  v[at(5, 1, 1)] = 8;
  fill_gaps(v.data(), c.data(), kMonths, nb, np);
  EXPECT_EQ(v[at(1, 0, 0)], 15);
  EXPECT_EQ(v[at(1, 1, 0)], -15);
  EXPECT_EQ(v[at(11, 0, 0)], 20);
  EXPECT_EQ(v[at(11, 1, 0)], -20);
  for (std::size_t m = 0; m < kMonths; ++m) {
    EXPECT_EQ(v[at(m, 0, 1)], 7) << m;
    EXPECT_EQ(v[at(m, 1, 1)], 8) << m;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// fill_gaps: random data against the reference

TEST(GapFillKernel, RandomAgainstReference) {
  std::mt19937 rng(777);
  const std::size_t month_sizes[] = {1, 2, 3, 12, 13, 24, 63, 64, 65, 100};
  const std::size_t pixel_sizes[] = {1, 5, 64, 257};
  const std::size_t band_sizes[] = {1, 4, 10};
  const double densities[] = {0.0, 0.05, 0.5, 1.0};
  int cases = 0;
  for (std::size_t nm : month_sizes)
    for (std::size_t np : pixel_sizes)
      for (std::size_t nb : band_sizes)
        for (double dens : densities) {
          std::uniform_int_distribution<int> val(-32767, 32767);
          std::uniform_int_distribution<int> cnt(1, 255);
          std::bernoulli_distribution filled(dens);
          std::bernoulli_distribution extreme(0.2);
          const int extremes[4] = {-32768, -32767, 32766, 32767};
          U8 c(nm * np);
          for (auto& x : c) x = filled(rng) ? static_cast<std::uint8_t>(cnt(rng)) : 0;
          I16 v(nm * nb * np);
          for (std::size_t m = 0; m < nm; ++m)
            for (std::size_t i = 0; i < nb * np; ++i)
              v[m * nb * np + i] = c[m * np + i % np]
                                       ? static_cast<std::int16_t>(extreme(rng) ? extremes[cnt(rng) & 3] : val(rng))
                                       : kNoData;
          I16 ref = v;
          ref_fill_gaps(ref, c, nm, nb, np);
          fill_gaps(v.data(), c.data(), nm, nb, np);
          ASSERT_EQ(v, ref) << "nm=" << nm << " np=" << np << " nb=" << nb << " dens=" << dens;
          ++cases;
        }
  EXPECT_EQ(cases, 10 * 4 * 3 * 4);
}

TEST(GapFillKernel, SeasonsWithoutInnerGapsAndAnythingInEmptyMonths) {
  // What compositing produces: the season seen in one month or in consecutive ones (no empty month between two
  // filled ones, the kernel's fast path), chunks of 1024 pixels where every pixel has the same months or not, some
  // pixels never seen, a few with inner gaps in some chunks only; empty months hold garbage, not kNoData.
  std::mt19937 rng(2026);
  const std::size_t nm = 12, nb = 3;
  for (std::size_t np : {std::size_t{1024}, std::size_t{3000}, std::size_t{4096 + 17}}) {
    for (int variant = 0; variant < 4; ++variant) {
      U8 c(nm * np, 0);
      std::uniform_int_distribution<int> month(0, static_cast<int>(nm) - 1);
      const int uniform_a = month(rng), uniform_b = std::min<int>(uniform_a + variant, static_cast<int>(nm) - 1);
      for (std::size_t p = 0; p < np; ++p) {
        const std::size_t chunk = p / 1024;
        int a = uniform_a, b = uniform_b;
        if (chunk % 2 == 1 || variant == 3) {  // varied lanes: own run, or none
          a = month(rng);
          b = std::min<int>(a + month(rng) % 4, static_cast<int>(nm) - 1);
          if (rng() % 7 == 0) a = b + 1;  // never seen
        }
        for (int m = a; m <= b; ++m) c[static_cast<std::size_t>(m) * np + p] = static_cast<std::uint8_t>(1 + rng() % 5);
        if (chunk == 2 && rng() % 50 == 0) {  // an inner gap: the interpolating path for this chunk
          c[0 * np + p] = 1;
          c[(nm - 1) * np + p] = 1;
        }
      }
      I16 v(nm * nb * np);
      std::uniform_int_distribution<int> val(-32768, 32767);
      for (auto& x : v) x = static_cast<std::int16_t>(val(rng));
      I16 ref = v;
      ref_fill_gaps(ref, c, nm, nb, np);
      fill_gaps(v.data(), c.data(), nm, nb, np);
      ASSERT_EQ(v, ref) << "np=" << np << " variant=" << variant;
    }
  }
}

TEST(GapFillKernel, LongGapsWithExtremeValues) {
  // 64 months (the longest gaps the chunked path handles), 40 pixels: pixel p is filled only in months a and b
  // with extreme values, so every rounding case of long interpolations is exercised.
  const std::size_t nm = 64, np = 40;
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> month(0, 63);
  const int extremes[4] = {-32768, -32767, 32766, 32767};
  I16 v(nm * np, kNoData);
  U8 c(nm * np, 0);
  for (std::size_t p = 0; p < np; ++p) {
    std::size_t a = p == 0 ? 0 : static_cast<std::size_t>(month(rng));
    std::size_t b = p == 0 ? 63 : static_cast<std::size_t>(month(rng));
    c[a * np + p] = c[b * np + p] = 1;
    v[a * np + p] = static_cast<std::int16_t>(extremes[p & 3]);
    v[b * np + p] = static_cast<std::int16_t>(extremes[(p >> 2) & 3]);
  }
  I16 ref = v;
  ref_fill_gaps(ref, c, nm, 1, np);
  fill_gaps(v.data(), c.data(), nm, 1, np);
  EXPECT_EQ(v, ref);
}

// ---------------------------------------------------------------------------------------------------------------
// scl_to_valid

U8 run_scl(const U8& scl, int w, int h, const U8& classes, int d) {
  U8 out(scl.size(), 42);
  scl_to_valid(scl.data(), w, h, classes.data(), d, out.data());
  return out;
}

TEST(SclKernel, ClassesWithoutDilation) {
  const U8 classes = default_classes();
  U8 scl(12);
  for (int i = 0; i < 12; ++i) scl[i] = static_cast<std::uint8_t>(i);
  const U8 expected = {0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0};
  EXPECT_EQ(run_scl(scl, 12, 1, classes, 0), expected);
  EXPECT_EQ(run_scl(scl, 3, 4, classes, 0), expected);
}

TEST(SclKernel, OptionalClassesAreConfigurable) {
  U8 classes = default_classes();
  classes[2] = 1;
  classes[11] = 1;
  const U8 scl = {2, 11, 4, 1};
  EXPECT_EQ(run_scl(scl, 4, 1, classes, 0), (U8{1, 1, 1, 0}));
}

TEST(SclKernel, DilationInTheMiddle) {
  // 7x7 vegetation with one cloud in the centre, dilation 2 -> a 5x5 masked square.
  const int w = 7, h = 7;
  U8 scl(w * h, 4);
  scl[3 * w + 3] = 9;
  U8 out = run_scl(scl, w, h, default_classes(), 2);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const bool masked = std::abs(x - 3) <= 2 && std::abs(y - 3) <= 2;
      EXPECT_EQ(out[y * w + x], masked ? 0 : 1) << x << "," << y;
    }
}

TEST(SclKernel, DilationAtImageBorders) {
  // Shadow in the top-left corner and cloud on the right border, dilation 1.
  const int w = 5, h = 4;
  U8 scl(w * h, 5);
  scl[0] = 3;           // (0,0)
  scl[2 * w + 4] = 8;   // (4,2)
  const U8 expected = {
      0, 0, 1, 1, 1,  //
      0, 0, 1, 0, 0,  //
      1, 1, 1, 0, 0,  //
      1, 1, 1, 0, 0,  //
  };
  EXPECT_EQ(run_scl(scl, w, h, default_classes(), 1), expected);
  // Dilation larger than the image masks everything.
  EXPECT_EQ(run_scl(scl, w, h, default_classes(), 10), U8(w * h, 0));
}

TEST(SclKernel, DilationZeroMasksOnlyCloudPixels) {
  const int w = 4, h = 3;
  U8 scl(w * h, 4);
  scl[1 * w + 1] = 10;
  U8 expected(w * h, 1);
  expected[1 * w + 1] = 0;
  EXPECT_EQ(run_scl(scl, w, h, default_classes(), 0), expected);
}

TEST(SclKernel, NonCloudInvalidClassesAreNotDilated) {
  // Class 0 (no data), 1 (saturated) and 11 (snow) are invalid but not dilated.
  const int w = 5, h = 1;
  const U8 scl = {4, 0, 4, 11, 4};
  EXPECT_EQ(run_scl(scl, w, h, default_classes(), 2), (U8{1, 0, 1, 0, 1}));
}

TEST(SclKernel, SinglePixelAndSingleRowColumn) {
  EXPECT_EQ(run_scl(U8{4}, 1, 1, default_classes(), 3), U8{1});
  EXPECT_EQ(run_scl(U8{9}, 1, 1, default_classes(), 3), U8{0});
  EXPECT_EQ(run_scl((U8{4, 4, 4, 3, 4, 4, 4, 4}), 8, 1, default_classes(), 2), (U8{1, 0, 0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(run_scl((U8{4, 4, 4, 3, 4, 4, 4, 4}), 1, 8, default_classes(), 2), (U8{1, 0, 0, 0, 0, 0, 1, 1}));
}

TEST(SclKernel, RandomAgainstBruteForce) {
  std::mt19937 rng(4242);
  const std::pair<int, int> dims[] = {{1, 1}, {1, 9}, {9, 1}, {2, 3}, {17, 13}, {64, 5}, {33, 47}};
  const int dilations[] = {0, 1, 2, 3, 5, 20};
  const double cloud_densities[] = {0.0, 0.05, 0.5, 1.0};
  std::uniform_int_distribution<int> cls(0, 11);
  std::uniform_int_distribution<int> cloud_cls(0, 3);
  const int clouds[] = {3, 8, 9, 10};
  int cases = 0;
  for (auto [w, h] : dims)
    for (int d : dilations)
      for (double dens : cloud_densities) {
        std::bernoulli_distribution is_cloud(dens);
        U8 scl(static_cast<std::size_t>(w * h));
        for (auto& s : scl) {
          if (is_cloud(rng)) {
            s = static_cast<std::uint8_t>(clouds[cloud_cls(rng)]);
          } else {
            int c;
            do c = cls(rng);
            while (c == 3 || c == 8 || c == 9 || c == 10);
            s = static_cast<std::uint8_t>(c);
          }
        }
        U8 classes = default_classes();
        if (cases % 3 == 0) classes[11] = 1;
        ASSERT_EQ(run_scl(scl, w, h, classes, d), ref_scl(scl, w, h, classes, d))
            << "w=" << w << " h=" << h << " d=" << d << " dens=" << dens;
        ++cases;
      }
  EXPECT_EQ(cases, 7 * 6 * 4);
}

// ---------------------------------------------------------------------------------------------------------------
// apply_offset

TEST(OffsetKernel, HandComputedCases) {
  const std::vector<std::uint16_t> dn = {1000, 0, 65535, 1, 11000};
  I16 out(dn.size(), 7);
  U8 valid(dn.size(), 1);
  apply_offset(dn.data(), dn.size(), -1000, true, 65535, out.data(), valid.data());
  EXPECT_EQ(valid, (U8{1, 0, 0, 1, 1}));
  EXPECT_EQ(out[0], 0);       // DN 1000 with offset -1000 -> 0
  EXPECT_EQ(out[3], -999);    // negative reflectance is kept
  EXPECT_EQ(out[4], 10000);
}

TEST(OffsetKernel, ClampsToInt16Range) {
  const std::vector<std::uint16_t> dn = {65534, 32767, 32768, 65535};
  I16 out(dn.size());
  U8 valid(dn.size(), 1);
  apply_offset(dn.data(), dn.size(), 0, false, 0, out.data(), valid.data());
  EXPECT_EQ(out, (I16{32767, 32767, 32767, 32767}));
  EXPECT_EQ(valid, U8(4, 1));  // 65535 is valid without a declared nodata
  // Large negative offset clamps at -32767, never reaching kNoData.
  const std::vector<std::uint16_t> dn2 = {1, 100};
  I16 out2(2);
  U8 valid2(2, 1);
  apply_offset(dn2.data(), 2, -40000, false, 0, out2.data(), valid2.data());
  EXPECT_EQ(out2, (I16{-32767, -32767}));
  EXPECT_EQ(valid2, (U8{1, 1}));
}

TEST(OffsetKernel, ValidIsAndedInPlace) {
  const std::vector<std::uint16_t> dn = {500, 500, 0, 0, 9, 9};
  U8 valid = {1, 0, 1, 0, 1, 0};
  I16 out(dn.size());
  apply_offset(dn.data(), dn.size(), 0, true, 9, out.data(), valid.data());
  EXPECT_EQ(valid, (U8{1, 0, 0, 0, 0, 0}));
  EXPECT_EQ(out[0], 500);
}

TEST(OffsetKernel, DeclaredNodataOnlyWhenFlagged) {
  const std::vector<std::uint16_t> dn = {7, 8};
  U8 valid(2, 1);
  I16 out(2);
  apply_offset(dn.data(), 2, 0, false, 7, out.data(), valid.data());
  EXPECT_EQ(valid, (U8{1, 1}));
  EXPECT_EQ(out, (I16{7, 8}));
  apply_offset(dn.data(), 2, 0, true, 7, out.data(), valid.data());
  EXPECT_EQ(valid, (U8{0, 1}));
  EXPECT_EQ(out[1], 8);
}

TEST(OffsetKernel, RandomAgainstReference) {
  std::mt19937 rng(99);
  std::uniform_int_distribution<int> any_dn(0, 65535);
  std::uniform_int_distribution<int> small_dn(0, 3);
  const int offsets[] = {0, -1000, 1000, -40000, 40000, -2147483647 - 1, 2147483647};
  const std::size_t sizes[] = {0, 1, 2, 15, 16, 17, 1000};
  for (std::size_t n : sizes)
    for (int off : offsets)
      for (int variant = 0; variant < 4; ++variant) {
        const bool has_nodata = variant & 1;
        const std::uint16_t nd = (variant & 2) ? 65535 : 2;
        std::vector<std::uint16_t> dn(n);
        for (auto& x : dn) {
          const int r = any_dn(rng);
          x = static_cast<std::uint16_t>(r % 4 == 0 ? small_dn(rng) : (r % 4 == 1 ? 65535 : r));
        }
        U8 valid(n);
        for (auto& v : valid) v = (any_dn(rng) % 5) != 0;
        I16 out(n, 1);
        U8 got_valid = valid;
        apply_offset(dn.data(), n, off, has_nodata, nd, out.data(), got_valid.data());
        for (std::size_t i = 0; i < n; ++i) {
          const bool dn_ok = dn[i] != 0 && !(has_nodata && dn[i] == nd);
          ASSERT_EQ(got_valid[i], (valid[i] && dn_ok) ? 1 : 0) << i;
          if (dn_ok) {
            const long long r = std::max(-32767LL, std::min(32767LL, static_cast<long long>(dn[i]) + off));
            ASSERT_EQ(out[i], r) << "dn=" << dn[i] << " off=" << off;
          }
        }
      }
}

}  // namespace
