#pragma once
// What a trained model needs besides its weights, torch-free so that every stage can read it: the architecture,
// the input features (bands of a composite, NDVI), their normalisation and the classes. Stored as attributes of
// the model file next to the weights, so `classify` needs nothing else.
#include <cstdint>
#include <string>
#include <vector>

namespace s2crop::nn {

// The U-Net's architecture (nn/unet.hpp), torch-free so that every stage can describe and check it.
//   in_channels: input bands (one date, or months x bands stacked), outputs: classes (multiclass) or labels
//   (multilabel); depth: down-sampling levels; level l has width * 2^l channels; norm: batch | group | none;
//   encoder: plain (two 3x3 conv + norm + ReLU per level, 2x2 max-pool between levels) | resnet (`blocks` basic
//   blocks per level, the first of a level with stride 2 and a 1x1 projection shortcut); upsampling: transpose
//   (2x2 transposed conv) | bilinear (bilinear x2 then 1x1 conv); dropout: Dropout2d on the deepest features and
//   before the head (0 = none).
struct UNetSpec {
  int in_channels = 10;
  int outputs = 2;
  std::string task = "multiclass";      // multiclass (softmax) | multilabel (a sigmoid per label)
  int depth = 4;
  int width = 32;
  std::string norm = "batch";           // batch | group | none
  int groups = 8;                       // group norm: at most this many groups (the largest divisor of the channels)
  std::string encoder = "plain";        // plain | resnet
  int blocks = 2;                       // resnet: basic blocks per level
  std::string upsampling = "transpose";  // transpose | bilinear
  double dropout = 0;
  // Season months (0-based) stacked into the input, each with the model's bands: in_channels = months x bands.
  std::vector<int> months{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

  int channels(int level) const { return width << level; }
  int multiple() const { return 1 << depth; }  // inputs are padded to a multiple of this internally
  // Throws ConfigError naming the first invalid field.
  void check() const;
};

struct ModelSpec {
  std::string kind = "lstm";  // lstm (crop-type classifier) | ndvi_lstm (NDVI prediction) | unet (segmentation) |
                              // unet_encoder (a pre-trained U-Net encoder, and decoder)
  std::vector<std::string> bands;        // reflectance bands fed to the model, in this order (ndvi_lstm: covariates)
  bool ndvi = true;                      // append NDVI as one more feature
  std::string ndvi_nir;                  // NIR band for NDVI: B08 if present, else B8A
  int months = 12;
  int season_start_month = 9;
  int hidden = 128;
  int layers = 2;
  int ensemble = 1;                      // lstm: members whose probabilities classify averages (model_file.hpp)
  double dropout = 0.2;
  std::vector<std::string> class_names;
  std::vector<float> mean, stddev;       // per feature, over the whole training set (all ranks)
  // ndvi_lstm only: the task it was trained for and its forecast range.
  std::string task;                      // forecast | gapfill
  int horizon = 0;                       // forecast: months predicted after the last observed one
  int t_min = 0, t_max = 0;              // forecast: months observed (1-11) the model was trained to start from

  // unet / unet_encoder: the architecture; bands name the input channels, class_names the outputs (unet), mean and
  // stddev are per input channel.
  UNetSpec unet;

  bool is_ndvi_model() const { return kind == "ndvi_lstm"; }
  bool is_unet() const { return kind == "unet" || kind == "unet_encoder"; }
  // ndvi_lstm: NDVI, visible flag, constant 1, calendar month (sin, cos), covariate bands (see nn/ndvi_lstm.hpp).
  int n_features() const {
    return is_ndvi_model() ? 5 + static_cast<int>(bands.size()) : static_cast<int>(bands.size()) + (ndvi ? 1 : 0);
  }
  int n_classes() const { return static_cast<int>(class_names.size()); }
};

// Turns int16 reflectance series [month][source band] (source_bands names the columns) into the model's
// normalised float features [month][feature]. Built once per input layout; throws ConfigError naming the missing
// band when the input lacks one the model needs.
class FeatureMap {
 public:
  FeatureMap(const ModelSpec& spec, const std::vector<std::string>& source_bands, const std::string& source_name);
  int n_features() const { return n_features_; }
  // `n` series of months x source bands (contiguous, [series][month][band]) -> [series][month][feature].
  // Without normalisation (mean/stddev empty or raw=true) the features are reflectance (x 1e-4) and NDVI.
  void apply(const std::int16_t* series, size_t n, float* out, bool raw = false) const;

 private:
  ModelSpec spec_;
  std::vector<int> source_index_;
  int red_ = -1, nir_ = -1, n_source_ = 0, n_features_ = 0;
};

// U-Net input from monthly composites (a composite block or a patch): channels [month][band] over the model's
// months (UNetSpec::months) and bands (ModelSpec::bands); value = (reflectance x 1e-4 - mean[c]) / stddev[c]. No data
// (-32768, a month without a clear observation) becomes 0, the channel's mean, so a gap never enters as an extreme
// value. Throws ConfigError naming the missing band when the source lacks one the model needs.
class ImageInputMap {
 public:
  ImageInputMap(const ModelSpec& spec, const std::vector<std::string>& source_bands, const std::string& source_name);
  int channels() const { return static_cast<int>(channel_source_.size()); }
  // `x`: [12][source band][pixels] int16 (the composite's and the patch set's layout, `pixels` values per plane) ->
  // `out` [channel][pixels]. Without normalisation (mean/stddev empty or raw=true): reflectance x 1e-4, no data 0.
  void apply(const std::int16_t* x, size_t pixels, float* out, bool raw = false) const;

 private:
  std::vector<size_t> channel_source_;  // plane of the source ([month][band]) feeding each channel
  std::vector<float> mean_, stddev_;
};

// NIR band for NDVI among `bands`: B08, else B8A; empty if neither or no B04.
std::string ndvi_nir_band(const std::vector<std::string>& bands);

}  // namespace s2crop::nn

namespace s2crop::nn {
inline constexpr const char* kModelFormat = "s2crop model";
// The spec stored in a model file (no weights read): lets torch-free code check bands and classes.
ModelSpec read_model_spec(const std::string& path);

// Refuses data whose season starts in another calendar month than the model's (`where` names the data, e.g.
// "comp.h5 tile 33UVP"): month k of the series would be another calendar month than the model learnt, and every
// prediction silently wrong. InputError naming both.
void check_season(const ModelSpec& spec, const std::string& model_path, int data_season_start_month,
                  const std::string& where);
// The spec of a trained U-Net segmentation model (kind unet, from `s2crop segment train`), checked: an encoder from
// `s2crop pretrain`, an LSTM or any other model, an invalid architecture or output names that do not match the
// outputs throw InputError naming the file and what to use instead. What segment predict and evaluate load.
ModelSpec read_segmentation_model_spec(const std::string& path);
}  // namespace s2crop::nn
