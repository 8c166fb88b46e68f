#include "s2crop/nn/segmentation_loss.hpp"

#include "s2crop/common/errors.hpp"

namespace s2crop::nn {

namespace F = torch::nn::functional;

void SegmentationLossOptions::check(int64_t outputs) const {
  if (task == "multiclass") {
    if (loss != "ce" && loss != "focal")
      throw ConfigError("segmentation loss '" + loss + "' is not one of ce, focal (multiclass)");
  } else if (task == "multilabel") {
    if (loss != "bce" && loss != "focal" && loss != "dice")
      throw ConfigError("segmentation loss '" + loss + "' is not one of bce, focal, dice (multilabel)");
  } else {
    throw ConfigError("segmentation task '" + task + "' is not one of multiclass, multilabel");
  }
  if (!(focal_gamma >= 0)) throw ConfigError("focal gamma must be >= 0");
  if (!(dice_smooth > 0)) throw ConfigError("Dice smoothing must be > 0");
  if (!weights.empty() && static_cast<int64_t>(weights.size()) != outputs)
    throw ConfigError("segmentation loss has " + std::to_string(weights.size()) + " weights for " +
                      std::to_string(outputs) + (task == "multiclass" ? " classes" : " labels"));
  for (float w : weights)
    if (!(w >= 0)) throw ConfigError("segmentation loss weights must be >= 0");
}

namespace {

torch::Tensor weight_vector(const SegmentationLossOptions& o, int64_t outputs, const torch::Device& device) {
  if (o.weights.empty()) return torch::ones({outputs}, torch::dtype(torch::kFloat32).device(device));
  return torch::tensor(o.weights, torch::dtype(torch::kFloat32)).to(device);
}

// Multiclass: valid pixels [B][H][W] (bool) and the target with invalid pixels set to class 0 (int64).
void multiclass_valid(const torch::Tensor& target, const torch::Tensor& mask, const SegmentationLossOptions& o,
                      int64_t classes, torch::Tensor& valid, torch::Tensor& safe) {
  TORCH_CHECK(target.dim() == 3, "multiclass target must be [batch][H][W], got ", target.sizes());
  auto t = target.to(torch::kInt64);
  valid = t != o.ignore_index;
  if (mask.defined()) {
    TORCH_CHECK(mask.sizes() == target.sizes(), "multiclass mask must be [batch][H][W] like the target, got ",
                mask.sizes());
    valid = valid.logical_and(mask != 0);
  }
  safe = torch::where(valid, t, torch::zeros_like(t));
  TORCH_CHECK(((safe >= 0).logical_and(safe < classes)).all().item<bool>(),
              "multiclass target holds a class outside 0..", classes - 1, " (and not the ignore index ",
              o.ignore_index, ")");
}

// Multilabel: valid entries [B][L][H][W] (bool) and the target as float with invalid entries 0.
void multilabel_valid(const torch::Tensor& target, const torch::Tensor& mask, torch::Tensor& valid,
                      torch::Tensor& safe) {
  TORCH_CHECK(target.dim() == 4, "multilabel target must be [batch][labels][H][W], got ", target.sizes());
  if (!mask.defined()) {
    valid = torch::ones(target.sizes(), torch::dtype(torch::kBool).device(target.device()));
  } else if (mask.dim() == 3) {
    TORCH_CHECK(mask.size(0) == target.size(0) && mask.size(1) == target.size(2) && mask.size(2) == target.size(3),
                "multilabel mask [batch][H][W] does not match the target ", target.sizes());
    valid = (mask != 0).unsqueeze(1).expand(target.sizes()).contiguous();
  } else {
    TORCH_CHECK(mask.sizes() == target.sizes(), "multilabel mask must be [batch][H][W] or like the target, got ",
                mask.sizes());
    valid = mask != 0;
  }
  auto t = target.to(torch::kFloat32);
  safe = torch::where(valid, t, torch::zeros_like(t));
}

torch::Tensor weights_from_valid(const torch::Tensor& valid, const torch::Tensor& safe,
                                 const SegmentationLossOptions& o, const torch::Tensor& w) {
  if (o.task == "multiclass") return (w.index_select(0, safe.flatten()).view_as(safe) * valid).to(torch::kFloat64).sum({1, 2});
  const int64_t labels = valid.size(1);
  auto wl = w.to(torch::kFloat64).view({1, labels});
  if (o.loss == "dice") return ((valid.sum({2, 3}) > 0).to(torch::kFloat64) * wl).sum(1);
  return (valid.to(torch::kFloat64).sum({2, 3}) * wl).sum(1);
}

}  // namespace

torch::Tensor segmentation_loss_weights(const torch::Tensor& target, const torch::Tensor& mask,
                                        const SegmentationLossOptions& o, int64_t outputs) {
  o.check(outputs);
  torch::Tensor valid, safe;
  if (o.task == "multiclass")
    multiclass_valid(target, mask, o, outputs, valid, safe);
  else
    multilabel_valid(target, mask, valid, safe);
  return weights_from_valid(valid, safe, o, weight_vector(o, outputs, target.device()));
}

LossSum segmentation_loss_sum(const torch::Tensor& logits, const torch::Tensor& target, const torch::Tensor& mask,
                              const SegmentationLossOptions& o) {
  TORCH_CHECK(logits.dim() == 4, "logits must be [batch][outputs][H][W], got ", logits.sizes());
  const int64_t outputs = logits.size(1);
  o.check(outputs);
  const auto w = weight_vector(o, outputs, logits.device());
  torch::Tensor valid, safe;
  LossSum out;
  if (o.task == "multiclass") {
    TORCH_CHECK(target.dim() == 3 && target.size(0) == logits.size(0) && target.size(1) == logits.size(2) &&
                    target.size(2) == logits.size(3),
                "multiclass target ", target.sizes(), " does not match the logits ", logits.sizes());
    multiclass_valid(target, mask, o, outputs, valid, safe);
    auto nll = -torch::log_softmax(logits, 1).gather(1, safe.unsqueeze(1)).squeeze(1);  // [B][H][W]
    auto elem = nll * w.index_select(0, safe.flatten()).view_as(safe);
    if (o.loss == "focal") elem = elem * (-torch::expm1(-nll)).clamp_min(1e-12).pow(o.focal_gamma);
    out.sum = (elem * valid.to(elem.scalar_type())).sum();
  } else {
    TORCH_CHECK(target.sizes() == logits.sizes(), "multilabel target ", target.sizes(), " does not match the logits ",
                logits.sizes());
    multilabel_valid(target, mask, valid, safe);
    const auto vf = valid.to(logits.scalar_type());
    const auto wl = w.view({1, outputs, 1, 1});
    if (o.loss == "dice") {
      auto p = torch::sigmoid(logits) * vf;
      auto inter = (p * safe).sum({2, 3}), p_sum = p.sum({2, 3}), t_sum = (safe * vf).sum({2, 3});
      auto dice = 1 - (2 * inter + o.dice_smooth) / (p_sum + t_sum + o.dice_smooth);  // [B][L]
      auto has = (valid.sum({2, 3}) > 0).to(dice.scalar_type());
      out.sum = (dice * has * w.view({1, outputs})).sum();
    } else {
      auto bce = F::binary_cross_entropy_with_logits(
          logits, safe, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
      auto elem = bce;
      // 1 - p_t = 1 - exp(-BCE); clamped so that the gradient of the power stays finite (gamma < 1).
      if (o.loss == "focal") elem = elem * (-torch::expm1(-bce)).clamp_min(1e-12).pow(o.focal_gamma);
      out.sum = (elem * wl * vf).sum();
    }
  }
  out.count = weights_from_valid(valid, safe, o, w).sum();
  return out;
}

torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& target, const torch::Tensor& mask,
                                const SegmentationLossOptions& options, double normaliser) {
  auto s = segmentation_loss_sum(logits, target, mask, options).sum;
  return normaliser > 0 ? s / normaliser : s * 0.0;
}

torch::Tensor segmentation_labels(const torch::Tensor& logits, const std::string& task, double threshold) {
  if (task == "multiclass") return logits.argmax(1).to(torch::kUInt8);
  return (torch::sigmoid(logits) >= threshold).to(torch::kUInt8);
}

}  // namespace s2crop::nn
