// The random forest as classify runs it (nn::RandomForest) against OpenCV's own predictions of the same trees, and
// its model file.
#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/ml.hpp>

#include <filesystem>

#include "s2crop/common/errors.hpp"
#include "s2crop/nn/model_spec.hpp"
#include "s2crop/nn/random_forest.hpp"
#include "train/forest_flatten.hpp"

namespace {

using s2crop::nn::RandomForest;

// Three classes in 6 values, separable only through several of them: trees of some depth, with inversed splits.
void make_data(int n, std::uint64_t seed, cv::Mat& x, cv::Mat& y) {
  cv::RNG rng(seed);
  x.create(n, 6, CV_32F);
  y.create(n, 1, CV_32S);
  rng.fill(x, cv::RNG::UNIFORM, -1.0, 1.0);
  for (int i = 0; i < n; ++i) {
    const float* v = x.ptr<float>(i);
    const float s = v[0] + 0.5f * v[2] - 0.3f * v[4];
    y.at<int>(i) = s < -0.3f ? 0 : (s < 0.4f ? 1 : 2);
  }
}

cv::Ptr<cv::ml::RTrees> grow(const cv::Ptr<cv::ml::TrainData>& data, std::uint64_t state) {
  auto rt = cv::ml::RTrees::create();
  rt->setMaxDepth(12);
  rt->setMinSampleCount(2);
  rt->setActiveVarCount(3);
  rt->setTermCriteria(cv::TermCriteria(cv::TermCriteria::MAX_ITER, 1, 0));
  cv::theRNG().state = state;
  rt->train(data);
  return rt;
}

TEST(RandomForest, FlattenedTreesPredictAsOpenCv) {
  cv::Mat x, y, tx, ty;
  make_data(400, 1, x, y);
  make_data(300, 2, tx, ty);
  auto data = cv::ml::TrainData::create(x, cv::ml::ROW_SAMPLE, y);
  RandomForest forest;
  forest.n_features = 6;
  forest.n_classes = 3;
  std::vector<std::vector<int>> votes(static_cast<size_t>(tx.rows), std::vector<int>(3, 0));
  for (int t = 0; t < 7; ++t) {
    auto rt = grow(data, 1000 + static_cast<std::uint64_t>(t));
    RandomForest tree = s2crop::train::flatten_rtrees(*rt, 6, 3);
    ASSERT_EQ(tree.trees(), 1u);
    EXPECT_GT(tree.nodes(), 7u);
    std::vector<float> p(static_cast<size_t>(tx.rows) * 3);
    tree.predict(tx.ptr<float>(), static_cast<size_t>(tx.rows), p.data());
    cv::Mat expected;
    rt->predict(tx, expected);
    for (int i = 0; i < tx.rows; ++i) {
      const int cls = static_cast<int>(expected.at<float>(i));
      EXPECT_EQ(p[static_cast<size_t>(i) * 3 + static_cast<size_t>(cls)], 1.f) << "tree " << t << " sample " << i;
      ++votes[static_cast<size_t>(i)][static_cast<size_t>(cls)];
    }
    forest.append(tree);
  }
  forest.check("test");
  std::vector<float> p(static_cast<size_t>(tx.rows) * 3);
  forest.predict(tx.ptr<float>(), static_cast<size_t>(tx.rows), p.data());
  int right = 0;
  for (int i = 0; i < tx.rows; ++i)
    for (int c = 0; c < 3; ++c) {
      EXPECT_FLOAT_EQ(p[static_cast<size_t>(i) * 3 + static_cast<size_t>(c)], votes[static_cast<size_t>(i)][static_cast<size_t>(c)] / 7.f);
      const auto* row = p.data() + static_cast<size_t>(i) * 3;
      if (c == 0) right += static_cast<int>(std::max_element(row, row + 3) - row) == ty.at<int>(i);
    }
  EXPECT_GT(right, tx.rows * 8 / 10);  // the forest learnt the rule
}

TEST(RandomForest, SeededTreesRepeat) {
  cv::Mat x, y;
  make_data(300, 3, x, y);
  auto data = cv::ml::TrainData::create(x, cv::ml::ROW_SAMPLE, y);
  RandomForest a = s2crop::train::flatten_rtrees(*grow(data, 77), 6, 3);
  RandomForest b = s2crop::train::flatten_rtrees(*grow(data, 99), 6, 3);
  RandomForest c = s2crop::train::flatten_rtrees(*grow(data, 77), 6, 3);
  EXPECT_EQ(a.threshold, c.threshold);
  EXPECT_EQ(a.feature, c.feature);
  EXPECT_NE(a.threshold, b.threshold);  // another seed, another bootstrap
}

TEST(RandomForest, DamagedForestRefused) {
  RandomForest f;
  f.n_features = 2;
  f.n_classes = 2;
  f.roots = {0};
  f.feature = {0, -1, -1};
  f.threshold = {0.5f, 0, 0};
  f.left = {1, -1, -1};
  f.right = {2, -1, -1};
  f.leaf_class = {0, 0, 1};
  EXPECT_NO_THROW(f.check("m.h5"));
  auto loop = f;
  loop.left[0] = 0;  // a node its own child: a walk would never end
  EXPECT_THROW(loop.check("m.h5"), s2crop::InputError);
  auto cls = f;
  cls.leaf_class[2] = 5;
  EXPECT_THROW(cls.check("m.h5"), s2crop::InputError);
  auto feat = f;
  feat.feature[0] = 2;
  EXPECT_THROW(feat.check("m.h5"), s2crop::InputError);
  auto outside = f;
  outside.right[0] = 3;
  EXPECT_THROW(outside.check("m.h5"), s2crop::InputError);
}

TEST(RandomForest, ModelFileRoundTrip) {
  cv::Mat x, y;
  make_data(200, 4, x, y);
  auto data = cv::ml::TrainData::create(x, cv::ml::ROW_SAMPLE, y);
  RandomForest forest;
  forest.n_features = 6;
  forest.n_classes = 3;
  for (int t = 0; t < 3; ++t) forest.append(s2crop::train::flatten_rtrees(*grow(data, 5 + static_cast<std::uint64_t>(t)), 6, 3));
  // 6 values = 12 months x ... does not fit a real spec: a spec of 1 band without NDVI over 12 months has 12.
  s2crop::nn::ModelSpec spec;
  spec.kind = "rf";
  spec.bands = {"B04"};
  spec.ndvi = false;
  spec.hidden = 0;
  spec.layers = 0;
  spec.class_names = {"a", "b", "c"};
  spec.mean = {0.f};
  spec.stddev = {1.f};
  const std::string path = (std::filesystem::temp_directory_path() / "s2crop_test_rf.h5").string();
  s2crop::nn::save_forest_model(path, spec, forest, "test", "fp");
  const auto read_spec = s2crop::nn::read_model_spec(path);
  EXPECT_EQ(read_spec.kind, "rf");
  // Its 6 values per sample do not match the 12 months x 1 feature the spec describes: refused by name.
  EXPECT_THROW(s2crop::nn::load_forest(path, read_spec), s2crop::InputError);
  forest.n_features = 12;
  s2crop::nn::save_forest_model(path, spec, forest, "test", "fp");
  const RandomForest back = s2crop::nn::load_forest(path, s2crop::nn::read_model_spec(path));
  EXPECT_EQ(back.roots, forest.roots);
  EXPECT_EQ(back.feature, forest.feature);
  EXPECT_EQ(back.threshold, forest.threshold);
  EXPECT_EQ(back.left, forest.left);
  EXPECT_EQ(back.right, forest.right);
  EXPECT_EQ(back.leaf_class, forest.leaf_class);
  std::filesystem::remove(path);
}

}  // namespace
