#pragma once
// Patch sets as U-Net input, for segmentation and pre-training. Private to src/train.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/nn/model_spec.hpp"
#include "s2crop/parallel/mpi.hpp"
#include "s2crop/samples/patch_set.hpp"

namespace s2crop::train {

// This rank's shard [begin, end) of a patch set as U-Net input [n][C][S][S], normalised with per-channel statistics
// over every rank's training patches (no-data values left out), which are stored in spec.mean / spec.stddev unless
// the spec has them already (a pre-trained encoder's). `shard` (optional) receives the shard's labels and metadata.
torch::Tensor load_patch_inputs(const std::string& path, const samples::PatchSetHeader& header, nn::ModelSpec& spec,
                                const std::vector<std::uint32_t>& train, size_t begin, size_t end,
                                const parallel::MpiContext& mpi, samples::PatchSet* shard_out);

}  // namespace s2crop::train
