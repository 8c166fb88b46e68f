// `s2crop train --model rf`: a random forest grown with OpenCV's cv::ml::RTrees (the classifier of Sen2Agri/OTB) on
// the LSTM's inputs, its trees shared out over the ranks, flattened into nn::RandomForest and stored in the model
// file like any other model.
#ifndef S2CROP_WITHOUT_OPENCV_ML
#include <opencv2/core.hpp>
#include <opencv2/ml.hpp>

#include "forest_flatten.hpp"
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "sampling.hpp"
#include "setup.hpp"
#include "s2crop/assess/accuracy.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/nn/random_forest.hpp"
#include "s2crop/train/settings.hpp"

namespace fs = std::filesystem;

namespace s2crop::train {

#ifdef S2CROP_WITHOUT_OPENCV_ML
void run_train_forest(const TrainSettings&, const parallel::MpiContext&) {
  throw ConfigError("--model rf: this s2crop was built without OpenCV's ml module (Debian: libopencv-ml-dev), which "
                    "grows the forest; a forest trained elsewhere still classifies here");
}
#else
namespace {

using clock_type = std::chrono::steady_clock;

// A rank's trees as bytes for parallel::gather_strings, and back (the same machine type on every rank).
template <typename T>
void put(std::string& out, const std::vector<T>& v) {
  const std::uint64_t n = v.size();
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}
template <typename T>
void take(const std::string& in, size_t& at, std::vector<T>& v) {
  std::uint64_t n = 0;
  std::memcpy(&n, in.data() + at, sizeof n);
  at += sizeof n;
  v.resize(static_cast<size_t>(n));
  std::memcpy(v.data(), in.data() + at, v.size() * sizeof(T));
  at += v.size() * sizeof(T);
}
std::string pack(const nn::RandomForest& f) {
  std::string out;
  put(out, f.roots);
  put(out, f.feature);
  put(out, f.threshold);
  put(out, f.left);
  put(out, f.right);
  put(out, f.leaf_class);
  return out;
}
nn::RandomForest unpack(const std::string& in, int n_features, int n_classes) {
  nn::RandomForest f;
  f.n_features = n_features;
  f.n_classes = n_classes;
  size_t at = 0;
  take(in, at, f.roots);
  take(in, at, f.feature);
  take(in, at, f.threshold);
  take(in, at, f.left);
  take(in, at, f.right);
  take(in, at, f.leaf_class);
  return f;
}

std::string forest_fingerprint(const TrainSettings& s, const nn::ModelSpec& spec) {
  std::ostringstream o;
  o << "model=rf samples=" << fs::absolute(s.samples).string() << " size=" << fs::file_size(s.samples)
    << " bands=" << join_items(spec.bands, ",") << " ndvi=" << spec.ndvi << " trees=" << s.forest.trees
    << " depth=" << s.forest.max_depth << " min=" << s.forest.min_samples << " active=" << s.forest.active_features
    << " seed=" << s.seed << " tiles=" << join_items(s.tiles, ",") << " val=" << join_items(s.val_tiles, ",")
    << " valf=" << s.val_fraction;
  return o.str();
}

}  // namespace

// One tree grown by RTrees, flattened. OpenCV stores nodes depth first (children after their parent) and, for
// classification, the class label as a leaf's value.
nn::RandomForest flatten_rtrees(const cv::ml::RTrees& rt, int n_features, int n_classes) {
  const auto& roots = rt.getRoots();
  const auto& nodes = rt.getNodes();
  const auto& splits = rt.getSplits();
  if (roots.size() != 1) throw Error("RTrees grew " + std::to_string(roots.size()) + " trees instead of 1");
  nn::RandomForest f;
  f.n_features = n_features;
  f.n_classes = n_classes;
  f.roots.push_back(0);
  // Renumbered from the root, depth first, so that the tree is self-contained whatever OpenCV's numbering.
  std::vector<int> stack{roots[0]};
  std::vector<std::pair<int, int>> parent_slot;  // (new parent index, 0 left / 1 right) of each stacked node
  parent_slot.emplace_back(-1, 0);
  while (!stack.empty()) {
    const int k = stack.back();
    const auto slot = parent_slot.back();
    stack.pop_back();
    parent_slot.pop_back();
    const auto self = static_cast<std::int32_t>(f.feature.size());
    if (slot.first >= 0) (slot.second == 0 ? f.left : f.right)[static_cast<size_t>(slot.first)] = self;
    const cv::ml::DTrees::Node& node = nodes.at(static_cast<size_t>(k));
    if (node.split < 0) {
      f.feature.push_back(-1);
      f.threshold.push_back(0.f);
      f.left.push_back(-1);
      f.right.push_back(-1);
      const int cls = static_cast<int>(std::lround(node.value));
      if (cls < 0 || cls >= n_classes) throw Error("RTrees leaf votes for class " + std::to_string(cls));
      f.leaf_class.push_back(static_cast<std::uint8_t>(cls));
      continue;
    }
    const cv::ml::DTrees::Split& split = splits.at(static_cast<size_t>(node.split));
    // "inversed" swaps the sides of an ordered split; stored un-swapped, left is always value <= threshold.
    f.feature.push_back(split.varIdx);
    f.threshold.push_back(split.c);
    f.left.push_back(-1);
    f.right.push_back(-1);
    f.leaf_class.push_back(0);
    const int lo = split.inversed ? node.right : node.left, hi = split.inversed ? node.left : node.right;
    // Right pushed first: the left subtree is numbered first.
    stack.push_back(hi);
    parent_slot.emplace_back(self, 1);
    stack.push_back(lo);
    parent_slot.emplace_back(self, 0);
  }
  return f;
}

void run_train_forest(const TrainSettings& s, const parallel::MpiContext& mpi) {
  const auto t_start = clock_type::now();
  check_settings(s);
  check_run(s, mpi, fs::path(s.output).parent_path().string());
  samples::TrainingSet labels;
  parallel::root_first(mpi.world(), [&] { labels = samples::read_training_set_labels(s.samples); });
  if (!mpi.is_root()) labels = samples::read_training_set_labels(s.samples);
  nn::ModelSpec spec = model_spec(s, labels.header, {}, mpi);
  spec.kind = "rf";
  spec.hidden = 0;
  spec.layers = 0;
  spec.dropout = 0;
  const Split split = make_split(labels.header.tiles, labels.tile, labels.parcel, s);
  if (split.train.empty()) throw ConfigError("no training samples left after the tile selection and split");
  const std::string fingerprint = forest_fingerprint(s, spec);
  if (already_trained(s, mpi, fingerprint)) return;

  // Every rank holds the whole training set: each tree bootstraps from all of it.
  const auto t_load = clock_type::now();
  const size_t n = labels.size();
  const int nf = spec.n_features(), months = spec.months, values = months * nf;
  std::vector<float> features(n * static_cast<size_t>(values));
  {
    const auto x = samples::read_training_set_x(s.samples, 0, n);
    nn::FeatureMap(spec, labels.header.bands, s.samples).apply(x.data(), n, features.data(), true);
  }
  // The LSTM's normalisation (per feature over the training samples' months): trees do not need it, but classify
  // feeds every model the same FeatureMap.
  set_normalisation(spec, feature_sums(features.data(), 0, n, split.train, months, nf), nf);
  for (size_t i = 0; i < n; ++i)
    for (int m = 0; m < months; ++m)
      for (int k = 0; k < nf; ++k) {
        float& v = features[i * values + static_cast<size_t>(m * nf + k)];
        v = (v - spec.mean[static_cast<size_t>(k)]) / spec.stddev[static_cast<size_t>(k)];
      }
  cv::Mat x_train(static_cast<int>(split.train.size()), values, CV_32F);
  cv::Mat y_train(static_cast<int>(split.train.size()), 1, CV_32S);
  for (size_t r = 0; r < split.train.size(); ++r) {
    std::copy_n(features.data() + static_cast<size_t>(split.train[r]) * values, values, x_train.ptr<float>(static_cast<int>(r)));
    y_train.at<int>(static_cast<int>(r)) = labels.y[split.train[r]];
  }
  auto data = cv::ml::TrainData::create(x_train, cv::ml::ROW_SAMPLE, y_train);
  const double load_s = std::chrono::duration<double>(clock_type::now() - t_load).count();

  const int threads = threads_per_rank(s.threads, mpi.node_size());
  cv::setNumThreads(threads);
  const int T = s.forest.trees, R = mpi.size();
  const int first = static_cast<int>(static_cast<long long>(T) * mpi.rank() / R);
  const int last = static_cast<int>(static_cast<long long>(T) * (mpi.rank() + 1) / R);
  const int active = s.forest.active_features > 0 ? std::min(s.forest.active_features, values)
                                                  : std::max(1, static_cast<int>(std::lround(std::sqrt(values))));
  if (mpi.is_root()) {
    log::info("training set " + s.samples + ": " + std::to_string(n) + " samples, " +
              std::to_string(split.train.size()) + " training, " + std::to_string(split.val.size()) +
              " validation; features " + join_items(spec.bands, ",") + (spec.ndvi ? ",NDVI" : "") + " x " +
              std::to_string(months) + " months = " + std::to_string(values) + " values per sample");
    log::info("model random forest (OpenCV RTrees): " + std::to_string(T) + " trees, max depth " +
              std::to_string(s.forest.max_depth) + ", min samples to split " + std::to_string(s.forest.min_samples) +
              ", " + std::to_string(active) + " values tried per split, " + std::to_string(spec.n_classes()) +
              " classes; " + std::to_string(R) + " rank(s) x " + std::to_string(threads) + " thread(s), rank 0 grows " +
              std::to_string(last - first) + " trees");
  }
  const auto t_train = clock_type::now();
  nn::RandomForest local;
  local.n_features = values;
  local.n_classes = spec.n_classes();
  int reported = 0;
  for (int t = first; t < last; ++t) {
    auto rt = cv::ml::RTrees::create();
    rt->setMaxDepth(s.forest.max_depth);
    rt->setMinSampleCount(s.forest.min_samples);
    rt->setActiveVarCount(active);
    rt->setUseSurrogates(false);
    rt->setCalculateVarImportance(false);
    rt->setTermCriteria(cv::TermCriteria(cv::TermCriteria::MAX_ITER, 1, 0));
    // RTrees draws the bootstrap and each split's candidate values from the calling thread's cv::theRNG(): seeded
    // here by (seed, tree) alone, the tree is the same whichever rank grows it.
    cv::theRNG().state = hash64(s.seed, static_cast<std::uint64_t>(t) + 1) | 1ULL;
    if (!rt->train(data)) throw Error("OpenCV RTrees failed to grow tree " + std::to_string(t));
    local.append(flatten_rtrees(*rt, values, spec.n_classes()));
    const int done = t - first + 1;
    if (mpi.is_root() && (done * 10) / std::max(1, last - first) > reported) {
      reported = (done * 10) / std::max(1, last - first);
      char line[120];
      std::snprintf(line, sizeof line, "grew %d of %d trees on rank 0 (%.1f s)", done, last - first,
                    std::chrono::duration<double>(clock_type::now() - t_train).count());
      log::info(line);
    }
  }
  // Rank 0 joins the trees in tree order (ranks hold consecutive trees).
  const std::vector<std::string> parts = parallel::gather_strings(mpi.world(), pack(local));
  const double train_s = std::chrono::duration<double>(clock_type::now() - t_train).count();

  parallel::root_first(mpi.world(), [&] {
    nn::RandomForest forest;
    forest.n_features = values;
    forest.n_classes = spec.n_classes();
    for (const std::string& part : parts) forest.append(unpack(part, values, spec.n_classes()));
    forest.check(s.output);
    std::ostringstream provenance;
    provenance << s.config_text << "ranks = " << R << "\n";
    std::string validation;
    if (!split.val.empty()) {
      // The held-out share of the training set (--val-fraction / --val-tiles): what the forest scores on it.
      const size_t C = static_cast<size_t>(spec.n_classes());
      std::vector<float> x_val(split.val.size() * static_cast<size_t>(values)), prob(split.val.size() * C);
      for (size_t r = 0; r < split.val.size(); ++r)
        std::copy_n(features.data() + static_cast<size_t>(split.val[r]) * values, values,
                    x_val.data() + r * static_cast<size_t>(values));
      forest.predict(x_val.data(), split.val.size(), prob.data());
      assess::ConfusionMatrix confusion(spec.n_classes());
      for (size_t r = 0; r < split.val.size(); ++r) {
        const float* p = prob.data() + r * C;
        confusion.add(static_cast<int>(std::max_element(p, p + C) - p), labels.y[split.val[r]]);
      }
      const assess::Accuracy a = assess::accuracy(confusion);
      char line[160];
      std::snprintf(line, sizeof line, "validation (%zu samples): OA %.4f, macro-F1 %.4f", split.val.size(), a.overall,
                    a.macro_f1);
      validation = line;
      provenance << "val_oa = " << a.overall << "\nval_macro_f1 = " << a.macro_f1 << "\n";
    }
    nn::save_forest_model(s.output, spec, forest, provenance.str(), fingerprint);
    char line[300];
    std::snprintf(line, sizeof line, "wrote %s (%zu trees, %zu nodes) in %s: %.2f s loading, %.2f s growing trees%s%s",
                  s.output.c_str(), forest.trees(), forest.nodes(),
                  log::format_duration(std::chrono::duration<double>(clock_type::now() - t_start).count()).c_str(),
                  load_s, train_s, validation.empty() ? "" : "; ", validation.c_str());
    log::info(line);
  });
}

#endif  // S2CROP_WITHOUT_OPENCV_ML

}  // namespace s2crop::train
