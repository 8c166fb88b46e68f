#pragma once
// OpenCV's trees as nn::RandomForest holds them. Private to src/train (and its unit test).
#include <opencv2/ml.hpp>

#include "s2crop/nn/random_forest.hpp"

namespace s2crop::train {

// The one tree `rt` grew (RTrees trained with a single tree), flattened: nodes renumbered depth first from its root,
// an "inversed" split stored with its children swapped so that left is always value <= threshold, a leaf's value
// (the class label) as its class. Throws s2crop::Error if `rt` holds another number of trees or a leaf's class is
// outside [0, n_classes).
nn::RandomForest flatten_rtrees(const cv::ml::RTrees& rt, int n_features, int n_classes);

}  // namespace s2crop::train
