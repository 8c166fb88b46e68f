#pragma once
// Monthly NDVI series for `s2crop ndvi`: NDVI from a training set's reflectance, which months are observed, the
// deterministic masks of gap-fill training and evaluation, the baselines the LSTM must beat (persistence, linear
// interpolation, per-class climatology) and the error metrics. Pure functions, torch-free, shared by the trainer,
// the evaluation and the unit tests.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "s2crop/samples/training_set.hpp"

namespace s2crop::samples {

inline constexpr float kNoNdvi = std::numeric_limits<float>::quiet_NaN();

// NDVI = (NIR - red) / (NIR + red) of int16 reflectance x 10000; 0 where NIR + red <= 0.
inline float ndvi_of(std::int16_t red, std::int16_t nir) {
  const float r = red, n = nir, s = r + n;
  return s > 0.f ? (n - r) / s : 0.f;
}

// NDVI series of `n` samples [sample][month] from x [sample][month][band] with the bands of `header` (B04 and B08,
// else B8A). Throws ConfigError naming `source` when the bands are missing.
std::vector<float> ndvi_series(const std::vector<std::int16_t>& x, const TrainingSetHeader& header,
                               const std::string& source);

// A seeded, portable hash of (seed, sample, month, step): the same on every rank and machine.
std::uint64_t ndvi_hash(std::uint64_t seed, std::uint64_t sample, std::uint64_t month, std::uint64_t step);

// Gap-fill masking: which observed months of sample `sample` are hidden from the input (and are the targets) at
// training step `step`. Each observed month is hidden with probability `p`, and at least one is hidden when the
// series has two or more observed months (so every such sample teaches something), at least one stays visible.
// `clear` and the returned mask are [12].
std::vector<std::uint8_t> gapfill_hidden(const std::uint8_t* clear, std::uint64_t seed, std::uint64_t sample,
                                         std::uint64_t step, double p);

// Baselines on one series of 12 months: values where visible[m] != 0 are known.
// Persistence: the last known value at or before month `m` (NaN if none).
float persistence(const float* ndvi, const std::uint8_t* visible, int m);
// Linear interpolation in time between the nearest known months around `m` (the ends hold the nearest known
// value); NaN if no month is known.
float linear_fill(const float* ndvi, const std::uint8_t* visible, int m);

// Per-class climatology: mean NDVI per (class, month) over observed months; months of a class without any
// observation are interpolated in time between the class's observed months (ends hold the nearest), and a class
// without any observation takes the all-class climatology.
struct Climatology {
  int classes = 0;
  std::vector<double> mean;  // [class][month]
  float at(int cls, int month) const { return static_cast<float>(mean[static_cast<size_t>(cls) * kSeasonMonths + month]); }
};
Climatology climatology(const std::vector<float>& ndvi, const std::vector<std::uint8_t>& clear,
                        const std::vector<std::uint8_t>& y, const std::vector<std::uint32_t>& samples, int classes);

// RMSE, MAE and R^2 (1 - SSE / total sum of squares around the mean of the observations) of predictions.
struct ErrorStats {
  double sse = 0, sae = 0, sum_y = 0, sum_y2 = 0;
  std::int64_t n = 0;
  void add(double predicted, double observed) {
    const double e = predicted - observed;
    sse += e * e;
    sae += std::abs(e);
    sum_y += observed;
    sum_y2 += observed * observed;
    ++n;
  }
  double rmse() const { return n ? std::sqrt(sse / n) : kNoNdvi; }
  double mae() const { return n ? sae / n : kNoNdvi; }
  double r2() const {
    if (!n) return kNoNdvi;
    const double sst = sum_y2 - sum_y * sum_y / n;
    return sst > 0 ? 1.0 - sse / sst : kNoNdvi;
  }
};

}  // namespace s2crop::samples
