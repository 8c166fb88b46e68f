#include <cerrno>
#include <cstdint>
#include <cstdlib>

#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/train/trainer.hpp"

namespace s2crop::cli {

int run_train(int argc, char** argv, const parallel::MpiContext& mpi) {
  po::options_description opts("Train options");
  opts.add_options()
      ("model", po::value<std::string>()->default_value("lstm"), "model to train: lstm (crop-type classifier)")
      ("samples,s", po::value<std::string>(), "training set HDF5 (from 's2crop extract' or 's2crop import-timesen2crop')")
      ("output,o", po::value<std::string>(), "model file to write (HDF5, self-describing: classify needs nothing else)")
      ("val-tiles", po::value<std::string>()->default_value(""),
       "validate on these tiles (spatially disjoint); default: --val-fraction of the parcels")
      ("bands", po::value<std::string>()->default_value(""), "input bands (default: all bands of the training set)")
      ("ndvi", po::value<bool>()->default_value(true), "add NDVI (B04 and B08, or B8A) as a feature")
      ("hidden", po::value<int>()->default_value(128), "LSTM hidden units")
      ("layers", po::value<int>()->default_value(2), "LSTM layers")
      ("dropout", po::value<double>()->default_value(0.2), "dropout between LSTM layers")
      ("lr", po::value<double>()->default_value(2e-3), "peak learning rate (AdamW)")
      ("patience", po::value<int>()->default_value(6), "early stopping after this many epochs without a better "
                                                        "validation macro-F1 (0: off)")
      ("loss", po::value<std::string>()->default_value("ce"), "ce (cross-entropy) or focal")
      ("focal-gamma", po::value<double>()->default_value(2.0), "focusing parameter of the focal loss")
      ("class-weights", po::value<std::string>()->default_value("sqrt"),
       "against class imbalance: none, inverse or sqrt (inverse square root of the class frequency)")
      ("backend", po::value<std::string>()->default_value("auto"),
       "gradient all-reduce: auto (NCCL with one GPU per rank when built with it, else MPI), mpi or nccl")
      ("seed", po::value<std::string>()->default_value("42"), "seed of initialisation, sampling and dropout");
  add_training_loop_options(opts);
  po::variables_map vm;
  if (!parse_options("train", "--samples SET.h5 --output MODEL.h5 [options]",
                     "Trains the LSTM crop-type classifier (LayerNorm -> LSTM -> LayerNorm -> linear) on monthly "
                     "composite time series, data-parallel over the MPI ranks: each rank reads only its shard, "
                     "gradients are all-reduced in fused buckets (MPI on CPU, NCCL on GPUs). Validates every epoch, "
                     "stops early, checkpoints every epoch; a killed run continues from its checkpoint when started "
                     "again with the same command.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  if (vm["model"].as<std::string>() != "lstm")
    throw ConfigError("--model " + vm["model"].as<std::string>() + ": only 'lstm' is available in this version");
  train::TrainSettings s;
  read_training_settings(vm, s);
  s.ndvi = vm["ndvi"].as<bool>();
  s.loss = vm["loss"].as<std::string>();
  s.focal_gamma = vm["focal-gamma"].as<double>();
  s.class_weights = vm["class-weights"].as<std::string>();
  train::run_train(s, mpi);
  return 0;
}

void add_training_loop_options(po::options_description& options) {
  options.add_options()
      ("checkpoint-dir", po::value<std::string>()->default_value(""), "checkpoints (default: OUTPUT.ckpt)")
      ("tiles", po::value<std::string>()->default_value(""), "use only samples of these tiles (keep test tiles out)")
      ("val-fraction", po::value<double>()->default_value(0.1),
       "fraction of parcels (or samples) held out for validation, in [0, 1) (0: none; the epoch with the lowest "
       "training loss is kept)")
      ("epochs", po::value<int>()->default_value(30), "maximum epochs")
      ("val-every", po::value<int>()->default_value(1),
       "validate every this many epochs and after the last (patience counts validations; the model kept is the best "
       "validated epoch): for large validation sets or many short epochs")
      ("batch-size", po::value<int>()->default_value(128), "samples per rank and step (global batch = this x ranks)")
      ("weight-decay", po::value<double>()->default_value(1e-4), "decoupled weight decay")
      ("lr-schedule", po::value<std::string>()->default_value("cosine"), "cosine (to lr/100), step (halving) or none")
      ("bucket-mb", po::value<double>()->default_value(8.0), "gradient bucket size for the all-reduce (MiB)")
      ("threads", po::value<int>()->default_value(0), "threads per rank (0: node cores / ranks on the node)")
      ("resume", po::bool_switch(), "require a checkpoint to continue from (a matching one is always used)")
      ("overwrite", po::bool_switch(), "replace an existing model and discard checkpoints")
      ("max-steps", po::value<long>()->default_value(0), "stop after this many optimiser steps (0: no limit)")
      ("step-log", po::value<std::string>()->default_value(""), "write loss per step as TSV (rank 0)")
      ("check-replicas", po::bool_switch(), "verify after every step that all ranks hold identical parameters")
      ("reproducible", po::bool_switch(),
       "compute each sample's gradient alone and sum in double precision (also across ranks): the training then "
       "hardly depends on the rank count, in the last bits too; slower");
}

// --seed is read as text: boost reads "-1" into an unsigned integer as 2^64 - 1 without a word.
std::uint64_t parse_seed(const std::string& text) {
  const bool digits = !text.empty() && text.size() <= 20 && text.find_first_not_of("0123456789") == std::string::npos;
  errno = 0;
  const unsigned long long value = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
  if (!digits || errno == ERANGE)
    throw ConfigError("--seed " + text + ": must be a whole number from 0 to 18446744073709551615");
  return value;
}

// The ranges of all these settings (and of each command's own) are checked by train::check_settings, which
// run_train calls first: one place for the four training commands.
void read_training_settings(const po::variables_map& vm, train::TrainSettings& s) {
  if (vm.count("samples")) s.samples = vm["samples"].as<std::string>();
  if (vm.count("output")) s.output = vm["output"].as<std::string>();
  s.checkpoint_dir = vm["checkpoint-dir"].as<std::string>();
  s.tiles = parse_tile_list(vm["tiles"].as<std::string>());
  s.val_tiles = split_list(vm["val-tiles"].as<std::string>());
  s.val_fraction = vm["val-fraction"].as<double>();
  s.bands = split_list(vm["bands"].as<std::string>());
  // Architecture options differ per model: the LSTMs have hidden and layers, the U-Net its own.
  if (vm.count("hidden")) s.hidden = vm["hidden"].as<int>();
  if (vm.count("layers")) s.layers = vm["layers"].as<int>();
  s.dropout = vm["dropout"].as<double>();
  s.epochs = vm["epochs"].as<int>();
  s.val_every = vm["val-every"].as<int>();
  s.batch_size = vm["batch-size"].as<int>();
  s.lr = vm["lr"].as<double>();
  s.weight_decay = vm["weight-decay"].as<double>();
  s.lr_schedule = vm["lr-schedule"].as<std::string>();
  s.patience = vm["patience"].as<int>();
  s.backend = vm["backend"].as<std::string>();
  s.bucket_mb = vm["bucket-mb"].as<double>();
  s.seed = parse_seed(vm["seed"].as<std::string>());
  s.threads = vm["threads"].as<int>();
  s.require_resume = vm["resume"].as<bool>();
  s.overwrite = vm["overwrite"].as<bool>();
  s.max_steps = vm["max-steps"].as<long>();
  s.step_log = vm["step-log"].as<std::string>();
  s.check_replicas = vm["check-replicas"].as<bool>();
  s.reproducible = vm["reproducible"].as<bool>();
  s.config_text = effective_config(vm);
}

}  // namespace s2crop::cli
