#pragma once
// Which label layers of a patch set a U-Net's outputs learn, and the target / validity tensors made from them: the
// one mapping that training (`segment train`) and evaluation (`segment evaluate`) share.
//   multiclass: the crop_type layer, class indices (255: ignored);
//   multilabel: one output per chosen layer; crop_type expands into one 0/1 output per class (valid where the
//               pixel is labelled); every other layer is binary, 0/1, with 255 = unknown (not counted).
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "s2crop/samples/patch_set.hpp"

namespace s2crop::nn {

struct ModelSpec;

struct SegmentationTargets {
  std::string task = "multiclass";
  std::vector<std::string> names;  // one per model output
  std::vector<int> layer;          // per output: the label layer it comes from
  std::vector<int> cls;            // per output: class k of a crop_type layer, or -1 for a binary layer
  int label_layers = 0;            // layers per patch in the label buffers
  int patch_size = 0;

  // Training: the outputs for `requested` layer names (multilabel; empty: every layer but crop_type) or the
  // crop_type classes (multiclass). Throws ConfigError naming the option and the layers the set has.
  static SegmentationTargets choose(const std::string& task, const std::vector<std::string>& requested,
                                    const samples::PatchSetHeader& header);
  // Evaluation: the outputs of a trained model (its class_names) found again in another patch set's layers.
  // Throws InputError naming `patch_path` when an output has no layer there.
  static SegmentationTargets of_model(const ModelSpec& spec, const samples::PatchSetHeader& header,
                                      const std::string& patch_path);

  int outputs() const { return static_cast<int>(names.size()); }
  // Targets and validity of `n` patches' labels [n][L][S][S]: multiclass int64 [n][S][S] (mask undefined);
  // multilabel float [n][outputs][S][S] with a 0/1 mask of the same shape.
  void make(const std::uint8_t* labels, std::size_t n, torch::Tensor& target, torch::Tensor& mask) const;
  // The truth as assess::SegmentationCounts scores it, from make()'s target and mask: uint8, multiclass [n][S][S]
  // class indices, multilabel [n][outputs][S][S] 0/1; 255 where not counted.
  torch::Tensor truth(const torch::Tensor& target, const torch::Tensor& mask) const;
};

class ImageInputMap;
// U-Net inputs [n][channels][S][S] (float) of `n` patches' images x [n][12][B][S][S] of a patch set with `header`
// through `map` (normalised, or raw reflectance x 1e-4 with `raw`): what training and evaluation feed the U-Net.
torch::Tensor patch_inputs(const ImageInputMap& map, const std::int16_t* x, std::size_t n,
                           const samples::PatchSetHeader& header, bool raw = false);

}  // namespace s2crop::nn
