#pragma once
// Seeded sampling and the train/validation split of the trainer, the same on every rank. Torch-free, private to
// src/train.
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/common/hash.hpp"
#include "s2crop/nn/model_spec.hpp"
#include "s2crop/train/trainer.hpp"

namespace s2crop::train {

// Portable, seeded random numbers (std::shuffle and the std distributions differ between library versions, and a
// run must be reproducible anywhere for a given rank count). The key of a pair: its values decide the split, the
// shuffles and the augmentations of every seeded run, so it must not change.
inline std::uint64_t hash64(std::uint64_t a, std::uint64_t b) { return hash::mix64(a * 0x9E3779B97F4A7C15ULL ^ b); }

// `items` in the order of `epoch`, from `seed` alone (the same on every rank and for every rank count).
std::vector<std::uint32_t> permutation(const std::vector<std::uint32_t>& items, std::uint64_t seed, int epoch);

// Which samples train and which validate, decided identically on every rank from the labels alone.
struct Split {
  std::vector<std::uint32_t> train, val;
};

// `tile` per sample indexes `tiles`; `parcel` per sample (-1 unknown) may be empty (patches: split by patch).
Split make_split(const std::vector<std::string>& tiles, const std::vector<std::uint16_t>& tile,
                 const std::vector<std::int64_t>& parcel, const TrainSettings& s);

// The classifiers' input normalisation, in two steps so that ranks can sum their shards in between: per feature,
// the sum of the values and of their squares over the months of the training samples held in `features`
// ([sample - first][month][feature] for samples [first, first + count)), and the number of values: 2 nf + 1 sums.
std::vector<double> feature_sums(const float* features, size_t first, size_t count,
                                 const std::vector<std::uint32_t>& train, int months, int nf);
// spec.mean and spec.stddev (at least 1e-6) from the sums of every shard.
void set_normalisation(nn::ModelSpec& spec, const std::vector<double>& sums, int nf);

}  // namespace s2crop::train
