#pragma once
// Thematic accuracy of a classification against reference labels: the confusion matrix and what reviewers ask for
// (OA, Cohen's kappa, producer's / user's accuracy, F1, macro-F1) plus the area-adjusted estimates with 95 %
// confidence intervals of Olofsson et al. 2014 (Remote Sensing of Environment 148: 42-57).
//
// Convention, as in Olofsson et al.: rows i = map (predicted) class, columns j = reference class; n_ij counts the
// sample units mapped as i whose reference is j. User's accuracy is per row, producer's accuracy per column.
// Values that are undefined (a class never mapped, never in the reference, a stratum with one sample) are NaN.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace s2crop::assess {

// z of the two-sided 95 % normal interval, as the paper uses it.
inline constexpr double kZ95 = 1.96;

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int classes);
  int classes() const { return classes_; }
  void add(int map_class, int reference_class, std::int64_t count = 1);
  // Counts every pair (map[k], reference[k]) where neither is `ignore`. Throws s2crop::Error naming the value and
  // its position if a label is >= classes().
  void add_pairs(const std::uint8_t* map, const std::uint8_t* reference, std::size_t n, std::uint8_t ignore = 255);
  void merge(const ConfusionMatrix& other);  // same class count

  std::int64_t at(int map_class, int reference_class) const {
    return counts_[static_cast<std::size_t>(map_class) * classes_ + reference_class];
  }
  std::int64_t map_total(int map_class) const;              // row sum n_i.
  std::int64_t reference_total(int reference_class) const;  // column sum n_.j
  std::int64_t total() const;
  std::int64_t agreement() const;                           // trace
  const std::vector<std::int64_t>& counts() const { return counts_; }  // row-major [map][reference]

 private:
  int classes_;
  std::vector<std::int64_t> counts_;
};

struct ClassAccuracy {
  std::int64_t mapped = 0;     // n_i. (sample units mapped as this class)
  std::int64_t reference = 0;  // n_.j
  std::int64_t correct = 0;    // n_jj
  double users = 0;            // n_jj / n_j.   (1 - commission error)
  double producers = 0;        // n_jj / n_.j   (1 - omission error)
  double f1 = 0;               // harmonic mean of the two
};

// Sample-based accuracy: every sample unit weighs the same (what a pixel-by-pixel or held-out comparison gives).
struct Accuracy {
  std::int64_t samples = 0;
  double overall = 0;  // OA
  double kappa = 0;    // Cohen's kappa (p_o - p_e) / (1 - p_e)
  double macro_f1 = 0; // mean F1 over the classes present in the reference (F1 = 0 for a class never mapped)
  int macro_f1_classes = 0;
  std::vector<ClassAccuracy> per_class;
};

Accuracy accuracy(const ConfusionMatrix& matrix);

struct Estimate {
  double value = 0;
  double standard_error = 0;
  double half_width() const { return kZ95 * standard_error; }
  double lower() const { return value - half_width(); }
  double upper() const { return value + half_width(); }
};

struct AreaAdjustedClass {
  double mapped_pixels = 0;  // stratum size N_i. (pixels mapped as this class)
  double weight = 0;         // W_i = N_i. / N over the sampled strata
  Estimate users;
  Estimate producers;
  Estimate area_proportion;  // p_.j, the class's estimated share of the area
  Estimate area_pixels;      // p_.j N
  Estimate area_hectares;    // area_pixels x pixel area
};

// Stratified estimation with the map classes as strata (Olofsson et al. 2014, eqs. 2-5, 9-11).
struct AreaAdjustedAccuracy {
  Estimate overall;
  std::vector<AreaAdjustedClass> per_class;
  std::vector<double> proportions;  // estimated error matrix p_ij = W_i n_ij / n_i., row-major [map][reference]
  double total_pixels = 0;          // N: mapped pixels of the sampled strata
  double pixel_area_m2 = 0;
  // Map classes with mapped pixels but no sample unit: their area cannot be apportioned, so they are left out of N
  // (and reported) rather than silently counted as correct or wrong.
  std::vector<int> unsampled_strata;
};

// `mapped_pixels[i]` is the number of pixels mapped as class i (the strata sizes); `pixel_area_m2` converts pixel
// counts to hectares. Throws s2crop::Error if the sizes do not match the matrix or no stratum is both mapped and
// sampled.
AreaAdjustedAccuracy area_adjusted(const ConfusionMatrix& sample, const std::vector<double>& mapped_pixels,
                                   double pixel_area_m2);

}  // namespace s2crop::assess
