#pragma once
// `s2crop assess --compare`: several models' predictions of the same held-out samples in one report, each figure with
// a 95 % bootstrap confidence interval, and every pair's differences with theirs, so that a user sees whether one
// model is really ahead.
//
// The bootstrap resamples sampling units (parcels, tiles or samples) with replacement, as many as there are, and
// recomputes every model's confusion matrix from the same resample (a paired bootstrap: the differences' intervals
// account for the models erring on the same samples). Intervals are the 2.5th and 97.5th percentiles of the
// replicates (linear interpolation between order statistics, NumPy's default). Pixels of one parcel are not
// independent: resampling parcels keeps the intervals honest where a parcel contributed many samples.
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/assess/accuracy.hpp"

namespace s2crop::assess {

struct Interval {
  double value = 0;          // on the held-out samples as they are
  double lower = 0, upper = 0;  // 95 % percentile interval (NaN where no replicate defines it)
};

struct ModelScores {
  std::string name;
  Accuracy accuracy;                 // point estimates, per class included
  Interval overall, kappa, macro_f1;
  std::vector<Interval> class_f1;    // per class; NaN value for a class absent from the reference
};

struct PairDifference {
  size_t a = 0, b = 0;               // model indices: differences are a minus b
  Interval overall, kappa, macro_f1;
  // The interval excludes 0 in the direction of the difference.
  bool overall_clear() const;
  bool macro_f1_clear() const;
};

struct Comparison {
  std::vector<std::string> class_names;
  size_t samples = 0, units = 0;
  int replicates = 0;
  std::uint64_t seed = 0;
  std::string unit_kind;             // "parcel", "tile" or "sample": what the bootstrap resampled
  std::vector<ModelScores> models;
  std::vector<PairDifference> pairs; // every pair (i < j)
};

struct ModelPredictions {
  std::string name;
  std::vector<std::uint8_t> predicted;  // per sample, a class index
};

// `reference` and every model's predictions index the same samples; `unit[k]` is sample k's sampling unit (any ids;
// equal ids resample together). Throws s2crop::Error where lengths disagree, a class is out of range, there are no
// samples or fewer than 2 models, or replicates < 100.
Comparison compare_models(const std::vector<std::string>& class_names, const std::vector<std::uint8_t>& reference,
                          const std::vector<std::int64_t>& unit, const std::vector<ModelPredictions>& models,
                          int replicates, std::uint64_t seed);

// The q-quantile (0-1) of `values` (NaN entries ignored) by linear interpolation between order statistics; NaN if
// none is finite.
double percentile(std::vector<double> values, double q);

void write_comparison_json(const std::string& path, const Comparison& c);
void write_comparison_markdown(const std::string& path, const Comparison& c, const std::string& title);

}  // namespace s2crop::assess
