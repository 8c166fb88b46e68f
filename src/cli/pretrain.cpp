// `s2crop pretrain`: self-supervised siamese pre-training of the U-Net encoder (and, with masked-month
// reconstruction, its decoder) on unlabelled patches, by the one data-parallel trainer.
#include <string>

#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/train/trainer.hpp"

namespace s2crop::cli {

int run_pretrain(int argc, char** argv, const parallel::MpiContext& mpi) {
  po::options_description opts("Pretrain options");
  opts.add_options()
      ("patches,p", po::value<std::string>(),
       "patch set HDF5 (from 's2crop extract --patches SIZE --min-labelled 0': labels are not used)")
      ("output,o", po::value<std::string>(), "pre-trained encoder (and decoder) file to write (for 'segment train --init')")
      ("depth", po::value<int>()->default_value(3), "down-sampling levels (the U-Net to be trained must match)")
      ("width", po::value<int>()->default_value(16), "channels of the first level (doubled per level)")
      ("encoder", po::value<std::string>()->default_value("plain"), "plain or resnet")
      ("blocks", po::value<int>()->default_value(2), "resnet encoder: basic blocks per level")
      ("norm", po::value<std::string>()->default_value("group"), "group or none")
      ("bands", po::value<std::string>()->default_value(""), "input bands (default: all bands of the patch set)")
      ("months", po::value<std::string>()->default_value(""),
       "season months stacked into the input, 1-12 comma-separated (default: all 12)")
      ("projection", po::value<int>()->default_value(128), "size of the projector's output (predictor: a quarter)")
      ("objective", po::value<std::string>()->default_value("dense"),
       "dense: an embedding per pixel (the encoder's levels at that pixel, stacked), views aligned pixel by pixel and "
       "differing in brightness and dropped months, VICReg's loss over the sampled pixels (invariance, variance, "
       "covariance), plus masked-month reconstruction (--reconstruction); suits pixel-level segmentation. global: "
       "SimSiam as published, one embedding per patch (the deepest level averaged), views also cropped and resized")
      ("reconstruction", po::value<double>()->default_value(10.0),
       "dense: weight of masked-month reconstruction: the U-Net decoder and a 1x1 head predict each pixel's dropped "
       "months (normalised reflectance, MSE) from the months its view kept, so pre-training learns phenology; the "
       "decoder is saved with the encoder and 'segment train --init' starts from both. 0: VICReg alone, encoder alone")
      ("drop-months", po::value<double>()->default_value(0.4),
       "probability of each month being blanked in a view (as a cloudy month would be)")
      ("jitter", po::value<double>()->default_value(0.1), "brightness factor range per band: 1 +- jitter")
      ("dropout", po::value<double>()->default_value(0.0), "unused by the encoder; kept for the shared options")
      ("val-tiles", po::value<std::string>()->default_value(""),
       "validate on these tiles; default: --val-fraction of the patches")
      ("lr", po::value<double>()->default_value(2e-3), "peak learning rate (AdamW)")
      ("patience", po::value<int>()->default_value(0),
       "early stopping after this many epochs without a lower validation loss (0: off)")
      ("backend", po::value<std::string>()->default_value("auto"), "gradient all-reduce: auto, mpi or nccl")
      ("seed", po::value<std::string>()->default_value("42"), "seed of initialisation, sampling and the views");
  add_training_loop_options(opts);
  po::variables_map vm;
  if (!parse_options("pretrain", "--patches PATCHES.h5 --output ENCODER.h5 [options]",
                     "Pre-trains the U-Net without labels, data-parallel with the same trainer, communicators and "
                     "checkpoints as 'segment train'. Two augmented views of each patch (brightness, dropped months) "
                     "must agree pixel by pixel (VICReg; no negative pairs) and reconstruct the months they dropped "
                     "(the default, dense), or agree per patch (SimSiam: projector, predictor, stop-gradient). Writes "
                     "the encoder (and the decoder, with reconstruction); 'segment train --init ENCODER.h5 "
                     "[--freeze-encoder]' starts from it, which helps where labels are scarce (bench/RESULTS.md).",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  train::TrainSettings s;
  if (vm.count("patches")) s.samples = vm["patches"].as<std::string>();
  read_training_settings(vm, s);
  s.task = "pretrain";
  auto& g = s.segment;
  g.depth = vm["depth"].as<int>();
  g.width = vm["width"].as<int>();
  g.encoder = vm["encoder"].as<std::string>();
  g.blocks = vm["blocks"].as<int>();
  g.norm = vm["norm"].as<std::string>();
  g.months = parse_season_months(vm["months"].as<std::string>());
  g.projection = vm["projection"].as<int>();
  g.objective = vm["objective"].as<std::string>();
  g.drop_months = vm["drop-months"].as<double>();
  g.jitter = vm["jitter"].as<double>();
  g.reconstruction = vm["reconstruction"].as<double>();
  train::run_train(s, mpi);  // checks the ranges of all settings (train/settings.hpp) first
  return 0;
}

}  // namespace s2crop::cli
