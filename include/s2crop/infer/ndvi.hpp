#pragma once
// `s2crop ndvi evaluate`: the NDVI model against the baselines on held-out samples of a training set, and the
// model's predictions on sample series. Torch-free interface over the NDVI LSTM (nn/ndvi_lstm.hpp).
//
// forecast: for every origin t in the model's range (months 1..t observed) and lead k = 1..horizon, the target is
//   month t+k where it was observed (clear); baselines: persistence (last observed value up to t) and per-class
//   climatology (mean NDVI of that class and month over the climatology samples). Origins with no observation up
//   to t are left out for every method alike.
// gapfill: a seeded random set of observed months of each held-out series is hidden (samples::gapfill_hidden with
//   the evaluation seed); the target is the hidden months; baselines: linear interpolation between the nearest
//   visible months, persistence and per-class climatology.
// Metrics: RMSE, MAE, R^2 overall, per horizon (forecast) and per target month, as JSON; a PNG of predicted vs
// observed series for a few sample pixels.
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/nn/model_spec.hpp"
#include "s2crop/parallel/mpi.hpp"
#include "s2crop/samples/training_set.hpp"

namespace s2crop::infer {

struct NdviEvaluateSettings {
  std::string model;                     // from `s2crop ndvi train`
  std::string samples;                   // training set
  std::vector<std::string> tiles;        // held-out tiles to evaluate on (empty: all samples)
  std::vector<std::string> climatology_tiles;  // climatology from these tiles (empty: every tile not evaluated)
  std::string task;                      // expected task (empty: the model's)
  int horizon = 0;                       // expected horizon (0: the model's)
  double mask_fraction = 0.25;           // gapfill: share of observed months hidden
  std::uint64_t seed = 4242;             // gapfill: seed of the hidden months (not the training seed)
  std::string output_json;
  std::string plot_png;                  // optional
  int plot_samples = 4;
  int threads = 0;
  std::string device = "auto";     // auto | cpu | cuda | cuda:N (nn/device.hpp)
};

// Rank 0 evaluates (a held-out tile's samples fit in memory); the other ranks wait. Throws ConfigError for a
// model of another task or horizon than asked, InputError for a held-out set without any observed target.
void run_ndvi_evaluate(const NdviEvaluateSettings& settings, const parallel::MpiContext& mpi);

// `s2crop ndvi predict`: the NDVI model over every pixel of every tile of a composite file, through the same
// per-block machinery as `classify` (infer/tile_inference.hpp: ranks, resume, rank-invariant output).
// A month is observed where the composite had a clear observation (clear_count > 0) and B04 and the NIR band hold
// data; other months enter the model as not visible. Output (format "s2crop NDVI prediction", version 1), per tile,
// NDVI x 10000 as int16 (scale_factor 1e-4, -32768 = no data):
//   forecast: ndvi_forecast [lead][y][x]: months origin+1..origin+horizon from months 1..origin (a pixel without an
//             observation in months 1..origin has no forecast);
//   gapfill:  ndvi_predicted [month][y][x]: the model's NDVI of every month from the other observed months;
//             ndvi_filled [month][y][x]: the observation where a month is observed, the model's value elsewhere
//             (no data where a pixel has no observed month at all).
// The month labels (YYYY-MM) are scales of the leading dimension. COGs: <tile>_ndvi_forecast.tif or
// <tile>_ndvi_filled.tif (a band per month, described by its label); quicklooks: an NDVI ramp per month.
struct NdviPredictSettings {
  std::string composites, model, output;
  std::string cog_dir, quicklook_dir;  // optional
  std::vector<std::string> tiles;      // only these tiles (empty: all)
  std::string task;                    // expected task (empty: the model's)
  int horizon = 0;                     // expected horizon (0: the model's)
  int origin = 0;                      // forecast: months observed (0: the model's t-max, within the season)
  int block_size = 512;
  int batch_size = 4096;
  int threads = 0;
  std::string device = "auto";     // auto | cpu | cuda | cuda:N (nn/device.hpp)
  std::string precision = "fp32";  // fp32 | bf16 | fp16
  bool overwrite = false;
  int deflate = 1;
  std::string config_text;
};
void run_ndvi_predict(const NdviPredictSettings& settings, const parallel::MpiContext& mpi);

// An NDVI model's spec, checked to be of `task` and `horizon` (empty / 0: any); ConfigError naming the file. Shared
// by ndvi evaluate (ndvi.cpp) and ndvi predict (ndvi_predict.cpp).
nn::ModelSpec read_ndvi_model_spec(const std::string& path, const std::string& task, int horizon);

// Model output for every sample of `set` (this rank, no MPI): forecast [sample][12][horizon] (entry [t-1][k] is the
// forecast of month t+k from months 1..t), gapfill [sample][12] (NDVI of every month from the visible ones).
// `visible` [sample][12] says which months the model may see. Throws InputError naming the sample when a series
// has no visible month at all. `device`: as --device, for this process alone.
std::vector<float> predict_ndvi(const std::string& model_path, const samples::TrainingSet& set,
                                const std::vector<std::uint8_t>& visible, int* out_per_month = nullptr,
                                const std::string& device = "auto");

}  // namespace s2crop::infer
