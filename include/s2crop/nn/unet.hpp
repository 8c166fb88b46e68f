#pragma once
// The U-Net for multispectral patches (issue 6): an encoder (plain or ResNet-style) of spec.depth down-sampling
// levels, a decoder that upsamples (transposed conv or bilinear) and concatenates the encoder's skip features, and a
// 1x1 head giving logits per class (multiclass: softmax) or per label (multilabel: a sigmoid each).
//
// Any patch size works: forward() reflect-pads the input to a multiple of 2^depth (split between both sides, the
// odd pixel after), runs the network and crops the output back to the input's size, so output pixel (y, x) is
// input pixel (y, x). A patch whose size is already a multiple of 2^depth is not padded (sliding-window inference
// should use such windows: then padding never depends on where a window lies).
//
// The encoder is its own submodule (`encoder`, parameter names "encoder.*") so that a self-supervised pre-trained
// encoder can be saved and loaded alone (save_model / load_parameters on *unet->encoder) and frozen.
// Includes LibTorch: only for nn/train/infer sources.
#include <torch/torch.h>

#include "s2crop/nn/model_spec.hpp"

namespace s2crop::nn {

// Batch norm, group norm (the largest divisor of the channels not above spec.groups) or nothing.
struct Norm2dImpl : torch::nn::Module {
  Norm2dImpl(const UNetSpec& spec, int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::BatchNorm2d bn{nullptr};
  torch::nn::GroupNorm gn{nullptr};
};
TORCH_MODULE(Norm2d);

// Two (3x3 conv -> norm -> ReLU); the convolutions have a bias only without normalisation.
struct ConvBlockImpl : torch::nn::Module {
  ConvBlockImpl(const UNetSpec& spec, int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  Norm2d norm1{nullptr}, norm2{nullptr};
};
TORCH_MODULE(ConvBlock);

// ResNet basic block: relu(norm(conv3x3(relu(norm(conv3x3_stride(x))))) + shortcut(x)), the shortcut the identity
// or, when the stride or the channels change, a strided 1x1 conv + norm (projection).
struct BasicBlockImpl : torch::nn::Module {
  BasicBlockImpl(const UNetSpec& spec, int64_t in, int64_t out, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, project{nullptr};
  Norm2d norm1{nullptr}, norm2{nullptr}, project_norm{nullptr};
};
TORCH_MODULE(BasicBlock);

struct UNetEncoderImpl : torch::nn::Module {
  explicit UNetEncoderImpl(const UNetSpec& spec);
  // x [batch][in_channels][H][W], H and W multiples of spec.multiple() -> the features of levels 0..depth, level l
  // [batch][width * 2^l][H / 2^l][W / 2^l] (level 0 at full resolution, level depth the deepest).
  std::vector<torch::Tensor> forward(const torch::Tensor& x);
  // Global average of the deepest level, [batch][width * 2^depth], for any input size (padded as UNet::forward):
  // the embedding a siamese projector (SimSiam) takes.
  torch::Tensor pooled(const torch::Tensor& x);
  int64_t out_channels() const { return spec.channels(spec.depth); }

  UNetSpec spec;
  // plain: one ConvBlock per level, 2x2 max-pool before levels 1..depth; resnet: a Sequential of BasicBlocks per
  // level, the first with stride 2 (levels 1..depth) or a projection from the input bands (level 0).
  torch::nn::ModuleList levels{nullptr};
};
TORCH_MODULE(UNetEncoder);

// x2 upsampling from `in` to `out` channels: 2x2 transposed conv (stride 2), or bilinear x2 then 1x1 conv.
struct UpsampleImpl : torch::nn::Module {
  UpsampleImpl(const UNetSpec& spec, int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::ConvTranspose2d transpose{nullptr};
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample);

struct UNetDecoderImpl : torch::nn::Module {
  explicit UNetDecoderImpl(const UNetSpec& spec);
  // The encoder's features (levels 0..depth) -> [batch][width][H][W].
  torch::Tensor forward(const std::vector<torch::Tensor>& features);
  // ups[k], blocks[k] go from level depth-k to level depth-k-1 (k = 0..depth-1).
  std::vector<Upsample> ups;
  std::vector<ConvBlock> blocks;
};
TORCH_MODULE(UNetDecoder);

struct UNetImpl : torch::nn::Module {
  explicit UNetImpl(const UNetSpec& spec);  // spec.check() first (ConfigError)
  // x [batch][in_channels][H][W] (normalised), any H, W >= 1 -> logits [batch][outputs][H][W].
  torch::Tensor forward(const torch::Tensor& x);
  // Softmax over classes (multiclass) or a sigmoid per label (multilabel) of forward(x).
  torch::Tensor probabilities(const torch::Tensor& x);
  torch::Tensor pooled_features(const torch::Tensor& x) { return encoder->pooled(x); }

  std::vector<torch::Tensor> encoder_parameters() const { return encoder->parameters(); }
  // Parameters that require a gradient (all but a frozen encoder's): what an optimiser should update.
  std::vector<torch::Tensor> trainable_parameters() const;
  // Frozen: the encoder's parameters stop requiring gradients (their gradients are dropped) and the encoder stays in
  // eval mode whatever train() says, so its batch-norm statistics and dropout do not change either.
  void freeze_encoder(bool frozen = true);
  bool encoder_frozen() const { return encoder_frozen_; }
  void train(bool on = true) override;

  UNetSpec spec;
  UNetEncoder encoder{nullptr};
  UNetDecoder decoder{nullptr};
  torch::nn::Dropout2d dropout{nullptr};  // on the deepest features and before the head (spec.dropout > 0)
  torch::nn::Conv2d head{nullptr};

 private:
  bool encoder_frozen_ = false;
};
TORCH_MODULE(UNet);

// Reflect-pads x [batch][channels][H][W] to the next multiple of `multiple` in H and W, before = pad / 2 and
// after = the rest on each axis (replicate where a side is a single pixel; reflection repeated where the pad
// exceeds the size). `top`, `left` receive the offset of the original pixels.
torch::Tensor pad_to_multiple(const torch::Tensor& x, int64_t multiple, int64_t& top, int64_t& left);

}  // namespace s2crop::nn
