#include "s2crop/assess/segmentation_metrics.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "s2crop/common/errors.hpp"

namespace s2crop::assess {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
double ratio(double num, double den) { return den > 0 ? num / den : kNaN; }
}  // namespace

double LabelCounts::iou() const { return ratio(tp, tp + fp + fn); }
double LabelCounts::f1() const { return ratio(2 * tp, 2 * tp + fp + fn); }
double LabelCounts::precision() const { return ratio(tp, tp + fp); }
double LabelCounts::recall() const { return ratio(tp, tp + fn); }

SegmentationCounts::SegmentationCounts(int labels) : labels_(labels) {
  if (labels < 1) throw Error("segmentation metrics need at least one label");
  counts_.assign(static_cast<std::size_t>(4 * labels), 0.0);
}

void SegmentationCounts::add_multilabel(const std::uint8_t* pred, const std::uint8_t* truth, std::size_t n,
                                        std::uint8_t nodata) {
  for (int l = 0; l < labels_; ++l) {
    const std::uint8_t* p = pred + static_cast<std::size_t>(l) * n;
    const std::uint8_t* t = truth + static_cast<std::size_t>(l) * n;
    std::size_t c[4] = {0, 0, 0, 0};  // tp, fp, fn, tn
    for (std::size_t i = 0; i < n; ++i) {
      if (t[i] == nodata) continue;
      const bool pp = p[i] != 0, tt = t[i] != 0;
      ++c[pp ? (tt ? 0 : 1) : (tt ? 2 : 3)];
    }
    for (int k = 0; k < 4; ++k) counts_[static_cast<std::size_t>(4 * l + k)] += static_cast<double>(c[k]);
  }
}

void SegmentationCounts::add_multiclass(const std::uint8_t* pred, const std::uint8_t* truth, std::size_t n,
                                        std::uint8_t nodata) {
  // Per class: tp, predicted, true; tn follows from the valid pixel count.
  std::vector<std::size_t> tp(static_cast<std::size_t>(labels_)), predicted(tp.size()), actual(tp.size());
  std::size_t valid = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (truth[i] == nodata) continue;
    if (truth[i] >= labels_)
      throw Error("segmentation truth holds class " + std::to_string(truth[i]) + " at pixel " + std::to_string(i) +
                  ", outside 0.." + std::to_string(labels_ - 1));
    ++valid;
    ++actual[truth[i]];
    if (pred[i] < labels_) {
      ++predicted[pred[i]];
      if (pred[i] == truth[i]) ++tp[pred[i]];
    }
  }
  for (std::size_t l = 0; l < tp.size(); ++l) {
    const double t = static_cast<double>(tp[l]), fp = static_cast<double>(predicted[l] - tp[l]),
                 fn = static_cast<double>(actual[l] - tp[l]);
    counts_[4 * l] += t;
    counts_[4 * l + 1] += fp;
    counts_[4 * l + 2] += fn;
    counts_[4 * l + 3] += static_cast<double>(valid) - t - fp - fn;
  }
}

void SegmentationCounts::merge(const SegmentationCounts& other) {
  if (other.labels_ != labels_) throw Error("cannot merge segmentation counts of different label counts");
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
}

LabelCounts SegmentationCounts::label(int l) const {
  const std::size_t at = static_cast<std::size_t>(4 * l);
  return {counts_.at(at), counts_.at(at + 1), counts_.at(at + 2), counts_.at(at + 3)};
}

namespace {
template <typename Fn>
double mean_defined(const SegmentationCounts& c, Fn fn) {
  double sum = 0;
  int n = 0;
  for (int l = 0; l < c.labels(); ++l) {
    const double v = fn(c.label(l));
    if (!std::isnan(v)) sum += v, ++n;
  }
  return n ? sum / n : kNaN;
}
}  // namespace

double SegmentationCounts::mean_iou() const { return mean_defined(*this, [](const LabelCounts& c) { return c.iou(); }); }
double SegmentationCounts::mean_f1() const { return mean_defined(*this, [](const LabelCounts& c) { return c.f1(); }); }

}  // namespace s2crop::assess
