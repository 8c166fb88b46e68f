#pragma once
// Losses of the U-Net's two heads, masked so that no-data pixels never contribute (neither to the loss nor to its
// gradient), returned as a SUM with its normaliser so that a data-parallel trainer can divide by the weight of
// the whole global batch (as Task::loss divides by batch_weight): on one rank, mean = sum / count; across ranks,
// loss = sum_on_this_rank / (sum over all ranks of count) -- and segmentation_loss_weights gives each sample's
// share of count in advance, which is what Task::weight(i) must return.
//
//   multiclass, logits [B][C][H][W], target integer [B][H][W] (class index, `ignore_index` = no data):
//     ce     per valid pixel  w[y] * -log softmax(z)_y                          count: sum of w[y] over valid pixels
//     focal  per valid pixel  w[y] * (1 - p_y)^gamma * -log p_y                 count: as ce
//   multilabel, logits [B][L][H][W], target [B][L][H][W] in {0, 1} (any dtype; values at invalid entries ignored):
//     bce    per valid (pixel, label)  w[l] * BCE(sigmoid(z), t)                 count: sum of w[l] over valid entries
//     focal  per valid (pixel, label)  w[l] * (1 - p_t)^gamma * BCE              count: as bce (gamma 0 = bce)
//     dice   per (sample, label) with at least one valid pixel
//            w[l] * (1 - (2 sum(p t) + s) / (sum(p) + sum(t) + s)), sums over the valid pixels, s = dice_smooth
//                                                                   count: sum of w[l] over those (sample, label)
//            Dice is not a sum over pixels: it is defined per sample and label (so a sample's loss does not
//            depend on its batch), and a (sample, label) with no valid pixel contributes nothing. The smoothing
//            term makes it 0 for a label absent from both truth and prediction.
// `mask` (optional; an undefined tensor = every pixel valid): nonzero = valid; [B][H][W] for both tasks, or
// [B][L][H][W] (multilabel: validity per label). Multiclass pixels are valid where mask != 0 and target !=
// ignore_index. `weights`: per class (multiclass) or per label (multilabel); empty = all 1.
// Includes LibTorch: only for nn/train/infer sources.
#include <torch/torch.h>

#include <string>
#include <vector>

namespace s2crop::nn {

struct SegmentationLossOptions {
  std::string task = "multiclass";  // multiclass | multilabel
  std::string loss = "ce";          // multiclass: ce | focal; multilabel: bce | focal | dice
  double focal_gamma = 2.0;
  std::vector<float> weights;       // per class / label; empty = 1
  int64_t ignore_index = 255;       // multiclass target value of no-data pixels
  double dice_smooth = 1.0;
  // Throws ConfigError naming the option (unknown task or loss, negative gamma, weights not of size `outputs`).
  void check(int64_t outputs) const;
};

struct LossSum {
  torch::Tensor sum;    // 0-d, differentiable
  torch::Tensor count;  // 0-d, the normaliser of sum (no gradient); mean = sum / count
};

LossSum segmentation_loss_sum(const torch::Tensor& logits, const torch::Tensor& target, const torch::Tensor& mask,
                              const SegmentationLossOptions& options);

// sum / normaliser (e.g. the global batch weight); a normaliser <= 0 gives 0 (a batch with nothing valid).
torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& target, const torch::Tensor& mask,
                                const SegmentationLossOptions& options, double normaliser);

// Each sample's share of LossSum::count, [B] float64 (needs no logits: a trainer computes it once per patch).
// `outputs`: classes / labels (multilabel: target.size(1)).
torch::Tensor segmentation_loss_weights(const torch::Tensor& target, const torch::Tensor& mask,
                                        const SegmentationLossOptions& options, int64_t outputs);

// Hard labels from logits, uint8: multiclass the argmax [B][H][W]; multilabel sigmoid(z) >= threshold
// [B][L][H][W] as 0/1.
torch::Tensor segmentation_labels(const torch::Tensor& logits, const std::string& task, double threshold = 0.5);

}  // namespace s2crop::nn
