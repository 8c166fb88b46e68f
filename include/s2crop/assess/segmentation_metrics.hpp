#pragma once
// Per-label pixel counts of a segmentation (true/false positives/negatives) and what follows from them: IoU
// (Jaccard), F1 (Dice), precision, recall, mean IoU. Torch-free. Counts are plain doubles in one flat array so that
// data-parallel validation can MPI_Allreduce(MPI_SUM) them in place (counts()).
//
// Multilabel: prediction and truth are 0/1 per label, planar [label][pixel]; a truth entry equal to `nodata` is
// skipped (with its prediction). Multiclass: class maps [pixel], each class scored one-vs-rest; pixels whose truth
// is `nodata` are skipped; a predicted value outside 0..labels-1 (e.g. the map's no-data) is a miss of the true
// class and a false positive of none.
// Undefined values (a label never present in truth or prediction) are NaN, as in assess/accuracy.hpp; mean IoU
// averages the labels whose IoU is defined (NaN if none).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace s2crop::assess {

struct LabelCounts {
  double tp = 0, fp = 0, fn = 0, tn = 0;
  double iou() const;        // tp / (tp + fp + fn)
  double f1() const;         // 2 tp / (2 tp + fp + fn)
  double precision() const;  // tp / (tp + fp)
  double recall() const;     // tp / (tp + fn)
};

class SegmentationCounts {
 public:
  explicit SegmentationCounts(int labels);
  int labels() const { return labels_; }
  // pred, truth: [labels][n] (0 = absent, anything else = present; truth == nodata = skipped).
  void add_multilabel(const std::uint8_t* pred, const std::uint8_t* truth, std::size_t n,
                      std::uint8_t nodata = 255);
  // pred, truth: [n] class indices (truth == nodata skipped).
  void add_multiclass(const std::uint8_t* pred, const std::uint8_t* truth, std::size_t n, std::uint8_t nodata = 255);
  // `patches` patches of `pixels` pixels each, as a U-Net scores them: multiclass pred/truth [patch][pixel] class
  // maps; multilabel [patch][label][pixel] 0/1 planes (255 in truth = not counted).
  void add_patches(bool multiclass, const std::uint8_t* pred, const std::uint8_t* truth, std::size_t patches,
                   std::size_t pixels, std::uint8_t nodata = 255);
  void merge(const SegmentationCounts& other);  // same label count

  LabelCounts label(int l) const;
  double mean_iou() const;
  double mean_f1() const;  // over labels whose F1 is defined
  // Multiclass counts only: correctly classified / scored pixels (sum of tp over the total of label 0; NaN if none).
  double pixel_accuracy() const;
  // tp, fp, fn, tn of label 0, then of label 1, ...: 4 * labels() doubles, to all-reduce in place.
  std::vector<double>& counts() { return counts_; }
  const std::vector<double>& counts() const { return counts_; }

 private:
  int labels_;
  std::vector<double> counts_;
};

// A fixed-width table of per-label support (truth-positive pixels = tp + fn), IoU, F1, precision, recall, followed
// by mean IoU / mean F1 (and pixel accuracy when `multiclass`): what `segment evaluate` and `segment train` (best
// epoch) log. One line per row, no trailing newline; undefined values as "n/a".
std::string segmentation_table(const std::vector<std::string>& names, const SegmentationCounts& counts,
                               bool multiclass, const std::string& unit = "pixels");
// The same numbers as a JSON object (2-space indent at `indent` levels): {"per_label": [{"name", "tp", "fp", "fn",
// "tn", "support", "iou", "f1", "precision", "recall"}], "mean_iou", "mean_f1"[, "pixel_accuracy"]}; undefined
// values are null, numbers in round-trip precision (%.17g).
std::string segmentation_json(const std::vector<std::string>& names, const SegmentationCounts& counts,
                              bool multiclass, int indent = 1);

}  // namespace s2crop::assess
