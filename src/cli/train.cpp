#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/train/trainer.hpp"

namespace s2crop::cli {

int run_train(int argc, char** argv, const parallel::MpiContext& mpi) {
  train::TrainSettings s;  // its initialisers are this command's defaults
  po::options_description opts("Train options");
  OptionBinder b(opts);
  b.add("model", s.model,
        "model to train: lstm (the LSTM crop-type classifier) or rf (a random forest on the same inputs: OpenCV's "
        "RTrees, as Sen2Agri; the yardstick of assess --compare)")
      .add_unset("samples,s", s.samples,
                 "training set HDF5 (from 's2crop extract' or 's2crop import-timesen2crop')")
      .add_unset("output,o", s.output, "model file to write (HDF5, self-describing: classify needs nothing else)")
      .add_text("val-tiles", s.val_tiles,
                "validate on these tiles (spatially disjoint); default: --val-fraction of the parcels", split_list,
                join_list)
      .add_text("bands", s.bands, "input bands (default: all bands of the training set)", split_list, join_list)
      .add("ndvi", s.ndvi, "add NDVI (B04 and B08, or B8A) as a feature")
      .add("hidden", s.hidden, "LSTM hidden units")
      .add("layers", s.layers, "LSTM layers")
      .add("dropout", s.dropout, "dropout between LSTM layers")
      .add("lr", s.lr, "peak learning rate (AdamW)")
      .add("patience", s.patience, "early stopping after this many epochs without a better validation macro-F1 (0: off)")
      .add("loss", s.loss, "ce (cross-entropy) or focal")
      .add("focal-gamma", s.focal_gamma, "focusing parameter of the focal loss")
      .add("class-weights", s.class_weights,
           "against class imbalance: none, inverse, sqrt (inverse square root of the class frequency) or auto "
           "(none below 1000 training samples, else sqrt)")
      .add("ensemble", s.ensemble,
           "LSTMs trained with derived seeds and averaged by classify (0: 5 below 1000 training samples, else 1)")
      .add_text("augment", s.series.augment,
                "augment each training series: band gains (--jitter), months lost to clouds and gap-filled "
                "(--mask-months), the season shifted by part of a month (--shift); auto: on below 1000 training "
                "samples",
                Choices{{"auto", "true", "false"}},
                [](const std::string& t) { return t == "auto" ? -1 : (t == "true" ? 1 : 0); },
                [](int v) { return std::string(v < 0 ? "auto" : (v ? "true" : "false")); })
      .add("jitter", s.series.jitter, "gain range per reflectance band: 1 +- jitter")
      .add("mask-months", s.series.mask_months, "probability of a month being masked and gap-filled")
      .add("shift", s.series.shift, "the season shifted by up to this share of a month either way")
      .add("trees", s.forest.trees, "rf: trees of the forest (shared out over the ranks)")
      .add("max-depth", s.forest.max_depth, "rf: maximum depth of a tree")
      .add("min-samples", s.forest.min_samples, "rf: a node with fewer training samples is a leaf")
      .add("active-features", s.forest.active_features,
           "rf: values tried at each split (0: the square root of months x features)")
      .add("backend", s.backend,
           "gradient all-reduce: auto (NCCL with one GPU per rank when built with it, else MPI), mpi or nccl");
  add_seed(b, s.seed, "seed of initialisation, sampling and dropout");
  add_training_loop_options(b, s);
  po::variables_map vm;
  if (!parse_options("train", "--samples SET.h5 --output MODEL.h5 [options]",
                     "Trains the LSTM crop-type classifier (LayerNorm -> LSTM -> LayerNorm -> linear) on monthly "
                     "composite time series, data-parallel over the MPI ranks: each rank reads only its shard, "
                     "gradients are all-reduced in fused buckets (MPI on CPU, NCCL on GPUs). Validates every epoch, "
                     "stops early, checkpoints every epoch; a killed run continues from its checkpoint when started "
                     "again with the same command. --model rf grows a random forest instead (OpenCV RTrees, the "
                     "classifier of Sen2Agri) on the same inputs, its trees shared out over the ranks; classify and "
                     "assess use either model file alike.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  // An option of the other model is a mistake, not a no-op: the user believes it shaped the model.
  const std::vector<std::string> lstm_only{"hidden", "layers", "dropout", "lr", "loss", "focal-gamma", "class-weights",
                                          "backend", "epochs", "batch-size", "patience", "weight-decay", "lr-schedule",
                                          "val-every", "bucket-mb", "max-steps", "step-log", "resume", "reproducible",
                                          "check-replicas", "checkpoint-dir", "device", "augment", "jitter", "ensemble",
                                           "mask-months", "shift"};
  const std::vector<std::string> rf_only{"trees", "max-depth", "min-samples", "active-features"};
  for (const std::string& name : s.model == "rf" ? lstm_only : rf_only)
    if (vm.count(name) && !vm[name].defaulted())
      throw ConfigError("--" + name + " applies to --model " + (s.model == "rf" ? "lstm" : "rf") +
                        ", not to --model " + s.model);
  s.config_text = effective_config(vm);
  train::run_train(s, mpi);  // checks the ranges of all settings (train/settings.hpp) first
  return 0;
}

}  // namespace s2crop::cli
