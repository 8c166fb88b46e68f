#pragma once
// Self-supervised siamese pre-training of the U-Net encoder (`s2crop pretrain`), SimSiam (Chen & He, 2021): two
// augmented views of a patch go through the same encoder (global average of the deepest level) and a projector;
// a predictor maps one view's projection onto the other's, whose gradient is stopped:
//   loss = D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2,   D(p, z) = -cos(p, z)   (per patch, in [-1, 1])
// Dense variant (for pixel-level tasks): the views are spatially aligned; the embedding of a pixel is its
// hypercolumn (every encoder level at that pixel, stacked), taken at an 8 x 8 grid of pixels per patch, mapped by a
// projector; the loss is VICReg's (Bardes et al., 2022) over those pixels: invariance between the two views of a
// pixel, a standard deviation of at least 1 per dimension, decorrelated dimensions. The batch terms are shared
// equally by the patches of the rank's batch. Neither a per-pixel SimSiam (it collapsed: aligned views that differ
// only in brightness and dropped months are too easy to agree on) nor a pixel InfoNCE (its negatives push apart the
// pixels of one parcel, which hurt fine-tuning) did as well here.
// No negative pairs and no momentum encoder; the stop-gradient and the batch normalisation in the projector and
// predictor keep it from collapsing (the encoder's group-normalised, globally pooled features alone vary little
// between patches). The batch norms use the batch's statistics always (no running statistics, so nothing to
// checkpoint or keep equal between ranks); on several ranks each normalises over its own part of the global batch,
// as data-parallel SimSiam without synchronised batch norm does; both views are normalised together. Only the encoder
// is kept (model kind "unet_encoder"): `segment train --init` loads it.
// Includes LibTorch: only for nn/train/infer sources.
#include <torch/torch.h>

#include "s2crop/nn/unet.hpp"

namespace s2crop::nn {

struct SimSiamImpl : torch::nn::Module {
  // `projection`: projector output size; the predictor's bottleneck is a quarter of it.
  SimSiamImpl(const UNetSpec& spec, int64_t projection, bool dense = false);
  // Per-patch loss [batch] of two views [batch][C][H][W] (the symmetric negative cosine above); `projection1`
  // (optional) receives the first view's projections [batch][projection] (dense: [batch x 64 sampled pixels]
  // [projection], normalised) for the collapse check.
  torch::Tensor loss(const torch::Tensor& view1, const torch::Tensor& view2, torch::Tensor* projection1 = nullptr);

  UNetEncoder encoder{nullptr};
  torch::nn::Sequential projector{nullptr}, predictor{nullptr};
  bool dense = false;
};
TORCH_MODULE(SimSiam);

}  // namespace s2crop::nn
