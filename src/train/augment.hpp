#pragma once
// Augmentation of U-Net patches (segmentation and pre-training) and of the classifier's pixel series. Private to
// src/train.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

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

// What augment_series does to a pixel's 12-month series (normalised features [month][feature]).
struct SeriesAugmentation {
  double jitter = 0.1;       // gain per reflectance band in [1 - jitter, 1 + jitter], the same for all months (a
                             // brighter or darker acquisition year, soil, sensor calibration); NDVI kept
  double mask_months = 0.15; // probability of a month being lost to clouds: replaced by the linear interpolation of
                             // its nearest kept neighbours, as compositing gap-fills it
  double shift = 0.25;       // the season moved by up to this share of a month either way (sowing a week earlier
                             // or later): each month becomes the mix of itself and its neighbour
  bool active() const { return jitter > 0 || mask_months > 0 || shift > 0; }
};

// Augments `x` ([batch][month][feature], normalised by spec.mean/stddev, on any device) in place. Sample b's
// augmentation is a function of seeds[b] alone (callers hash the sample's index, the step and the run's seed), so
// that it does not depend on how a batch is split over ranks.
void augment_series(torch::Tensor& x, const std::vector<std::uint64_t>& seeds, const SeriesAugmentation& a,
                    const nn::ModelSpec& spec);

}  // namespace s2crop::train
