#include "s2crop/nn/random_forest.hpp"

#include <algorithm>
#include <cmath>

#include "s2crop/common/errors.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/nn/model_file_writer.hpp"

namespace s2crop::nn {

void RandomForest::append(const RandomForest& other) {
  const auto shift = static_cast<std::int32_t>(nodes());
  for (std::int64_t r : other.roots) roots.push_back(r + shift);
  feature.insert(feature.end(), other.feature.begin(), other.feature.end());
  threshold.insert(threshold.end(), other.threshold.begin(), other.threshold.end());
  for (size_t k = 0; k < other.nodes(); ++k) {
    const bool leaf = other.feature[k] < 0;
    left.push_back(leaf ? -1 : other.left[k] + shift);
    right.push_back(leaf ? -1 : other.right[k] + shift);
  }
  leaf_class.insert(leaf_class.end(), other.leaf_class.begin(), other.leaf_class.end());
}

void RandomForest::predict(const float* x, size_t n, float* probability) const {
  const size_t C = static_cast<size_t>(n_classes);
  const float trees_f = static_cast<float>(std::max<size_t>(trees(), 1));
  std::vector<std::uint32_t> votes(C);
  for (size_t i = 0; i < n; ++i) {
    const float* v = x + i * static_cast<size_t>(n_features);
    std::fill(votes.begin(), votes.end(), 0u);
    for (std::int64_t root : roots) {
      auto k = static_cast<size_t>(root);
      while (feature[k] >= 0) k = static_cast<size_t>(v[feature[k]] <= threshold[k] ? left[k] : right[k]);
      ++votes[leaf_class[k]];
    }
    // Counted, then divided: equal vote counts give equal probabilities, so ties go to the first class.
    for (size_t c = 0; c < C; ++c) probability[i * C + c] = static_cast<float>(votes[c]) / trees_f;
  }
}

void RandomForest::check(const std::string& where) const {
  const size_t n = nodes();
  if (n_features < 1 || n_classes < 2 || roots.empty() || n == 0 || threshold.size() != n || left.size() != n ||
      right.size() != n || leaf_class.size() != n)
    throw InputError(where, "the random forest's arrays are missing or disagree in length");
  for (size_t t = 0; t < roots.size(); ++t) {
    const std::int64_t begin = roots[t];
    const std::int64_t end = t + 1 < roots.size() ? roots[t + 1] : static_cast<std::int64_t>(n);
    if (begin < 0 || begin >= end || end > static_cast<std::int64_t>(n))
      throw InputError(where, "tree " + std::to_string(t) + " of the random forest has no nodes or overlaps another");
    for (std::int64_t k = begin; k < end; ++k) {
      const auto i = static_cast<size_t>(k);
      if (feature[i] < 0) {
        if (leaf_class[i] >= n_classes)
          throw InputError(where, "a leaf of tree " + std::to_string(t) + " votes for class " +
                                      std::to_string(leaf_class[i]) + " of " + std::to_string(n_classes));
        continue;
      }
      // Children after their node and inside its tree: every walk ends, and in bounds.
      if (feature[i] >= n_features || left[i] <= k || right[i] <= k || left[i] >= end || right[i] >= end ||
          !std::isfinite(threshold[i]))
        throw InputError(where, "node " + std::to_string(k) + " of the random forest is damaged (feature " +
                                    std::to_string(feature[i]) + ", children " + std::to_string(left[i]) + ", " +
                                    std::to_string(right[i]) + ")");
    }
  }
}

void save_forest_model(const std::string& path, const ModelSpec& spec, const RandomForest& forest,
                       const std::string& provenance, const std::string& run_fingerprint) {
  write_model_file(path, spec, provenance, run_fingerprint, [&](h5::File& f) {
    auto g = f.create_group("forest");
    g.set_attr("n_features", static_cast<std::int64_t>(forest.n_features));
    g.set_attr("trees", static_cast<std::int64_t>(forest.trees()));
    g.create_small_dataset<std::int64_t>("roots", forest.roots);
    g.create_small_dataset<std::int32_t>("feature", forest.feature);
    g.create_small_dataset<float>("threshold", forest.threshold);
    g.create_small_dataset<std::int32_t>("left", forest.left);
    g.create_small_dataset<std::int32_t>("right", forest.right);
    g.create_small_dataset<std::uint8_t>("leaf_class", forest.leaf_class);
  });
}

RandomForest load_forest(const std::string& path, const ModelSpec& spec) {
  if (spec.kind != "rf") throw InputError(path, "model kind '" + spec.kind + "' is not a random forest");
  RandomForest forest;
  try {
    h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
    if (!f.exists("forest")) throw InputError(path, "random-forest model file has no /forest");
    auto g = f.open_group("forest");
    forest.n_features = static_cast<int>(g.attr_int("n_features"));
    forest.n_classes = spec.n_classes();
    auto read = [&](const char* name, auto& out) {
      auto ds = g.open_dataset(name);
      const auto dims = ds.dims();
      if (dims.size() != 1) throw InputError(path, std::string("/forest/") + name + " is not a list");
      out.resize(static_cast<size_t>(dims[0]));
      if (!out.empty()) ds.read({0}, dims, out.data());
    };
    read("roots", forest.roots);
    read("feature", forest.feature);
    read("threshold", forest.threshold);
    read("left", forest.left);
    read("right", forest.right);
    read("leaf_class", forest.leaf_class);
  } catch (const InputError&) {
    throw;
  } catch (const Error& e) {
    throw InputError(path, std::string("random-forest model file is incomplete: ") + e.what());
  }
  forest.check(path);
  if (forest.n_features != spec.months * spec.n_features())
    throw InputError(path, "the random forest takes " + std::to_string(forest.n_features) + " values per sample, its " +
                               "spec describes " + std::to_string(spec.months * spec.n_features()));
  return forest;
}

}  // namespace s2crop::nn
