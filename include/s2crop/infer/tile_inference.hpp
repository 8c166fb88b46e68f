#pragma once
// A model over every pixel of every tile of a composite file: what `classify` and `ndvi predict` share.
// Torch-free: the model enters through BlockPredictor, implemented beside it (the only code that includes LibTorch).
//
// It plugs into the block-stage engine (pipeline/block_stage.hpp), which owns the lock, the fingerprints, resume,
// balancing and the parts: plan (rank 0 validates inputs and the output, one clear message) -> resume -> compute
// (each (tile, block) written into the staged HDF5 output by rank 0 as it is done, its index in a part) -> export
// (COGs / quicklooks from the finished file, tiles round-robin over ranks) -> the output renamed into place. A rerun of a finished output with the same inputs and options is a
// no-op; different ones are refused unless --overwrite. The output does not depend on the rank count.
//
// Output layout: file attrs format, format_version, s2crop_version, created, config, inputs, model, run_fingerprint
// (+ the model's own); /tiles/<tile>/ attrs crs_wkt, crs, geotransform, year, season_start, x / y scales, and one
// dataset per OutputLayer: [y][x], or [depth][y][x] with a string scale naming the leading dimension.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "s2crop/geo/grid.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/parallel/mpi.hpp"
#include "s2crop/pipeline/composite_file.hpp"

namespace s2crop::infer {

// One per-tile dataset of a prediction stage's output.
struct OutputLayer {
  std::string name;               // dataset name under /tiles/<tile>/
  bool int16 = false;             // element type: int16, else uint8
  std::int64_t depth = 0;         // leading dimension (classes, months); 0: a 2-D [y][x] layer
  double fill = 0;                // value where nothing was predicted (HDF5 fill value)
  std::vector<std::pair<std::string, std::string>> text_attrs{};
  std::vector<std::pair<std::string, double>> number_attrs{};
  std::string depth_scale{};      // name of the string dataset labelling the leading dimension (depth > 0)
  std::string depth_dimension{};  // the leading dimension's name (e.g. "class", "month")
  std::vector<std::string> depth_labels{};

  size_t element_bytes() const { return int16 ? 2 : 1; }
  size_t planes() const { return depth > 0 ? static_cast<size_t>(depth) : 1; }
  size_t bytes(size_t pixels) const { return pixels * planes() * element_bytes(); }
};

// What a predictor reads of one block (BlockPredictor::read).
struct BlockInput {
  std::vector<std::int16_t> reflectance;  // [month][band][pixel]
  std::vector<std::uint8_t> clear_count;  // [month][pixel], for predictors that read it
  std::shared_ptr<const void> prepared;   // a predictor's own form of what it read (e.g. decoded chunks it shares)
};

// The model's side of one rank's work. Created on every rank after planning (loads the model).
//
// Double buffering: the engine calls read() for a rank's next block on a reading thread while predict() computes the
// current one, so HDF5 reading and decompression overlap the model (on a GPU, the host is otherwise idle while it
// computes). read() may only read `composites`; a predictor that reads in read() makes no HDF5 call in predict().
class BlockPredictor {
 public:
  virtual ~BlockPredictor() = default;
  // The block's inputs (default: none; predict() then reads what it needs itself).
  virtual BlockInput read(const pipeline::CompositeFile&, const pipeline::CompositeTile&, const geo::Window&) {
    return {};
  }
  // Fills `payload`: the layers one after another, each [plane][pixel] over the window in row-major order, in the
  // element type of its layer. Pixels without a prediction get the layer's fill value. `input` is read()'s result.
  virtual void predict(const pipeline::CompositeFile& composites, const pipeline::CompositeTile& tile,
                       const geo::Window& window, BlockInput input, std::uint8_t* payload) = 0;
  // Collective, every rank after its last block (also a rank with none): what the predictor has to tell beyond the
  // payload, e.g. a reduced precision's agreement with fp32. Default: nothing.
  virtual void finish(const parallel::MpiContext&) {}
};

// --precision bf16 on the CPU: predictors also predict every kPrecisionCheckStride-th pixel of a batch in fp32 (1/64
// of an fp32 pass) and finish() logs how far the run's output is from fp32's.
constexpr std::int64_t kPrecisionCheckStride = 64;

// Reads plane `plane` of layer `layer` of a finished tile over `window` (row-major) into `out` (the layer's type).
using LayerReader = std::function<void(size_t layer, size_t plane, const geo::Window& window, void* out)>;

struct TileInferenceJob {
  std::string stage;              // "classify", "ndvi predict": log lines and messages
  std::string format;             // the output's format attribute
  std::int64_t format_version = 1;
  std::array<char, 8> part_magic{};  // identifies this stage's part files
  std::string composites, model, output;
  std::vector<std::string> tiles;  // only these tiles (empty: all)
  int block_size = 512;
  int threads = 0;                // intra-op threads per rank; 0: cores of the node / ranks on the node
  bool overwrite = false;
  int deflate = 1;
  std::string config_text;
  std::string options_fingerprint;  // options that change the output besides inputs, block size and tiles
  std::string model_summary;      // for the start line, e.g. "16 classes, B02,...,NDVI"
  std::vector<OutputLayer> layers;
  std::vector<std::string> export_dirs;  // folders export_tile writes into (empty entries ignored): made while planning

  // Rank 0, while planning: throws (InputError/ConfigError) if `tile` lacks what the model needs.
  std::function<void(const pipeline::CompositeTile& tile)> check_tile;
  // Every rank, before computing: the model, loaded.
  std::function<std::unique_ptr<BlockPredictor>()> make_predictor;
  // Rank 0, creating the output: the model's file attributes (class names, task, ...). May be empty.
  std::function<void(h5::File& file)> file_attrs;
  // One rank per tile, once the output is written: COGs, quicklooks. May be empty.
  std::function<void(const pipeline::CompositeTile& tile, const LayerReader& read)> export_tile;
};

// Runs the job (collective). Throws ConfigError / InputError / OutputError with the file named.
void run_tile_inference(const TileInferenceJob& job, const parallel::MpiContext& mpi);

}  // namespace s2crop::infer
