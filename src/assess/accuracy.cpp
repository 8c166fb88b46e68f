#include "s2crop/assess/accuracy.hpp"

#include <cmath>
#include <limits>

#include "s2crop/common/errors.hpp"

namespace s2crop::assess {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double ratio(double numerator, double denominator) { return denominator > 0 ? numerator / denominator : kNaN; }

// p(1-p)/(n-1): the variance term of a proportion estimated from the n units of one stratum. With a single unit it
// cannot be estimated, which NaN carries through every sum it enters.
double proportion_variance(double p, double n) { return n > 1 ? p * (1 - p) / (n - 1) : kNaN; }
}  // namespace

ConfusionMatrix::ConfusionMatrix(int classes) : classes_(classes) {
  if (classes < 1 || classes > 255) throw Error("a confusion matrix needs 1-255 classes, got " + std::to_string(classes));
  counts_.assign(static_cast<std::size_t>(classes) * classes, 0);
}

void ConfusionMatrix::add(int map_class, int reference_class, std::int64_t count) {
  if (map_class < 0 || map_class >= classes_ || reference_class < 0 || reference_class >= classes_)
    throw Error("class pair (" + std::to_string(map_class) + ", " + std::to_string(reference_class) +
                ") is outside the " + std::to_string(classes_) + " classes of the confusion matrix");
  counts_[static_cast<std::size_t>(map_class) * classes_ + reference_class] += count;
}

void ConfusionMatrix::add_pairs(const std::uint8_t* map, const std::uint8_t* reference, std::size_t n,
                                std::uint8_t ignore) {
  for (std::size_t k = 0; k < n; ++k) {
    std::uint8_t m = map[k], r = reference[k];
    if (m == ignore || r == ignore) continue;
    if (m >= classes_ || r >= classes_)
      throw Error(std::string(m >= classes_ ? "map" : "reference") + " label " +
                  std::to_string(m >= classes_ ? m : r) + " at position " + std::to_string(k) +
                  " is not one of the " + std::to_string(classes_) + " classes (0.." + std::to_string(classes_ - 1) +
                  ", " + std::to_string(ignore) + " = no label)");
    ++counts_[static_cast<std::size_t>(m) * classes_ + r];
  }
}

void ConfusionMatrix::merge(const ConfusionMatrix& other) {
  if (other.classes_ != classes_) throw Error("cannot merge confusion matrices with different class counts");
  for (std::size_t k = 0; k < counts_.size(); ++k) counts_[k] += other.counts_[k];
}

std::int64_t ConfusionMatrix::map_total(int i) const {
  std::int64_t s = 0;
  for (int j = 0; j < classes_; ++j) s += at(i, j);
  return s;
}

std::int64_t ConfusionMatrix::reference_total(int j) const {
  std::int64_t s = 0;
  for (int i = 0; i < classes_; ++i) s += at(i, j);
  return s;
}

std::int64_t ConfusionMatrix::total() const {
  std::int64_t s = 0;
  for (auto c : counts_) s += c;
  return s;
}

std::int64_t ConfusionMatrix::agreement() const {
  std::int64_t s = 0;
  for (int i = 0; i < classes_; ++i) s += at(i, i);
  return s;
}

Accuracy accuracy(const ConfusionMatrix& m) {
  Accuracy a;
  const int C = m.classes();
  a.samples = m.total();
  const double n = static_cast<double>(a.samples);
  a.overall = ratio(static_cast<double>(m.agreement()), n);
  double chance = 0;
  a.per_class.resize(static_cast<std::size_t>(C));
  double f1_sum = 0;
  for (int k = 0; k < C; ++k) {
    ClassAccuracy& c = a.per_class[static_cast<std::size_t>(k)];
    c.mapped = m.map_total(k);
    c.reference = m.reference_total(k);
    c.correct = m.at(k, k);
    c.users = ratio(static_cast<double>(c.correct), static_cast<double>(c.mapped));
    c.producers = ratio(static_cast<double>(c.correct), static_cast<double>(c.reference));
    // A reference class the map never produces has F1 0 (recall 0), not "undefined": leaving it out of macro-F1
    // would reward a map for dropping hard classes.
    if (c.reference == 0)
      c.f1 = kNaN;
    else if (c.correct == 0)
      c.f1 = 0;
    else
      c.f1 = 2 * c.users * c.producers / (c.users + c.producers);
    if (c.reference > 0) {
      f1_sum += c.f1;
      ++a.macro_f1_classes;
    }
    chance += static_cast<double>(c.mapped) * static_cast<double>(c.reference);
  }
  a.macro_f1 = a.macro_f1_classes > 0 ? f1_sum / a.macro_f1_classes : kNaN;
  if (n > 0) {
    double expected = chance / (n * n);
    a.kappa = expected < 1 ? (a.overall - expected) / (1 - expected) : kNaN;
  } else {
    a.kappa = kNaN;
  }
  return a;
}

AreaAdjustedAccuracy area_adjusted(const ConfusionMatrix& sample, const std::vector<double>& mapped_pixels,
                                   double pixel_area_m2) {
  const int C = sample.classes();
  const auto Cs = static_cast<std::size_t>(C);
  if (mapped_pixels.size() != Cs)
    throw Error("area-adjusted accuracy needs one mapped area per class: " + std::to_string(mapped_pixels.size()) +
                " areas for " + std::to_string(C) + " classes");
  AreaAdjustedAccuracy r;
  r.pixel_area_m2 = pixel_area_m2;
  r.per_class.resize(Cs);
  std::vector<double> n_row(Cs);  // n_i.
  for (int i = 0; i < C; ++i) {
    n_row[static_cast<std::size_t>(i)] = static_cast<double>(sample.map_total(i));
    double Ni = mapped_pixels[static_cast<std::size_t>(i)];
    if (Ni < 0) throw Error("mapped area of class " + std::to_string(i) + " is negative");
    r.per_class[static_cast<std::size_t>(i)].mapped_pixels = Ni;
    if (Ni > 0 && n_row[static_cast<std::size_t>(i)] == 0)
      r.unsampled_strata.push_back(i);
    else
      r.total_pixels += Ni;
  }
  if (r.total_pixels <= 0) throw Error("no map class is both mapped and sampled: no area-adjusted estimate possible");
  const double N = r.total_pixels;
  const double hectares_per_pixel = pixel_area_m2 / 10000.0;

  // Stratum weights and the estimated error matrix in area proportions.
  std::vector<double> W(Cs, 0.0);
  r.proportions.assign(Cs * Cs, 0.0);
  for (std::size_t i = 0; i < Cs; ++i) {
    if (n_row[i] == 0) continue;
    W[i] = r.per_class[i].mapped_pixels / N;
    r.per_class[i].weight = W[i];
    for (std::size_t j = 0; j < Cs; ++j)
      r.proportions[i * Cs + j] = W[i] * static_cast<double>(sample.at(static_cast<int>(i), static_cast<int>(j))) / n_row[i];
  }
  auto share = [&](std::size_t i, std::size_t j) {  // n_ij / n_i.
    return static_cast<double>(sample.at(static_cast<int>(i), static_cast<int>(j))) / n_row[i];
  };

  // Overall accuracy (eq. 1 and 5).
  double oa = 0, oa_var = 0;
  for (std::size_t i = 0; i < Cs; ++i) {
    if (n_row[i] == 0) continue;
    oa += r.proportions[i * Cs + i];
    oa_var += W[i] * W[i] * proportion_variance(share(i, i), n_row[i]);
  }
  r.overall = {oa, std::sqrt(oa_var)};

  for (std::size_t j = 0; j < Cs; ++j) {
    AreaAdjustedClass& c = r.per_class[j];
    // User's accuracy (eq. 2 and 6): within its own stratum, so the weights cancel.
    if (n_row[j] > 0) {
      double u = share(j, j);
      c.users = {u, std::sqrt(proportion_variance(u, n_row[j]))};
    } else {
      c.users = {kNaN, kNaN};
    }
    // Area proportion of reference class j (eq. 9, 10) and its estimated pixel count N_.j.
    double p_col = 0, p_col_var = 0, N_col = 0;
    for (std::size_t i = 0; i < Cs; ++i) {
      if (n_row[i] == 0) continue;
      p_col += r.proportions[i * Cs + j];
      p_col_var += W[i] * W[i] * proportion_variance(share(i, j), n_row[i]);
      N_col += r.per_class[i].mapped_pixels * share(i, j);
    }
    double se = std::sqrt(p_col_var);
    c.area_proportion = {p_col, se};
    c.area_pixels = {p_col * N, se * N};
    c.area_hectares = {p_col * N * hectares_per_pixel, se * N * hectares_per_pixel};
    // Producer's accuracy (eq. 3 and 7).
    if (N_col > 0 && n_row[j] > 0) {
      double P = r.proportions[j * Cs + j] / p_col;
      double U = share(j, j);
      double Nj = c.mapped_pixels;
      double own = Nj * Nj * (1 - P) * (1 - P) * proportion_variance(U, n_row[j]);
      double others = 0;
      for (std::size_t i = 0; i < Cs; ++i) {
        if (i == j || n_row[i] == 0) continue;
        double Ni = r.per_class[i].mapped_pixels;
        others += Ni * Ni * proportion_variance(share(i, j), n_row[i]);
      }
      c.producers = {P, std::sqrt((own + P * P * others) / (N_col * N_col))};
    } else if (N_col > 0 && c.mapped_pixels == 0) {
      // Present in the reference but never mapped: none of it is mapped correctly, with certainty.
      c.producers = {0, 0};
    } else {
      c.producers = {kNaN, kNaN};
    }
  }
  return r;
}

}  // namespace s2crop::assess
