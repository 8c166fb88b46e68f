// `s2crop ndvi train|evaluate`: the NDVI prediction LSTM, trained by the one data-parallel trainer.
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
      ("dropout", po::value<double>()->default_value(0.1), "dropout between LSTM layers")
      ("lr", po::value<double>()->default_value(3e-3), "peak learning rate (AdamW)")
      ("patience", po::value<int>()->default_value(6), "early stopping after this many epochs without a better "
                                                        "validation RMSE (0: off)")
      ("backend", po::value<std::string>()->default_value("auto"), "gradient all-reduce: auto, mpi or nccl")
      ("seed", po::value<unsigned long>()->default_value(42), "seed of initialisation, sampling, masking and dropout");
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
  s.tiles = split_list(vm["tiles"].as<std::string>());
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

}  // namespace

int run_ndvi(int argc, char** argv, const parallel::MpiContext& mpi) {
  if (argc >= 2 && !std::strcmp(argv[1], "train")) return run_ndvi_train(argc - 1, argv + 1, mpi);
  if (argc >= 2 && !std::strcmp(argv[1], "evaluate")) return run_ndvi_evaluate(argc - 1, argv + 1, mpi);
  if (argc >= 2 && !std::strcmp(argv[1], "predict"))
    throw ConfigError("ndvi predict over composite tiles is not implemented yet; use 'ndvi evaluate' on a training set");
  if (mpi.is_root())
    std::cout << "Usage: s2crop ndvi train|evaluate [options]   ('s2crop ndvi train --help')\n";
  return argc >= 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) ? 0 : 2;
}

}  // namespace s2crop::cli
