#pragma once
// `s2crop classify` and model predictions on sample sets. Torch-free interface over the model stages.
//
// Map file layout (format "s2crop class map", format_version 1):
//   attrs   format, format_version, s2crop_version, created, config, inputs, model (path), class_names [C],
//           class_colours [C*3] (RGB), run_fingerprint
//   /tiles/<tile>/   attrs crs_wkt, crs, geotransform, year, season_start (copied from the composite file)
//     class        uint8 [y][x]       index into class_names; 255 = no data (no clear observation all year)
//     confidence   uint8 [y][x]       top class probability x 100 (scale_factor 0.01); 0 where no data
//     probability  uint8 [class][y][x] optional (--probabilities), x 100
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/parallel/mpi.hpp"
#include "s2crop/samples/training_set.hpp"

namespace s2crop::infer {

inline constexpr std::uint8_t kNoClass = 255;

struct ClassifySettings {
  std::string composites;     // composite HDF5 file
  std::string model;          // model file from `s2crop train`
  std::string output;         // map HDF5 file
  std::string cog_dir;        // optional: one COG per tile with colour table and class names
  std::string quicklook_dir;  // optional: one PNG per tile with legend
  std::vector<std::string> tiles;  // only these tiles (empty: all)
  bool probabilities = false;
  int block_size = 512;
  int batch_size = 2048;
  int threads = 0;            // intra-op threads per rank; 0: cores of the node / ranks on the node
  std::string device = "auto";     // auto | cpu | cuda | cuda:N (nn/device.hpp)
  std::string precision = "fp32";  // fp32 | bf16 | fp16
  bool overwrite = false;
  int deflate = 1;
  std::string config_text;
};

void run_classify(const ClassifySettings& settings, const parallel::MpiContext& mpi);

// The model's class for every sample of `set` (this rank only, no MPI); `confidence` (optional) receives the top
// probability. Throws ConfigError if the set lacks a band the model needs.
// `device`: as --device, for this process alone.
std::vector<std::uint8_t> predict_samples(const std::string& model_path, const samples::TrainingSet& set,
                                          std::vector<float>* confidence = nullptr,
                                          const std::string& device = "auto");

}  // namespace s2crop::infer
