// `s2crop ndvi train|evaluate|predict`: the NDVI prediction LSTM, trained by the one data-parallel trainer.
#include <cstring>
#include <iostream>

#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/infer/ndvi.hpp"
#include "s2crop/train/trainer.hpp"

namespace s2crop::cli {

namespace {

int run_ndvi_train(int argc, char** argv, const parallel::MpiContext& mpi) {
  // The NDVI LSTM's defaults where they differ from the crop-type classifier's (train::TrainSettings).
  train::TrainSettings s;
  s.task = "forecast";
  s.hidden = 64;
  s.dropout = 0.1;
  s.lr = 3e-3;
  po::options_description opts("NDVI train options");
  OptionBinder b(opts);
  b.add("task", s.task,
        "forecast (months 1..t -> NDVI of months t+1..t+horizon) or gapfill (masked-input training: restore hidden "
        "observed months)")
      .add("horizon", s.horizon, "forecast: months predicted after the last observed one")
      .add("t-min", s.t_min, "forecast: fewest months observed before a forecast (1-11)")
      .add("t-max", s.t_max, "forecast: most months observed before a forecast (1-11)")
      .add("mask-fraction", s.mask_fraction,
           "gapfill: probability of hiding each observed month from the input (at least one is hidden)")
      .add_unset("samples,s", s.samples,
                 "training set HDF5 (with per-month clear flags, from 's2crop extract')")
      .flag("assume-clear", s.assume_clear,
            "accept a training set without per-month clear flags (every month observed)")
      .add_unset("output,o", s.output, "model file to write (HDF5, self-describing: task, horizon, t range)")
      .add_text("val-tiles", s.val_tiles, "validate on these tiles; default: --val-fraction", split_list, join_list)
      .add_text("bands", s.bands, "covariate bands besides NDVI (default: none)", split_list, join_list)
      .add("hidden", s.hidden, "LSTM hidden units")
      .add("layers", s.layers, "LSTM layers")
      .add("dropout", s.dropout, "dropout between LSTM layers")
      .add("lr", s.lr, "peak learning rate (AdamW)")
      .add("patience", s.patience,
           "early stopping after this many epochs without a better validation RMSE (0: off)")
      .add("backend", s.backend, "gradient all-reduce: auto, mpi or nccl");
  add_seed(b, s.seed, "seed of initialisation, sampling, masking and dropout");
  add_training_loop_options(b, s);
  po::variables_map vm;
  if (!parse_options("ndvi train", "--samples SET.h5 --output MODEL.h5 [--task forecast|gapfill] [options]",
                     "Trains the NDVI prediction LSTM on the monthly NDVI series of a training set with the same "
                     "data-parallel trainer as 's2crop train' (shards, global-batch permutation, bucketed all-reduce, "
                     "checkpoints, resume). The loss uses only months with a clear observation; months without one "
                     "enter the model as 'not visible', never as their gap-filled value.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  s.config_text = effective_config(vm);
  train::run_train(s, mpi);  // checks the ranges of all settings (train/settings.hpp) first
  return 0;
}

int run_ndvi_evaluate(int argc, char** argv, const parallel::MpiContext& mpi) {
  infer::NdviEvaluateSettings s;
  po::options_description opts("NDVI evaluate options");
  OptionBinder b(opts);
  b.add_unset("model,m", s.model, "NDVI model (from 's2crop ndvi train')")
      .add_unset("samples,s", s.samples, "training set with the held-out series");
  add_tiles(b, s.tiles, "held-out tiles to evaluate on (default: all samples)");
  b.add_text("climatology-tiles", s.climatology_tiles,
             "tiles the per-class climatology is computed from (default: every tile not evaluated)", split_list,
             join_list)
      .add("task", s.task, "expected task (error if the model was trained for another)")
      .add("horizon", s.horizon, "expected forecast horizon (error if the model has another)")
      .add("mask-fraction", s.mask_fraction, "gapfill: share of observed months hidden");
  add_seed(b, s.seed, "gapfill: seed of the hidden months");
  b.add_unset("output,o", s.output_json, "metrics JSON to write")
      .add("plot", s.plot_png, "PNG of predicted vs observed series for sample pixels")
      .add("plot-samples", s.plot_samples, "pixels in the plot");
  add_threads(b, s.threads, "threads (0: node cores)");
  add_device(b, s.device);
  po::variables_map vm;
  if (!parse_options("ndvi evaluate", "--model MODEL.h5 --samples SET.h5 --tiles TILE --output METRICS.json",
                     "RMSE, MAE and R^2 of the NDVI model on held-out series, overall, per horizon and per month, "
                     "side by side with persistence, linear interpolation (gap-fill) and per-class climatology.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  infer::run_ndvi_evaluate(s, mpi);
  return 0;
}

int run_ndvi_predict(int argc, char** argv, const parallel::MpiContext& mpi) {
  infer::NdviPredictSettings s;
  po::options_description opts("NDVI predict options");
  OptionBinder b(opts);
  b.add_unset("composites,c", s.composites, "composite HDF5 file (from 's2crop composite')")
      .add_unset("model,m", s.model, "NDVI model (from 's2crop ndvi train')")
      .add_unset("output,o", s.output, "NDVI prediction HDF5 file to write");
  add_tiles(b, s.tiles);
  b.add("task", s.task, "expected task (error if the model was trained for another)")
      .add("horizon", s.horizon, "expected forecast horizon (error if the model has another)")
      .add("origin", s.origin,
           "forecast: months of the season observed before the forecast (default: the most the model was trained "
           "for)");
  add_exports(b, s.cog_dir, s.quicklook_dir,
              "also export one GeoTIFF (COG) per tile: the forecast months or the filled series, a band per month",
              "write one PNG per tile (NDVI ramp per month)");
  add_block_size(b, s.block_size, pipeline::kInferenceBlockSizes);
  b.add("batch-size", s.batch_size, "pixels per model call");
  add_threads(b, s.threads);
  add_device(b, s.device);
  add_precision(b, s.precision);
  add_deflate(b, s.deflate);
  add_overwrite(b, s.overwrite, "replace an existing output (or leftovers of another interrupted run)");
  po::variables_map vm;
  if (!parse_options("ndvi predict", "--composites C.h5 --model MODEL.h5 --output NDVI.h5 [options]",
                     "Runs the NDVI model over every pixel of every tile of a composite file with the same per-block "
                     "machinery as 'classify' ((tile, block) units balanced over the ranks, resumable, the same output "
                     "for any rank count). A month counts as observed where the composite had a clear observation. "
                     "forecast models write ndvi_forecast (months origin+1..origin+horizon); gap-fill models write "
                     "ndvi_predicted and ndvi_filled (observations kept, gaps filled by the model). NDVI x 10000, "
                     "int16, -32768 = no data.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  s.config_text = effective_config(vm);
  infer::run_ndvi_predict(s, mpi);
  return 0;
}

}  // namespace

int run_ndvi(int argc, char** argv, const parallel::MpiContext& mpi) {
  if (argc >= 2 && !std::strcmp(argv[1], "train")) return run_ndvi_train(argc - 1, argv + 1, mpi);
  if (argc >= 2 && !std::strcmp(argv[1], "evaluate")) return run_ndvi_evaluate(argc - 1, argv + 1, mpi);
  if (argc >= 2 && !std::strcmp(argv[1], "predict")) return run_ndvi_predict(argc - 1, argv + 1, mpi);
  if (mpi.is_root())
    std::cout << "Usage: s2crop ndvi train|evaluate|predict [options]   ('s2crop ndvi train --help')\n"
                 "  train     train the NDVI LSTM (forecast or gap-fill), data-parallel\n"
                 "  evaluate  RMSE, MAE, R^2 on held-out series against persistence, linear interpolation, climatology\n"
                 "  predict   the model over every pixel of a composite file -> NDVI HDF5, COGs, quicklooks\n";
  return argc >= 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) ? 0 : 2;
}

}  // namespace s2crop::cli
