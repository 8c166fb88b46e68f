#pragma once
// The random forest of `s2crop train --model rf` as classify and assess use it: every tree flattened into node
// arrays, read from and written to the model file (kind "rf") under /forest. Training (OpenCV's cv::ml::RTrees, the
// classifier Sen2Agri uses) is in src/train/forest_train.cpp; predicting needs neither OpenCV nor LibTorch.
//
// The model's input is the LSTM's (FeatureMap: the same bands, NDVI and normalisation), flattened per sample to
// months x features values, month-major. A tree's node k splits on `feature[k]` (go left where the value is at most
// `threshold[k]`, as OpenCV decides an ordered split) or, with feature -1, is a leaf voting for `leaf_class[k]`.
// The forest's probability of a class is its share of the trees' votes; the class is the first with the most votes
// (OpenCV's RTrees::predict).
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/nn/model_spec.hpp"

namespace s2crop::nn {

struct RandomForest {
  int n_features = 0;  // values per sample (months x features)
  int n_classes = 0;
  std::vector<std::int64_t> roots;        // each tree's first node; a tree's nodes end where the next one's begin
  std::vector<std::int32_t> feature;      // per node: the split's value index, -1 at a leaf
  std::vector<float> threshold;           // per node: left where value <= threshold
  std::vector<std::int32_t> left, right;  // per node: children (node indices; always after the node, within its tree)
  std::vector<std::uint8_t> leaf_class;   // per node: the class a leaf votes for

  size_t trees() const { return roots.size(); }
  size_t nodes() const { return feature.size(); }
  // Appends a forest's trees after this one's (node indices shifted).
  void append(const RandomForest& other);
  // `n` samples of n_features values -> `probability` [n][n_classes] (vote shares).
  void predict(const float* x, size_t n, float* probability) const;
  // Throws InputError naming `where` if the arrays disagree, an index points outside its tree or backwards (a damaged
  // file must not loop or read out of bounds), a feature or class is out of range.
  void check(const std::string& where) const;
};

// Model files (kind "rf"): the spec as every model file holds it (model_file.hpp) plus the forest.
void save_forest_model(const std::string& path, const ModelSpec& spec, const RandomForest& forest,
                       const std::string& provenance, const std::string& run_fingerprint);
// The forest of an "rf" model file, checked against its spec.
RandomForest load_forest(const std::string& path, const ModelSpec& spec);

}  // namespace s2crop::nn
