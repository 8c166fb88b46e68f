#pragma once
// Augmentation of U-Net patches (segmentation and pre-training). Private to src/train.
#include <torch/torch.h>

#include <cstdint>

#include "s2crop/nn/model_spec.hpp"

namespace s2crop::train {

// Physics-respecting augmentation of one patch, a function of `h` only: a flip, 0-3 quarter turns (applied to the
// targets and mask too, when defined), and a brightness factor in [1 - jitter, 1 + jitter] per band, the same for
// all months of the band (channels are [month][band]); in normalised units x' = x f + (f - 1) mean / sd. No
// operation mixes bands.
void augment_geometry(torch::Tensor& x, torch::Tensor& t, torch::Tensor& m, std::uint64_t h);
void augment_brightness(torch::Tensor& x, std::uint64_t h, double jitter, const nn::ModelSpec& spec);
void augment_patch(torch::Tensor& x, torch::Tensor& t, torch::Tensor& m, std::uint64_t h, double jitter,
                   const nn::ModelSpec& spec);

}  // namespace s2crop::train
