// Segmentation metrics from hand-counted pixels: multilabel (planar 0/1 layers with a no-data value) and multiclass
// (one-vs-rest), NaN where a value is undefined, merging equals counting everything at once.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "s2crop/assess/segmentation_metrics.hpp"
#include "s2crop/common/errors.hpp"

using namespace s2crop;

TEST(SegmentationMetrics, MultilabelHandCountedPixels) {
  // 2 labels x 8 pixels; truth 255 = no data (skipped with its prediction).
  const std::vector<std::uint8_t> truth = {1, 1, 1, 0, 0, 0, 255, 1,  /* label 1 */ 0, 0, 0, 0, 0, 0, 0, 255};
  const std::vector<std::uint8_t> pred = {1, 1, 0, 1, 0, 0, 1, 1,     /* label 1 */ 0, 0, 0, 0, 0, 0, 0, 1};
  assess::SegmentationCounts c(2);
  c.add_multilabel(pred.data(), truth.data(), 8);
  auto a = c.label(0);  // pixels 0,1,7 tp; 2 fn; 3 fp; 4,5 tn; 6 skipped
  EXPECT_EQ(a.tp, 3);
  EXPECT_EQ(a.fp, 1);
  EXPECT_EQ(a.fn, 1);
  EXPECT_EQ(a.tn, 2);
  EXPECT_DOUBLE_EQ(a.iou(), 3.0 / 5.0);
  EXPECT_DOUBLE_EQ(a.f1(), 6.0 / 8.0);
  EXPECT_DOUBLE_EQ(a.precision(), 0.75);
  EXPECT_DOUBLE_EQ(a.recall(), 0.75);
  auto b = c.label(1);  // never present, never predicted (the prediction at no-data does not count)
  EXPECT_EQ(b.tn, 7);
  EXPECT_EQ(b.tp + b.fp + b.fn, 0);
  EXPECT_TRUE(std::isnan(b.iou()));
  EXPECT_TRUE(std::isnan(b.precision()));
  EXPECT_DOUBLE_EQ(c.mean_iou(), 0.6);  // the undefined label is left out of the mean
  EXPECT_DOUBLE_EQ(c.mean_f1(), 0.75);
  ASSERT_EQ(c.counts().size(), 8u);
  EXPECT_EQ(c.counts()[0], 3);  // tp, fp, fn, tn of label 0 first
  EXPECT_EQ(c.counts()[7], 7);
}

TEST(SegmentationMetrics, MulticlassOneVsRestAndMerge) {
  // 3 classes; truth 255 = no data; a predicted 255 (map no-data) misses the true class.
  const std::vector<std::uint8_t> truth = {0, 0, 1, 1, 2, 2, 255, 1};
  const std::vector<std::uint8_t> pred = {0, 1, 1, 1, 2, 0, 2, 255};
  assess::SegmentationCounts c(3);
  c.add_multiclass(pred.data(), truth.data(), truth.size());
  // 7 valid pixels. class 0: tp 1 (px0), fp 1 (px5), fn 1 (px1), tn 4
  // class 1: tp 2 (px2,3), fp 1 (px1), fn 1 (px7), tn 3; class 2: tp 1 (px4), fp 0, fn 1 (px5), tn 5
  const double expect[3][4] = {{1, 1, 1, 4}, {2, 1, 1, 3}, {1, 0, 1, 5}};
  for (int l = 0; l < 3; ++l) {
    auto k = c.label(l);
    EXPECT_EQ(k.tp, expect[l][0]) << l;
    EXPECT_EQ(k.fp, expect[l][1]) << l;
    EXPECT_EQ(k.fn, expect[l][2]) << l;
    EXPECT_EQ(k.tn, expect[l][3]) << l;
  }
  EXPECT_DOUBLE_EQ(c.mean_iou(), (1.0 / 3 + 2.0 / 4 + 1.0 / 2) / 3);
  EXPECT_DOUBLE_EQ(c.label(2).precision(), 1.0);
  // Counting in two halves and merging (what an all-reduce over ranks does) equals counting at once.
  assess::SegmentationCounts h1(3), h2(3);
  h1.add_multiclass(pred.data(), truth.data(), 3);
  h2.add_multiclass(pred.data() + 3, truth.data() + 3, truth.size() - 3);
  h1.merge(h2);
  EXPECT_EQ(h1.counts(), c.counts());
  const std::uint8_t bad_truth[1] = {3}, any[1] = {0};
  EXPECT_THROW(c.add_multiclass(any, bad_truth, 1), Error);
  EXPECT_THROW(h1.merge(assess::SegmentationCounts(2)), Error);
}

TEST(SegmentationMetrics, PatchesPixelAccuracyTableAndJson) {
  // Multilabel [patch][label][pixel]: add_patches equals adding each patch's planes.
  const std::vector<std::uint8_t> truth = {1, 0, 255, 0, /* patch 1 */ 1, 1, 0, 0};
  const std::vector<std::uint8_t> pred = {1, 1, 0, 0, /* patch 1 */ 0, 1, 0, 1};
  assess::SegmentationCounts a(2), b(2);
  a.add_patches(false, pred.data(), truth.data(), 2, 2);
  for (int i = 0; i < 2; ++i) b.add_multilabel(pred.data() + 4 * i, truth.data() + 4 * i, 2);
  EXPECT_EQ(a.counts(), b.counts());
  // Multiclass: pixel accuracy = correct / scored pixels; add_patches of classes equals add_multiclass.
  const std::vector<std::uint8_t> ct = {0, 1, 1, 255}, cp = {0, 1, 0, 1};
  assess::SegmentationCounts m(2), m2(2);
  m.add_patches(true, cp.data(), ct.data(), 2, 2);
  m2.add_multiclass(cp.data(), ct.data(), 4);
  EXPECT_EQ(m.counts(), m2.counts());
  EXPECT_DOUBLE_EQ(m.pixel_accuracy(), 2.0 / 3.0);
  // A label never present or predicted: n/a in the table, null in the JSON, left out of the means.
  assess::SegmentationCounts u(2);
  const std::uint8_t t0[2] = {0, 0}, p0[2] = {0, 0};
  u.add_multiclass(p0, t0, 2);
  const std::string table = assess::segmentation_table({"wheat", "maize"}, u, true);
  EXPECT_NE(table.find("n/a"), std::string::npos);
  EXPECT_NE(table.find("pixel accuracy"), std::string::npos);
  const std::string json = assess::segmentation_json({"wheat", "maize"}, u, true);
  EXPECT_NE(json.find("\"name\": \"maize\", \"tp\": 0, \"fp\": 0, \"fn\": 0, \"tn\": 2, \"support\": 0, \"iou\": null"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"mean_iou\": 1,"), std::string::npos) << json;
  EXPECT_THROW(assess::segmentation_table({"one"}, u, true), Error);
}
