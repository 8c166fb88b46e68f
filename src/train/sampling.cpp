#include "sampling.hpp"

#include <algorithm>
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

}  // namespace s2crop::train
