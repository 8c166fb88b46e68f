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
// Masked-month reconstruction (dense, `reconstruction` > 0): the U-Net decoder and a 1 x 1 head also predict, at
// every pixel of each view, the months that view dropped (and, weighted by 0.05, the months it kept) of the patch as
// it was before brightness jitter and dropping, in normalised reflectance (mean squared error). Reconstructing a
// crop's missing months from the others is what its phenology tells; on the scarce-label experiment it is what made
// pre-training help (bench/RESULTS.md), where the siamese terms alone did not. The decoder is then kept too.
// No negative pairs and no momentum encoder; the stop-gradient and the batch normalisation in the projector and
// predictor keep it from collapsing (the encoder's group-normalised, globally pooled features alone vary little
// between patches). The batch norms use the batch's statistics always (no running statistics, so nothing to
// checkpoint or keep equal between ranks); on several ranks each normalises over its own part of the global batch,
// as data-parallel SimSiam without synchronised batch norm does; both views are normalised together. Only the encoder
// (and the decoder, where reconstruction trained it) is kept, as a model of kind "unet_encoder" whose parameters are
// named as in a U-Net ("encoder.*", "decoder.*"): `segment train --init` loads it.
// Includes LibTorch: only for nn/train/infer sources.
#include <torch/torch.h>

#include "s2crop/nn/unet.hpp"

namespace s2crop::nn {

// Two augmented views of a batch of patches, [batch][C][H][W] each (dense: aligned pixel by pixel). With
// reconstruction: `target`, the patches before jitter and dropping (same geometry), and `dropped1`/`dropped2`
// [batch][C], 1 where the view blanked that channel.
struct SiameseViews {
  torch::Tensor view1, view2, target, dropped1, dropped2;
};
// Per-patch losses [batch]: `total` = `siamese` (+ reconstruction weight x `reconstruction`, defined only with
// reconstruction).
struct SiameseLoss {
  torch::Tensor total, siamese, reconstruction;
};

struct SimSiamImpl : torch::nn::Module {
  // `projection`: projector output size; the predictor's bottleneck is a quarter of it. `reconstruction` (dense
  // only): the weight of the masked-month reconstruction term (0: off, no decoder).
  SimSiamImpl(const UNetSpec& spec, int64_t projection, bool dense = false, double reconstruction = 0.0);
  // The per-patch losses of two views (SimSiam: the symmetric negative cosine above; dense: VICReg, plus the
  // reconstruction); `projection1` (optional) receives the first view's projections [batch][projection] (dense:
  // [batch x 64 sampled pixels][projection]) for the collapse check.
  SiameseLoss loss(const SiameseViews& views, torch::Tensor* projection1 = nullptr);
  bool reconstructs() const { return reconstruction_weight > 0; }

  UNetEncoder encoder{nullptr};
  UNetDecoder decoder{nullptr};        // with reconstruction
  torch::nn::Conv2d reconstruct{nullptr};  // with reconstruction: decoder features -> the input channels
  torch::nn::Sequential projector{nullptr}, predictor{nullptr};
  // What pre-training keeps: the encoder (and decoder) under the names a U-Net gives them. Not a registered
  // submodule (its parameters are the encoder's and decoder's, counted once).
  std::shared_ptr<torch::nn::Module> kept;
  bool dense = false;
  double reconstruction_weight = 0.0;
};
TORCH_MODULE(SimSiam);

}  // namespace s2crop::nn
