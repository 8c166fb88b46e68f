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
  po::options_description opts("NDVI train options");
  opts.add_options()
      ("task", po::value<std::string>()->default_value("forecast"),
       "forecast (months 1..t -> NDVI of months t+1..t+horizon) or gapfill (masked-input training: restore hidden "
       "observed months)")
      ("horizon", po::value<int>()->default_value(1), "forecast: months predicted after the last observed one")
      ("t-min", po::value<int>()->default_value(3), "forecast: fewest months observed before a forecast (1-11)")
      ("t-max", po::value<int>()->default_value(9), "forecast: most months observed before a forecast (1-11)")
      ("mask-fraction", po::value<double>()->default_value(0.25),
       "gapfill: probability of hiding each observed month from the input (at least one is hidden)")
      ("samples,s", po::value<std::string>(), "training set HDF5 (with per-month clear flags, from 's2crop extract')")
      ("assume-clear", po::bool_switch(), "accept a training set without per-month clear flags (every month observed)")
      ("output,o", po::value<std::string>(), "model file to write (HDF5, self-describing: task, horizon, t range)")
      ("val-tiles", po::value<std::string>()->default_value(""), "validate on these tiles; default: --val-fraction")
      ("bands", po::value<std::string>()->default_value(""), "covariate bands besides NDVI (default: none)")
      ("hidden", po::value<int>()->default_value(64), "LSTM hidden units")
      ("layers", po::value<int>()->default_value(2), "LSTM layers")
      ("dropout", po::value<double>()->default_value(0.1), "dropout between LSTM layers")
      ("lr", po::value<double>()->default_value(3e-3), "peak learning rate (AdamW)")
      ("patience", po::value<int>()->default_value(6), "early stopping after this many epochs without a better "
                                                        "validation RMSE (0: off)")
      ("backend", po::value<std::string>()->default_value("auto"), "gradient all-reduce: auto, mpi or nccl")
      ("seed", po::value<std::string>()->default_value("42"), "seed of initialisation, sampling, masking and dropout");
  add_training_loop_options(opts);
  po::variables_map vm;
  if (!parse_options("ndvi train", "--samples SET.h5 --output MODEL.h5 [--task forecast|gapfill] [options]",
                     "Trains the NDVI prediction LSTM on the monthly NDVI series of a training set with the same "
                     "data-parallel trainer as 's2crop train' (shards, global-batch permutation, bucketed all-reduce, "
                     "checkpoints, resume). The loss uses only months with a clear observation; months without one "
                     "enter the model as 'not visible', never as their gap-filled value.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  train::TrainSettings s;
  s.task = vm["task"].as<std::string>();
  s.horizon = vm["horizon"].as<int>();
  s.t_min = vm["t-min"].as<int>();
  s.t_max = vm["t-max"].as<int>();
  s.mask_fraction = vm["mask-fraction"].as<double>();
  s.assume_clear = vm["assume-clear"].as<bool>();
  read_training_settings(vm, s);
  train::run_train(s, mpi);
  return 0;
}

int run_ndvi_evaluate(int argc, char** argv, const parallel::MpiContext& mpi) {
  po::options_description opts("NDVI evaluate options");
  opts.add_options()
      ("model,m", po::value<std::string>(), "NDVI model (from 's2crop ndvi train')")
      ("samples,s", po::value<std::string>(), "training set with the held-out series")
      ("tiles", po::value<std::string>()->default_value(""), "held-out tiles to evaluate on (default: all samples)")
      ("climatology-tiles", po::value<std::string>()->default_value(""),
       "tiles the per-class climatology is computed from (default: every tile not evaluated)")
      ("task", po::value<std::string>()->default_value(""), "expected task (error if the model was trained for another)")
      ("horizon", po::value<int>()->default_value(0), "expected forecast horizon (error if the model has another)")
      ("mask-fraction", po::value<double>()->default_value(0.25), "gapfill: share of observed months hidden")
      ("seed", po::value<unsigned long>()->default_value(4242), "gapfill: seed of the hidden months")
      ("output,o", po::value<std::string>(), "metrics JSON to write")
      ("plot", po::value<std::string>()->default_value(""), "PNG of predicted vs observed series for sample pixels")
      ("plot-samples", po::value<int>()->default_value(4), "pixels in the plot")
      ("threads", po::value<int>()->default_value(0), "threads (0: node cores)");
  po::variables_map vm;
  if (!parse_options("ndvi evaluate", "--model MODEL.h5 --samples SET.h5 --tiles TILE --output METRICS.json",
                     "RMSE, MAE and R^2 of the NDVI model on held-out series, overall, per horizon and per month, "
                     "side by side with persistence, linear interpolation (gap-fill) and per-class climatology.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  infer::NdviEvaluateSettings s;
  if (vm.count("model")) s.model = vm["model"].as<std::string>();
  if (vm.count("samples")) s.samples = vm["samples"].as<std::string>();
  if (vm.count("output")) s.output_json = vm["output"].as<std::string>();
  s.tiles = parse_tile_list(vm["tiles"].as<std::string>());
  s.climatology_tiles = split_list(vm["climatology-tiles"].as<std::string>());
  s.task = vm["task"].as<std::string>();
  s.horizon = vm["horizon"].as<int>();
  s.mask_fraction = vm["mask-fraction"].as<double>();
  s.seed = vm["seed"].as<unsigned long>();
  s.plot_png = vm["plot"].as<std::string>();
  s.plot_samples = vm["plot-samples"].as<int>();
  s.threads = vm["threads"].as<int>();
  infer::run_ndvi_evaluate(s, mpi);
  return 0;
}

int run_ndvi_predict(int argc, char** argv, const parallel::MpiContext& mpi) {
  po::options_description opts("NDVI predict options");
  opts.add_options()
      ("composites,c", po::value<std::string>(), "composite HDF5 file (from 's2crop composite')")
      ("model,m", po::value<std::string>(), "NDVI model (from 's2crop ndvi train')")
      ("output,o", po::value<std::string>(), "NDVI prediction HDF5 file to write")
      ("tiles", po::value<std::string>()->default_value(""), "only these tiles, comma-separated (default: all)")
      ("task", po::value<std::string>()->default_value(""), "expected task (error if the model was trained for another)")
      ("horizon", po::value<int>()->default_value(0), "expected forecast horizon (error if the model has another)")
      ("origin", po::value<int>()->default_value(0),
       "forecast: months of the season observed before the forecast (default: the most the model was trained for)")
      ("cog", po::value<std::string>()->default_value(""),
       "also export one GeoTIFF (COG) per tile: the forecast months or the filled series, a band per month")
      ("quicklook", po::value<std::string>()->default_value(""), "write one PNG per tile (NDVI ramp per month)")
      ("block-size", po::value<int>()->default_value(512), "block edge in pixels: the unit of work and of resume")
      ("batch-size", po::value<int>()->default_value(4096), "pixels per model call")
      ("threads", po::value<int>()->default_value(0), "threads per rank (0: node cores / ranks on the node)")
      ("deflate", po::value<int>()->default_value(1), "HDF5 deflate level (0 = uncompressed)")
      ("overwrite", po::bool_switch(), "replace an existing output (or leftovers of another interrupted run)");
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
  infer::NdviPredictSettings s;
  if (vm.count("composites")) s.composites = vm["composites"].as<std::string>();
  if (vm.count("model")) s.model = vm["model"].as<std::string>();
  if (vm.count("output")) s.output = vm["output"].as<std::string>();
  s.tiles = parse_tile_list(vm["tiles"].as<std::string>());
  s.task = vm["task"].as<std::string>();
  s.horizon = vm["horizon"].as<int>();
  s.origin = vm["origin"].as<int>();
  s.cog_dir = vm["cog"].as<std::string>();
  s.quicklook_dir = vm["quicklook"].as<std::string>();
  s.block_size = vm["block-size"].as<int>();
  s.batch_size = vm["batch-size"].as<int>();
  s.threads = vm["threads"].as<int>();
  s.deflate = vm["deflate"].as<int>();
  s.overwrite = vm["overwrite"].as<bool>();
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
