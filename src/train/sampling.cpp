#include "sampling.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/text.hpp"

namespace s2crop::train {

std::vector<std::uint32_t> permutation(const std::vector<std::uint32_t>& items, std::uint64_t seed, int epoch) {
  std::vector<std::uint32_t> p = items;
  std::uint64_t state = hash64(seed, static_cast<std::uint64_t>(epoch) + 1);
  for (size_t i = p.size(); i > 1; --i) std::swap(p[i - 1], p[hash::splitmix64(state) % i]);
  return p;
}

Split make_split(const std::vector<std::string>& tiles, const std::vector<std::uint16_t>& tile,
                 const std::vector<std::int64_t>& parcel, const TrainSettings& s) {
  auto tile_set = [&](const std::vector<std::string>& names, const char* option) {
    std::set<std::uint16_t> out;
    for (auto& n : names) {
      auto it = std::find(tiles.begin(), tiles.end(), n);
      if (it == tiles.end())
        throw ConfigError(std::string("--") + option + ": tile " + n + " is not in " + s.samples + " (it has " +
                          join_items(tiles, ",") + ")");
      out.insert(static_cast<std::uint16_t>(it - tiles.begin()));
    }
    return out;
  };
  auto use = tile_set(s.tiles, "tiles");
  auto val_tiles = tile_set(s.val_tiles, "val-tiles");
  Split split;
  for (std::uint32_t i = 0; i < tile.size(); ++i) {
    std::uint16_t t = tile[i];
    if (!use.empty() && !use.count(t) && !val_tiles.count(t)) continue;
    bool val;
    if (!val_tiles.empty()) {
      val = val_tiles.count(t) > 0;
    } else {
      // By parcel where parcels are known (pixels of one field are not independent), else by sample.
      std::uint64_t key = !parcel.empty() && parcel[i] >= 0 ? hash64(static_cast<std::uint64_t>(parcel[i]), t + 1ULL)
                                                            : hash64(i, 0x5A17ULL);
      val = static_cast<double>(key >> 11) * 0x1.0p-53 < s.val_fraction;
    }
    (val ? split.val : split.train).push_back(i);
  }
  return split;
}

std::vector<double> feature_sums(const float* features, size_t first, size_t count,
                                 const std::vector<std::uint32_t>& train, int months, int nf) {
  std::vector<double> acc(static_cast<size_t>(2 * nf + 1), 0.0);
  for (auto i : train) {
    if (i < first || i >= first + count) continue;
    const float* row = features + (i - first) * static_cast<size_t>(months * nf);
    for (int m = 0; m < months; ++m)
      for (int k = 0; k < nf; ++k) {
        double v = row[m * nf + k];
        acc[static_cast<size_t>(k)] += v;
        acc[static_cast<size_t>(nf + k)] += v * v;
      }
    acc[static_cast<size_t>(2 * nf)] += static_cast<double>(months);
  }
  return acc;
}

void set_normalisation(nn::ModelSpec& spec, const std::vector<double>& sums, int nf) {
  const double count = sums[static_cast<size_t>(2 * nf)];
  for (int k = 0; k < nf; ++k) {
    double mean = sums[static_cast<size_t>(k)] / count;
    double var = std::max(0.0, sums[static_cast<size_t>(nf + k)] / count - mean * mean);
    spec.mean.push_back(static_cast<float>(mean));
    spec.stddev.push_back(static_cast<float>(std::max(std::sqrt(var), 1e-6)));
  }
}

}  // namespace s2crop::train
