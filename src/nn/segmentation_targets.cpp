#include "s2crop/nn/segmentation_targets.hpp"

#include "s2crop/common/errors.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/nn/model_spec.hpp"

namespace s2crop::nn {

namespace {

std::string layer_list(const samples::PatchSetHeader& h) { return join_items(h.label_layers); }

}  // namespace

SegmentationTargets SegmentationTargets::choose(const std::string& task, const std::vector<std::string>& requested,
                                                const samples::PatchSetHeader& header) {
  SegmentationTargets t;
  t.task = task;
  t.label_layers = static_cast<int>(header.label_layers.size());
  t.patch_size = header.patch_size;
  const int crop = header.layer_index(samples::kCropTypeLayerName);
  if (task == "multiclass") {
    if (crop < 0)
      throw ConfigError("--head multiclass needs a crop_type label layer; this patch set has " + layer_list(header) +
                        " (use --head multilabel)");
    if (!requested.empty()) throw ConfigError("--targets applies to --head multilabel only");
    for (size_t k = 0; k < header.class_names.size(); ++k) {
      t.names.push_back(header.class_names[k]);
      t.layer.push_back(crop);
      t.cls.push_back(static_cast<int>(k));
    }
    return t;
  }
  std::vector<std::string> wanted = requested;
  if (wanted.empty())
    for (auto& l : header.label_layers)
      if (l != samples::kCropTypeLayerName) wanted.push_back(l);
  if (wanted.empty()) throw ConfigError("--targets: this patch set has only a crop_type layer; name it (--targets crop_type)");
  for (auto& name : wanted) {
    const int l = header.layer_index(name);
    if (l < 0) throw ConfigError("--targets: the patch set has no label layer '" + name + "' (it has " + layer_list(header) + ")");
    if (l == crop) {
      for (size_t k = 0; k < header.class_names.size(); ++k) {
        t.names.push_back(header.class_names[k]);
        t.layer.push_back(l);
        t.cls.push_back(static_cast<int>(k));
      }
    } else {
      t.names.push_back(name);
      t.layer.push_back(l);
      t.cls.push_back(-1);
    }
  }
  return t;
}

SegmentationTargets SegmentationTargets::of_model(const ModelSpec& spec, const samples::PatchSetHeader& header,
                                                  const std::string& patch_path) {
  SegmentationTargets t;
  t.task = spec.unet.task;
  t.label_layers = static_cast<int>(header.label_layers.size());
  t.patch_size = header.patch_size;
  const int crop = header.layer_index(samples::kCropTypeLayerName);
  auto class_of = [&](const std::string& name) {
    for (size_t k = 0; k < header.class_names.size(); ++k)
      if (header.class_names[k] == name) return static_cast<int>(k);
    return -1;
  };
  for (auto& name : spec.class_names) {
    const int l = header.layer_index(name);
    int k = -1;
    if (t.task == "multiclass" || l < 0) {
      k = crop >= 0 ? class_of(name) : -1;
      if (k < 0)
        throw InputError(patch_path, "the model's output '" + name + "' is neither a label layer (" +
                                         layer_list(header) + ") nor a crop_type class of this patch set");
      if (t.task == "multiclass" && k != static_cast<int>(t.names.size()))
        throw InputError(patch_path, "the crop classes differ from the model's (class '" + name + "' is at index " +
                                         std::to_string(k) + " here)");
      t.layer.push_back(crop);
      t.cls.push_back(k);
    } else {
      t.layer.push_back(l);
      t.cls.push_back(-1);
    }
    t.names.push_back(name);
  }
  return t;
}

void SegmentationTargets::make(const std::uint8_t* labels, std::size_t n, torch::Tensor& target,
                               torch::Tensor& mask) const {
  const int64_t S = patch_size, px = S * S, L = label_layers;
  const int64_t N = static_cast<int64_t>(n);
  if (task == "multiclass") {
    target = torch::empty({N, S, S}, torch::kInt64);
    auto* tp = target.data_ptr<int64_t>();
    const int64_t src = layer.empty() ? 0 : layer[0];
    for (int64_t i = 0; i < N; ++i)
      for (int64_t p = 0; p < px; ++p) tp[i * px + p] = labels[(i * L + src) * px + p];
    mask = torch::Tensor();
    return;
  }
  const int64_t O = outputs();
  target = torch::zeros({N, O, S, S});
  mask = torch::ones({N, O, S, S});
  float* tp = target.data_ptr<float>();
  float* mp = mask.data_ptr<float>();
  for (int64_t i = 0; i < N; ++i)
    for (int64_t o = 0; o < O; ++o) {
      const std::uint8_t* plane = labels + (i * L + layer[static_cast<size_t>(o)]) * px;
      float* to = tp + (i * O + o) * px;
      float* mo = mp + (i * O + o) * px;
      const int k = cls[static_cast<size_t>(o)];
      for (int64_t p = 0; p < px; ++p) {
        const std::uint8_t v = plane[p];
        if (v == samples::kNoPatchLabel) {
          to[p] = 0.f;
          mo[p] = 0.f;
        } else {
          to[p] = k >= 0 ? (v == k ? 1.f : 0.f) : (v ? 1.f : 0.f);
        }
      }
    }
}

torch::Tensor SegmentationTargets::truth(const torch::Tensor& target, const torch::Tensor& mask) const {
  if (task == "multiclass") return target.to(torch::kUInt8).contiguous();
  return torch::where(mask > 0, target, torch::full_like(target, 255.0)).to(torch::kUInt8).contiguous();
}

torch::Tensor patch_inputs(const ImageInputMap& map, const std::int16_t* x, std::size_t n,
                           const samples::PatchSetHeader& header, bool raw) {
  const int64_t S = header.patch_size, px = S * S, C = map.channels();
  auto input = torch::empty({static_cast<int64_t>(n), C, S, S});
  float* out = input.data_ptr<float>();
  for (size_t i = 0; i < n; ++i)
    map.apply(x + i * header.x_values(), static_cast<size_t>(px), out + static_cast<int64_t>(i) * C * px, raw);
  return input;
}

}  // namespace s2crop::nn
