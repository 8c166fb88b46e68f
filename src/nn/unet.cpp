#include "s2crop/nn/unet.hpp"

#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>

namespace s2crop::nn {

namespace F = torch::nn::functional;

namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, bool bias) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(bias));
}

// Reflect-pads one axis (dim 2 or 3) by `before`, `after`, in rounds where the pad exceeds size - 1.
torch::Tensor pad_axis(torch::Tensor x, int64_t dim, int64_t before, int64_t after) {
  while (before > 0 || after > 0) {
    const int64_t size = x.size(dim);
    if (size == 1) {
      std::vector<int64_t> pad = dim == 3 ? std::vector<int64_t>{before, after, 0, 0}
                                          : std::vector<int64_t>{0, 0, before, after};
      return F::pad(x, F::PadFuncOptions(pad).mode(torch::kReplicate));
    }
    const int64_t b = std::min(before, size - 1), a = std::min(after, size - 1);
    std::vector<int64_t> pad = dim == 3 ? std::vector<int64_t>{b, a, 0, 0} : std::vector<int64_t>{0, 0, b, a};
    x = F::pad(x, F::PadFuncOptions(pad).mode(torch::kReflect));
    before -= b;
    after -= a;
  }
  return x;
}

}  // namespace

torch::Tensor pad_to_multiple(const torch::Tensor& x, int64_t multiple, int64_t& top, int64_t& left) {
  TORCH_CHECK(x.dim() == 4, "U-Net input must be [batch][channels][height][width], got ", x.sizes());
  const int64_t h = x.size(2), w = x.size(3);
  TORCH_CHECK(h >= 1 && w >= 1, "U-Net input is empty: ", x.sizes());
  const int64_t ph = (multiple - h % multiple) % multiple, pw = (multiple - w % multiple) % multiple;
  top = ph / 2;
  left = pw / 2;
  if (ph == 0 && pw == 0) return x;
  return pad_axis(pad_axis(x, 2, top, ph - top), 3, left, pw - left);
}

// ---- building blocks

Norm2dImpl::Norm2dImpl(const UNetSpec& spec, int64_t channels) {
  if (spec.norm == "batch") {
    bn = register_module("bn", torch::nn::BatchNorm2d(channels));
  } else if (spec.norm == "group") {
    int64_t groups = std::min<int64_t>(spec.groups, channels);
    while (channels % groups) --groups;
    gn = register_module("gn", torch::nn::GroupNorm(groups, channels));
  }
}

torch::Tensor Norm2dImpl::forward(const torch::Tensor& x) {
  if (bn) return bn->forward(x);
  if (gn) return gn->forward(x);
  return x;
}

ConvBlockImpl::ConvBlockImpl(const UNetSpec& spec, int64_t in, int64_t out) {
  const bool bias = spec.norm == "none";
  conv1 = register_module("conv1", conv(in, out, 3, 1, bias));
  norm1 = register_module("norm1", Norm2d(spec, out));
  conv2 = register_module("conv2", conv(out, out, 3, 1, bias));
  norm2 = register_module("norm2", Norm2d(spec, out));
}

torch::Tensor ConvBlockImpl::forward(const torch::Tensor& x) {
  auto y = torch::relu(norm1->forward(conv1->forward(x)));
  return torch::relu(norm2->forward(conv2->forward(y)));
}

BasicBlockImpl::BasicBlockImpl(const UNetSpec& spec, int64_t in, int64_t out, int64_t stride) {
  const bool bias = spec.norm == "none";
  conv1 = register_module("conv1", conv(in, out, 3, stride, bias));
  norm1 = register_module("norm1", Norm2d(spec, out));
  conv2 = register_module("conv2", conv(out, out, 3, 1, bias));
  norm2 = register_module("norm2", Norm2d(spec, out));
  if (stride != 1 || in != out) {
    project = register_module("project", conv(in, out, 1, stride, bias));
    project_norm = register_module("project_norm", Norm2d(spec, out));
  }
}

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x) {
  auto y = torch::relu(norm1->forward(conv1->forward(x)));
  y = norm2->forward(conv2->forward(y));
  auto shortcut = project ? project_norm->forward(project->forward(x)) : x;
  return torch::relu(y + shortcut);
}

// ---- encoder

UNetEncoderImpl::UNetEncoderImpl(const UNetSpec& spec_) : spec(spec_) {
  levels = register_module("levels", torch::nn::ModuleList());
  for (int l = 0; l <= spec.depth; ++l) {
    const int64_t in = l == 0 ? spec.in_channels : spec.channels(l - 1), out = spec.channels(l);
    if (spec.encoder == "plain") {
      levels->push_back(ConvBlock(spec, in, out));
    } else {
      torch::nn::Sequential level;
      for (int b = 0; b < spec.blocks; ++b)
        level->push_back(BasicBlock(spec, b == 0 ? in : out, out, b == 0 && l > 0 ? 2 : 1));
      levels->push_back(level);
    }
  }
}

std::vector<torch::Tensor> UNetEncoderImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == spec.in_channels, "U-Net encoder expects [batch][", spec.in_channels,
              "][H][W], got ", x.sizes());
  TORCH_CHECK(x.size(2) % spec.multiple() == 0 && x.size(3) % spec.multiple() == 0,
              "U-Net encoder input size must be a multiple of ", spec.multiple(), " (UNet::forward pads), got ",
              x.sizes());
  std::vector<torch::Tensor> features;
  torch::Tensor y = x;
  for (int l = 0; l <= spec.depth; ++l) {
    if (spec.encoder == "plain") {
      if (l > 0) y = torch::max_pool2d(y, 2);
      y = levels[static_cast<size_t>(l)]->as<ConvBlock>()->forward(y);
    } else {
      y = levels[static_cast<size_t>(l)]->as<torch::nn::Sequential>()->forward(y);
    }
    features.push_back(y);
  }
  return features;
}

torch::Tensor UNetEncoderImpl::pooled(const torch::Tensor& x) {
  int64_t top = 0, left = 0;
  auto features = forward(pad_to_multiple(x, spec.multiple(), top, left));
  return features.back().mean({2, 3});
}

// ---- decoder

UpsampleImpl::UpsampleImpl(const UNetSpec& spec, int64_t in, int64_t out) {
  if (spec.upsampling == "transpose")
    transpose = register_module("transpose",
                                torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in, out, 2).stride(2)));
  else
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)));
}

torch::Tensor UpsampleImpl::forward(const torch::Tensor& x) {
  if (transpose) return transpose->forward(x);
  auto up = F::interpolate(x, F::InterpolateFuncOptions()
                                  .scale_factor(std::vector<double>{2.0, 2.0})
                                  .mode(torch::kBilinear)
                                  .align_corners(false));
  return conv->forward(up);
}

UNetDecoderImpl::UNetDecoderImpl(const UNetSpec& spec) {
  for (int k = 0; k < spec.depth; ++k) {
    const int level = spec.depth - k - 1;  // the level this stage produces
    const int64_t c = spec.channels(level);
    ups.push_back(register_module("up" + std::to_string(k), Upsample(spec, spec.channels(level + 1), c)));
    blocks.push_back(register_module("block" + std::to_string(k), ConvBlock(spec, 2 * c, c)));
  }
}

torch::Tensor UNetDecoderImpl::forward(const std::vector<torch::Tensor>& features) {
  TORCH_CHECK(features.size() == ups.size() + 1, "U-Net decoder expects ", ups.size() + 1, " feature levels, got ",
              features.size());
  torch::Tensor y = features.back();
  for (size_t k = 0; k < ups.size(); ++k) {
    const auto& skip = features[features.size() - 2 - k];
    y = blocks[k]->forward(torch::cat({ups[k]->forward(y), skip}, 1));
  }
  return y;
}

// ---- the network

namespace {

// Debian 13's LibTorch 2.6 computes NaN gradients for the first encoder level of a batch-norm U-Net through its
// oneDNN (mkldnn) CPU kernels on AVX-512 machines (UNet.OverfitsATinySquareSegmentation, scripts/libtorch2-check.sh;
// every op alone is fine), which stops a training at its first step. On LibTorch 2.x the U-Net's CPU kernels are
// ATen's own unless S2CROP_ONEDNN=1; 1.13 keeps oneDNN (its results are unchanged).
void choose_cpu_kernels() {
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
  static std::once_flag once;
  std::call_once(once, [] {
    const char* onednn = std::getenv("S2CROP_ONEDNN");
    if (!onednn || std::string(onednn) != "1") at::globalContext().setUserEnabledMkldnn(false);
  });
#endif
}

}  // namespace

UNetImpl::UNetImpl(const UNetSpec& spec_) : spec(spec_) {
  choose_cpu_kernels();
  spec.check();
  encoder = register_module("encoder", UNetEncoder(spec));
  decoder = register_module("decoder", UNetDecoder(spec));
  if (spec.dropout > 0) dropout = register_module("dropout", torch::nn::Dropout2d(spec.dropout));
  head = register_module("head", torch::nn::Conv2d(torch::nn::Conv2dOptions(spec.channels(0), spec.outputs, 1)));
}

torch::Tensor UNetImpl::forward(const torch::Tensor& x) {
  const int64_t h = x.dim() == 4 ? x.size(2) : 0, w = x.dim() == 4 ? x.size(3) : 0;
  int64_t top = 0, left = 0;
  auto features = encoder->forward(pad_to_multiple(x, spec.multiple(), top, left));
  if (dropout) features.back() = dropout->forward(features.back());
  auto y = decoder->forward(features);
  if (dropout) y = dropout->forward(y);
  y = head->forward(y);
  if (y.size(2) != h || y.size(3) != w) y = y.narrow(2, top, h).narrow(3, left, w);
  return y;
}

torch::Tensor UNetImpl::probabilities(const torch::Tensor& x) {
  auto logits = forward(x);
  return spec.task == "multiclass" ? torch::softmax(logits, 1) : torch::sigmoid(logits);
}

std::vector<torch::Tensor> UNetImpl::trainable_parameters() const {
  std::vector<torch::Tensor> out;
  for (auto& p : parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
}

void UNetImpl::freeze_encoder(bool frozen) {
  encoder_frozen_ = frozen;
  for (auto& p : encoder->parameters()) {
    p.set_requires_grad(!frozen);
    if (frozen) p.mutable_grad() = torch::Tensor();
  }
  if (frozen)
    encoder->eval();
  else
    encoder->train(is_training());
}

void UNetImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (encoder_frozen_) encoder->eval();
}

}  // namespace s2crop::nn
