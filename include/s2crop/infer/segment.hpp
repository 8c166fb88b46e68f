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
  std::string device = "auto";     // auto | cpu | cuda | cuda:N (nn/device.hpp)
  std::string precision = "fp32";  // fp32 | bf16 | fp16
  bool overwrite = false;
  int deflate = 1;
  std::string config_text;
};

// Collective. Throws ConfigError (options), InputError (a model that is not a U-Net, a composite lacking a band or
// of another season start than the model's), OutputError; nothing is written for bad input.
void run_segment_predict(const SegmentPredictSettings& settings, const parallel::MpiContext& mpi);

// `s2crop segment evaluate`: a U-Net against the labels of a patch set (samples/patch_set.hpp), the model's outputs
// found in the set's label layers by nn::SegmentationTargets::of_model (the mapping training uses).
// Data-parallel: the selected patches (all, or those of `tiles`) are split into contiguous slices over the ranks;
// each patch is forwarded alone (whole patch, the U-Net pads internally) under inference mode, and the integer
// pixel counts are summed over ranks (MPI_Allreduce, double), so the report is identical for any rank count.
// Pixel level (assess::SegmentationCounts, the same scoring as training's validation): per output IoU, F1,
// precision, recall, support; mean IoU, mean F1; multiclass also pixel accuracy. Unlabelled (255) truth is skipped.
// Patch level (label_scope "patch" sets, image-level labels as BigEarthNet): per patch and output, the mean
// probability over the output's valid pixels; multilabel: predicted where > 0.5 (the standard BigEarthNet scoring),
// multiclass: the class of the highest mean probability; precision / recall / F1 over patches and their mean.
// Outputs: the report JSON (rank 0, atomically; also as a table in the log); optionally per-patch predictions
// (format "s2crop segmentation predictions": prediction uint8 [n][P][S][S], P = 1 (multiclass class index) or the
// labels (0/1); patch_probability float [n][outputs], the mean probability over each output's valid pixels (NaN
// without any); patch, tile, row, col [n]; written collectively through `.partial.h5` and renamed), and a PNG per
// sample patch (`samples` evenly spaced over the selection) into png_dir: the true-colour image (B04, B03, B02 of
// the model's month with the most clear pixels, one 2-98 % stretch for the three bands, at least 0.08 wide), truth and prediction with a legend (multiclass),
// or a truth / probability pair per label (multilabel). Named <tile>_<patch index>.png.
struct SegmentEvaluateSettings {
  std::string model;         // U-Net from `s2crop segment train`
  std::string patches;       // patch set with labels
  std::string output;        // report JSON
  std::vector<std::string> tiles;  // only patches of these tiles (empty: all)
  std::string png_dir;       // optional: PNGs of sample patches
  int samples = 8;           // PNGs written (evenly spaced over the selected patches)
  std::string predictions;   // optional: per-patch predictions HDF5
  int threads = 0;           // intra-op threads per rank; 0: cores of the node / ranks on the node
  std::string device = "auto";     // auto | cpu | cuda | cuda:N (nn/device.hpp)
  std::string config_text;
};

// Collective. Throws ConfigError (options, tiles not in the set), InputError naming the file (a model that is not a
// trained U-Net, outputs without a matching label layer, bands the set lacks, another season start, a file that is
// not a patch set, no patch left); nothing is written for bad input.
void run_segment_evaluate(const SegmentEvaluateSettings& settings, const parallel::MpiContext& mpi);

}  // namespace s2crop::infer
