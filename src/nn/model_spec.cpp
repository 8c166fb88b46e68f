#include "s2crop/common/text.hpp"
#include "s2crop/nn/model_spec.hpp"

#include <algorithm>

#include "s2crop/common/errors.hpp"

namespace s2crop::nn {

namespace {
int find(const std::vector<std::string>& v, const std::string& name) {
  auto it = std::find(v.begin(), v.end(), name);
  return it == v.end() ? -1 : static_cast<int>(it - v.begin());
}
}  // namespace

std::string ndvi_nir_band(const std::vector<std::string>& bands) {
  if (find(bands, "B04") < 0) return "";
  if (find(bands, "B08") >= 0) return "B08";
  if (find(bands, "B8A") >= 0) return "B8A";
  return "";
}

FeatureMap::FeatureMap(const ModelSpec& spec, const std::vector<std::string>& source_bands,
                       const std::string& source_name)
    : spec_(spec), n_source_(static_cast<int>(source_bands.size())), n_features_(spec.n_features()) {
  for (auto& b : spec.bands) {
    int i = find(source_bands, b);
    if (i < 0)
      throw ConfigError(source_name + " has bands " + join_items(source_bands, ",") + " but the model needs " + join_items(spec.bands, ",") +
                        " (band " + b + " is missing): use a model trained on these bands");
    source_index_.push_back(i);
  }
  if (spec.ndvi) {
    red_ = find(source_bands, "B04");
    nir_ = find(source_bands, spec.ndvi_nir);
    if (red_ < 0 || nir_ < 0)
      throw ConfigError(source_name + " lacks B04 or " + spec.ndvi_nir + ", which the model needs for NDVI");
  }
  bool normalised = !spec.mean.empty();
  if (normalised && (spec.mean.size() != static_cast<size_t>(n_features_) ||
                     spec.stddev.size() != static_cast<size_t>(n_features_)))
    throw ConfigError(source_name + ": model normalisation has the wrong number of features");
}

void FeatureMap::apply(const std::int16_t* series, size_t n, float* out, bool raw) const {
  const bool norm = !raw && !spec_.mean.empty();
  const size_t nb = source_index_.size();
  for (size_t s = 0; s < n; ++s) {
    for (int m = 0; m < spec_.months; ++m) {
      const std::int16_t* in = series + (s * static_cast<size_t>(spec_.months) + static_cast<size_t>(m)) *
                                            static_cast<size_t>(n_source_);
      float* o = out + (s * static_cast<size_t>(spec_.months) + static_cast<size_t>(m)) *
                           static_cast<size_t>(n_features_);
      for (size_t f = 0; f < nb; ++f) o[f] = static_cast<float>(in[source_index_[f]]) * 1e-4f;
      if (spec_.ndvi) {
        float red = static_cast<float>(in[red_]), nir = static_cast<float>(in[nir_]);
        float sum = nir + red;
        o[nb] = sum > 0.f ? (nir - red) / sum : 0.f;
      }
      if (norm)
        for (int f = 0; f < n_features_; ++f) o[f] = (o[f] - spec_.mean[static_cast<size_t>(f)]) / spec_.stddev[static_cast<size_t>(f)];
    }
  }
}

}  // namespace s2crop::nn

namespace s2crop::nn {

void UNetSpec::check() const {
  auto fail = [](const std::string& what) { throw ConfigError("U-Net: " + what); };
  if (in_channels < 1) fail("input bands must be at least 1 (got " + std::to_string(in_channels) + ")");
  if (outputs < 1) fail("outputs must be at least 1 (got " + std::to_string(outputs) + ")");
  if (task != "multiclass" && task != "multilabel") fail("task must be multiclass or multilabel (got '" + task + "')");
  if (task == "multiclass" && outputs < 2) fail("a multiclass head needs at least 2 classes");
  if (depth < 0 || depth > 8) fail("depth must be 0-8 (got " + std::to_string(depth) + ")");
  if (width < 1 || (static_cast<long long>(width) << depth) > (1LL << 16))
    fail("width must be at least 1 and width * 2^depth at most 65536 (got width " + std::to_string(width) + ")");
  if (norm != "batch" && norm != "group" && norm != "none") fail("norm must be batch, group or none (got '" + norm + "')");
  if (groups < 1) fail("groups must be at least 1");
  if (encoder != "plain" && encoder != "resnet") fail("encoder must be plain or resnet (got '" + encoder + "')");
  if (encoder == "resnet" && blocks < 1) fail("a resnet encoder needs at least 1 block per level");
  if (upsampling != "transpose" && upsampling != "bilinear")
    fail("upsampling must be transpose or bilinear (got '" + upsampling + "')");
  if (!(dropout >= 0 && dropout < 1)) fail("dropout must be in [0, 1)");
  if (months.empty()) fail("at least one month must be stacked into the input");
  for (int m : months)
    if (m < 0 || m > 11) fail("months are 0-11 (season months), got " + std::to_string(m));
}

ImageInputMap::ImageInputMap(const ModelSpec& spec, const std::vector<std::string>& source_bands,
                             const std::string& source_name)
    : mean_(spec.mean), stddev_(spec.stddev) {
  std::vector<size_t> band_index;
  for (auto& b : spec.bands) {
    auto it = std::find(source_bands.begin(), source_bands.end(), b);
    if (it == source_bands.end())
      throw ConfigError(source_name + ": band " + b + " is missing, but the model was trained with it");
    band_index.push_back(static_cast<size_t>(it - source_bands.begin()));
  }
  for (int m : spec.unet.months)
    for (size_t b : band_index) channel_source_.push_back(static_cast<size_t>(m) * source_bands.size() + b);
  if (!mean_.empty() && (mean_.size() != channel_source_.size() || stddev_.size() != channel_source_.size()))
    throw ConfigError(source_name + ": the model's normalisation has " + std::to_string(mean_.size()) +
                      " channels but its months x bands give " + std::to_string(channel_source_.size()));
}

void ImageInputMap::apply(const std::int16_t* x, size_t pixels, float* out, bool raw) const {
  const bool normalise = !raw && !mean_.empty();
  for (size_t c = 0; c < channel_source_.size(); ++c) {
    const std::int16_t* src = x + channel_source_[c] * pixels;
    float* dst = out + c * pixels;
    const float mean = normalise ? mean_[c] : 0.f, scale = normalise ? 1.f / stddev_[c] : 1.f;
    for (size_t p = 0; p < pixels; ++p)
      dst[p] = src[p] == -32768 ? 0.f : (static_cast<float>(src[p]) * 1e-4f - mean) * scale;
  }
}

void check_season(const ModelSpec& spec, const std::string& model_path, int data_season_start_month,
                  const std::string& where) {
  if (data_season_start_month == spec.season_start_month) return;
  throw InputError(where, "season starts in month " + std::to_string(data_season_start_month) + " but the model " +
                              model_path + " was trained on seasons starting in month " +
                              std::to_string(spec.season_start_month) +
                              " (its months would be misread); use a model of this season, or composite with "
                              "--season-start in month " + std::to_string(spec.season_start_month));
}

}  // namespace s2crop::nn
