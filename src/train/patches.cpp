#include "patches.hpp"

#include <algorithm>
#include <cmath>

#include "s2crop/nn/segmentation_targets.hpp"

namespace s2crop::train {

torch::Tensor load_patch_inputs(const std::string& path, const samples::PatchSetHeader& header, nn::ModelSpec& spec,
                                const std::vector<std::uint32_t>& train, size_t begin, size_t end,
                                const parallel::MpiContext& mpi, samples::PatchSet* shard_out) {
  auto shard = samples::read_patch_set(path, begin, end);
  const int64_t S = header.patch_size, px = S * S, n = static_cast<int64_t>(shard.size());
  nn::ImageInputMap raw(spec, header.bands, path);
  const int64_t C = raw.channels();
  auto input = nn::patch_inputs(raw, shard.x.data(), shard.size(), header, true);
  std::vector<double> acc(static_cast<size_t>(3 * C), 0.0);  // sum, sum of squares, count per channel
  std::vector<char> is_train(header.patches, 0);
  for (auto i : train) is_train[i] = 1;
  const float* f = input.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    if (!is_train[begin + static_cast<size_t>(i)]) continue;
    for (int64_t c = 0; c < C; ++c) {
      const float* plane = f + (i * C + c) * px;
      for (int64_t p = 0; p < px; ++p) {
        if (plane[p] == 0.f) continue;  // no data (a reflectance of exactly 0 is rare and says little)
        acc[static_cast<size_t>(c)] += plane[p];
        acc[static_cast<size_t>(C + c)] += static_cast<double>(plane[p]) * plane[p];
        acc[static_cast<size_t>(2 * C + c)] += 1;
      }
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, acc.data(), static_cast<int>(acc.size()), MPI_DOUBLE, MPI_SUM, mpi.world());
  if (spec.mean.empty()) {
    for (int64_t c = 0; c < C; ++c) {
      const double count = std::max(1.0, acc[static_cast<size_t>(2 * C + c)]);
      const double mean = acc[static_cast<size_t>(c)] / count;
      const double var = std::max(0.0, acc[static_cast<size_t>(C + c)] / count - mean * mean);
      spec.mean.push_back(static_cast<float>(mean));
      spec.stddev.push_back(static_cast<float>(std::max(std::sqrt(var), 1e-6)));
    }
  }
  input = nn::patch_inputs(nn::ImageInputMap(spec, header.bands, path), shard.x.data(), shard.size(), header);
  if (shard_out) {
    shard.x = {};
    *shard_out = std::move(shard);
  }
  return input;
}

}  // namespace s2crop::train
