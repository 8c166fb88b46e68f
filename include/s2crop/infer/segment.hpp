#pragma once
// `s2crop segment predict`: a U-Net (nn/unet.hpp, from `s2crop segment train`) over whole tiles of a composite file
// by sliding windows with smooth blending (infer/sliding_windows.hpp), through the per-block machinery that
// `classify` uses (infer/tile_inference.hpp: ranks, resume, rank-invariant output). Torch-free interface.
//
// Seamless and rank-invariant by construction: per tile ONE global grid of windows; the predictor of a block runs
// the U-Net on every global window that intersects the block, each window ALONE (a batch of one, read from the
// composite over the window itself), and blends into the block's pixels in global window order. So the output is
// bitwise identical for any block size and rank count, including one block covering the whole tile.
// The U-Net's input: the model's months x bands through nn::ImageInputMap (no data -> 0, the channel mean).
// A pixel with no data in every channel the model uses is no data in the output.
//
// Output (format "s2crop segmentation map", version 1). File attrs besides tile_inference's: task
// (multiclass | multilabel), output_names [O] (classes or labels), window, overlap; multiclass also class_names and
// class_colours [C*3] (as a classify map); multilabel also threshold. Per tile:
//   multiclass: class       uint8 [y][x]          argmax of the blended probabilities; 255 = no data
//               confidence  uint8 [y][x]          its probability x 100 (scale_factor 0.01); 0 where no data
//               probability uint8 [output][y][x]  optional (--probabilities): every class's probability x 100;
//                                                 255 = no data
//   multilabel: probability uint8 [output][y][x]  each label's probability x 100; 255 = no data
//               label       uint8 [output][y][x]  1 where the probability >= threshold, else 0; 255 = no data
// The leading dimension's scale is `output_name`. Exports: COG <tile>_class.tif (colour table, class names) and
// quicklook <tile>_class.png with legend (multiclass); COG <tile>_probability.tif with a band per label and a
// quicklook <tile>_probability.png with a grey-ramp panel per label (multilabel).
#include <string>
#include <vector>

#include "s2crop/parallel/mpi.hpp"

namespace s2crop::infer {

struct SegmentPredictSettings {
  std::string composites;     // composite HDF5 file
  std::string model;          // U-Net model file from `s2crop segment train`
  std::string output;         // segmentation map HDF5 file
  std::string cog_dir;        // optional: one COG per tile
  std::string quicklook_dir;  // optional: one PNG per tile
  std::vector<std::string> tiles;  // only these tiles (empty: all)
  int window = 128;           // sliding-window edge in pixels (a tile smaller than it gets one window of its size)
  int overlap = 32;           // pixels shared by neighbouring windows (the blending margin)
  int block_size = 512;       // unit of work and resume (does not change the output)
  double threshold = 0.5;     // multilabel: label = probability >= threshold
  bool probabilities = false; // multiclass: also store every class's probability (multilabel always does)
  int threads = 0;            // intra-op threads per rank; 0: cores of the node / ranks on the node
  bool overwrite = false;
  int deflate = 1;
  std::string config_text;
};

// Collective. Throws ConfigError (options), InputError (a model that is not a U-Net, a composite lacking a band or
// of another season start than the model's), OutputError; nothing is written for bad input.
void run_segment_predict(const SegmentPredictSettings& settings, const parallel::MpiContext& mpi);

}  // namespace s2crop::infer
