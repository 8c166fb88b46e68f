// `s2crop segment train`: the U-Net on a patch set, trained by the one data-parallel trainer.
#include <string>
#include <vector>

#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/train/trainer.hpp"

namespace s2crop::cli {

int run_segment_train(int argc, char** argv, const parallel::MpiContext& mpi) {
  po::options_description opts("Segment train options");
  opts.add_options()
      ("patches,p", po::value<std::string>(), "patch set HDF5 (from 's2crop extract --patches SIZE')")
      ("output,o", po::value<std::string>(), "model file to write (HDF5, self-describing: segment predict needs nothing else)")
      ("head", po::value<std::string>()->default_value("multiclass"),
       "multiclass (softmax over the crop classes of the crop_type layer) or multilabel (a sigmoid per label)")
      ("targets", po::value<std::string>()->default_value(""),
       "multilabel: label layers of the patch set, comma-separated; crop_type gives one label per class (default: "
       "every layer but crop_type: field_boundary,cropland for 'extract --patches' sets, the 19 classes for "
       "'import-bigearthnet' sets)")
      ("loss", po::value<std::string>()->default_value(""),
       "multiclass: ce or focal (default ce); multilabel: bce, focal or dice (default bce). No-data pixels never count")
      ("focal-gamma", po::value<double>()->default_value(2.0), "focusing parameter of the focal loss")
      ("depth", po::value<int>()->default_value(3), "down-sampling levels of the U-Net")
      ("width", po::value<int>()->default_value(16), "channels of the first level (doubled per level)")
      ("encoder", po::value<std::string>()->default_value("plain"), "plain (two 3x3 convolutions per level) or resnet")
      ("blocks", po::value<int>()->default_value(2), "resnet encoder: basic blocks per level")
      ("norm", po::value<std::string>()->default_value("group"), "group or none (batch norm is not data-parallel here)")
      ("upsampling", po::value<std::string>()->default_value("transpose"), "transpose (2x2 transposed conv) or bilinear")
      ("dropout", po::value<double>()->default_value(0.0), "dropout on the deepest features and before the head")
      ("bands", po::value<std::string>()->default_value(""), "input bands (default: all bands of the patch set)")
      ("months", po::value<std::string>()->default_value(""),
       "season months stacked into the input, 1-12 comma-separated (default: all 12)")
      ("label-fraction", po::value<double>()->default_value(1.0),
       "use the labels of only this share of the training patches (seeded): the scarce-label setting")
      ("augment", po::value<bool>()->default_value(true),
       "flips, 90-degree rotations and a brightness factor per band (no operation mixes bands)")
      ("jitter", po::value<double>()->default_value(0.1), "brightness factor range per band: 1 +- jitter")
      ("init", po::value<std::string>()->default_value(""),
       "start from this file: a 's2crop pretrain' output (its encoder, and its decoder where masked-month "
       "reconstruction trained one), or the encoder of another U-Net of the same architecture")
      ("freeze-encoder", po::bool_switch(), "with --init: keep the encoder fixed, train the decoder and head only")
      ("encoder-lr", po::value<double>()->default_value(1.0),
       "with --init: the learning rate of the pre-trained encoder (and decoder) as a share of --lr (e.g. 0.1: "
       "fine-tune them gently while the parts starting from random learn at the full rate)")
      ("micro-batch", po::value<int>()->default_value(0),
       "patches per forward/backward pass within a rank's batch (0: all at once). 1 makes each patch's gradient "
       "independent of how the global batch is split over ranks (bitwise-reproducible data parallelism, slower); "
       "small values also bound activation memory")
      ("val-tiles", po::value<std::string>()->default_value(""),
       "validate on these tiles (spatially disjoint); default: --val-fraction of the patches")
      ("lr", po::value<double>()->default_value(2e-3), "peak learning rate (AdamW)")
      ("patience", po::value<int>()->default_value(6),
       "early stopping after this many epochs without a better validation mean IoU (0: off)")
      ("backend", po::value<std::string>()->default_value("auto"),
       "gradient all-reduce: auto (NCCL with one GPU per rank when built with it, else MPI), mpi or nccl")
      ("seed", po::value<std::string>()->default_value("42"), "seed of initialisation, sampling and augmentation");
  add_training_loop_options(opts);
  po::variables_map vm;
  if (!parse_options("segment train", "--patches PATCHES.h5 --output MODEL.h5 [options]",
                     "Trains the U-Net (pixel-level segmentation of stacked monthly composites) on a patch set with "
                     "the same data-parallel trainer as 's2crop train': each rank reads only its shard of patches, "
                     "gradients are all-reduced in fused buckets (MPI on CPU, NCCL on GPUs), validation (per-label "
                     "IoU, mean IoU) every epoch, early stopping, checkpoints every epoch; a killed run continues from "
                     "its checkpoint when started again with the same command.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  train::TrainSettings s;
  if (vm.count("patches")) s.samples = vm["patches"].as<std::string>();
  read_training_settings(vm, s);
  s.task = "segment";
  auto& g = s.segment;
  g.head = vm["head"].as<std::string>();
  g.targets = split_list(vm["targets"].as<std::string>());
  s.loss = vm["loss"].as<std::string>();
  if (s.loss.empty()) s.loss = g.head == "multilabel" ? "bce" : "ce";
  s.focal_gamma = vm["focal-gamma"].as<double>();
  g.depth = vm["depth"].as<int>();
  g.width = vm["width"].as<int>();
  g.encoder = vm["encoder"].as<std::string>();
  g.blocks = vm["blocks"].as<int>();
  g.norm = vm["norm"].as<std::string>();
  g.upsampling = vm["upsampling"].as<std::string>();
  g.months = parse_season_months(vm["months"].as<std::string>());
  g.label_fraction = vm["label-fraction"].as<double>();
  g.augment = vm["augment"].as<bool>();
  g.jitter = vm["jitter"].as<double>();
  g.init_encoder = vm["init"].as<std::string>();
  g.freeze_encoder = vm["freeze-encoder"].as<bool>();
  g.encoder_lr = vm["encoder-lr"].as<double>();
  g.micro_batch = vm["micro-batch"].as<int>();
  train::run_train(s, mpi);
  return 0;
}

std::vector<int> parse_season_months(const std::string& list) {
  std::vector<int> months;
  for (auto& m : split_list(list)) {
    int month = 0;
    try {
      month = std::stoi(m);
    } catch (const std::exception&) {
    }
    if (month < 1 || month > 12) throw ConfigError("--months: '" + m + "' is not a season month 1-12");
    months.push_back(month - 1);
  }
  return months;
}

}  // namespace s2crop::cli
