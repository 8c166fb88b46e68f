#include "s2crop/assess/segmentation_metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <string>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/text.hpp"

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

void SegmentationCounts::add_patches(bool multiclass, const std::uint8_t* pred, const std::uint8_t* truth,
                                     std::size_t patches, std::size_t pixels, std::uint8_t nodata) {
  if (multiclass) return add_multiclass(pred, truth, patches * pixels, nodata);
  const std::size_t per_patch = static_cast<std::size_t>(labels_) * pixels;
  for (std::size_t i = 0; i < patches; ++i)
    add_multilabel(pred + i * per_patch, truth + i * per_patch, pixels, nodata);
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

double SegmentationCounts::pixel_accuracy() const {
  const LabelCounts first = label(0);
  double correct = 0;
  for (int l = 0; l < labels_; ++l) correct += label(l).tp;
  return ratio(correct, first.tp + first.fp + first.fn + first.tn);
}

namespace {
std::string fixed4(double v) {
  if (!std::isfinite(v)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}
std::string json_value(double v) { return json_number(v); }
std::string pad_left(const std::string& s, size_t w) { return s.size() >= w ? s : std::string(w - s.size(), ' ') + s; }
std::string pad_right(const std::string& s, size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); }
}  // namespace

std::string segmentation_table(const std::vector<std::string>& names, const SegmentationCounts& c, bool multiclass,
                               const std::string& unit) {
  if (static_cast<int>(names.size()) != c.labels())
    throw Error("segmentation table: " + std::to_string(names.size()) + " names for " + std::to_string(c.labels()) +
                " labels");
  size_t name_w = std::string(multiclass ? "class" : "label").size();
  for (auto& n : names) name_w = std::max(name_w, n.size());
  name_w = std::max(name_w, std::string("pixel accuracy").size());
  const std::string support = "support (" + unit + ")";
  const size_t sw = std::max<size_t>(support.size(), 10), w = 9;
  std::ostringstream o;
  o << pad_right(multiclass ? "class" : "label", name_w) << "  " << pad_left(support, sw) << pad_left("IoU", w)
    << pad_left("F1", w) << pad_left("precision", w + 1) << pad_left("recall", w);
  for (int l = 0; l < c.labels(); ++l) {
    const LabelCounts k = c.label(l);
    char sup[32];
    std::snprintf(sup, sizeof sup, "%.0f", k.tp + k.fn);
    o << "\n" << pad_right(names[static_cast<size_t>(l)], name_w) << "  " << pad_left(sup, sw)
      << pad_left(fixed4(k.iou()), w) << pad_left(fixed4(k.f1()), w) << pad_left(fixed4(k.precision()), w + 1)
      << pad_left(fixed4(k.recall()), w);
  }
  o << "\n" << pad_right("mean", name_w) << "  " << pad_left("", sw) << pad_left(fixed4(c.mean_iou()), w)
    << pad_left(fixed4(c.mean_f1()), w);
  if (multiclass) o << "\n" << pad_right("pixel accuracy", name_w) << "  " << pad_left(fixed4(c.pixel_accuracy()), sw);
  return o.str();
}

std::string segmentation_json(const std::vector<std::string>& names, const SegmentationCounts& c, bool multiclass,
                              int indent) {
  if (static_cast<int>(names.size()) != c.labels())
    throw Error("segmentation report: " + std::to_string(names.size()) + " names for " + std::to_string(c.labels()) +
                " labels");
  const std::string in(static_cast<size_t>(2 * indent), ' '), in2 = in + "  ", in3 = in2 + "  ";
  std::ostringstream o;
  o << "{\n" << in2 << "\"per_label\": [\n";
  for (int l = 0; l < c.labels(); ++l) {
    const LabelCounts k = c.label(l);
    o << in3 << "{\"name\": " << json_string(names[static_cast<size_t>(l)]) << ", \"tp\": " << json_value(k.tp)
      << ", \"fp\": " << json_value(k.fp) << ", \"fn\": " << json_value(k.fn) << ", \"tn\": " << json_value(k.tn)
      << ", \"support\": " << json_value(k.tp + k.fn) << ", \"iou\": " << json_value(k.iou())
      << ", \"f1\": " << json_value(k.f1()) << ", \"precision\": " << json_value(k.precision())
      << ", \"recall\": " << json_value(k.recall()) << "}" << (l + 1 < c.labels() ? "," : "") << "\n";
  }
  o << in2 << "],\n" << in2 << "\"mean_iou\": " << json_value(c.mean_iou()) << ",\n"
    << in2 << "\"mean_f1\": " << json_value(c.mean_f1());
  if (multiclass) o << ",\n" << in2 << "\"pixel_accuracy\": " << json_value(c.pixel_accuracy());
  o << "\n" << in << "}";
  return o.str();
}

}  // namespace s2crop::assess
