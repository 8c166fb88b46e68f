// `s2crop pretrain`: self-supervised siamese pre-training of the U-Net encoder (and, with masked-month
// reconstruction, its decoder) on unlabelled patches, by the one data-parallel trainer.
#include <string>

#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/train/trainer.hpp"

namespace s2crop::cli {

int run_pretrain(int argc, char** argv, const parallel::MpiContext& mpi) {
  // Pre-training's defaults where they differ from the LSTM's (train::TrainSettings).
  train::TrainSettings s;
  s.dropout = 0.0;
  s.patience = 0;
  auto& g = s.segment;
  po::options_description opts("Pretrain options");
  OptionBinder b(opts);
  b.add_unset("patches,p", s.samples,
              "patch set HDF5 (from 's2crop extract --patches SIZE --min-labelled 0': labels are not used)")
      .add_unset("output,o", s.output,
                 "pre-trained encoder (and decoder) file to write (for 'segment train --init')")
      .add("depth", g.depth, "down-sampling levels (the U-Net to be trained must match)")
      .add("width", g.width, "channels of the first level (doubled per level)")
      .add("encoder", g.encoder, "plain or resnet")
      .add("blocks", g.blocks, "resnet encoder: basic blocks per level")
      .add("norm", g.norm, "group or none")
      .add_text("bands", s.bands, "input bands (default: all bands of the patch set)", split_list, join_list);
  add_months(b, g.months);
  b.add("projection", g.projection, "size of the projector's output (predictor: a quarter)")
      .add("objective", g.objective,
           "dense: an embedding per pixel (the encoder's levels at that pixel, stacked), views aligned pixel by "
           "pixel and differing in brightness and dropped months, VICReg's loss over the sampled pixels "
           "(invariance, variance, covariance), plus masked-month reconstruction (--reconstruction); suits "
           "pixel-level segmentation. global: SimSiam as published, one embedding per patch (the deepest level "
           "averaged), views also cropped and resized")
      .add("reconstruction", g.reconstruction,
           "dense: weight of masked-month reconstruction: the U-Net decoder and a 1x1 head predict each pixel's "
           "dropped months (normalised reflectance, MSE) from the months its view kept, so pre-training learns "
           "phenology; the decoder is saved with the encoder and 'segment train --init' starts from both. 0: VICReg "
           "alone, encoder alone")
      .add("drop-months", g.drop_months, "probability of each month being blanked in a view (as a cloudy month would be)")
      .add("jitter", g.jitter, "brightness factor range per band: 1 +- jitter")
      .add("dropout", s.dropout, "unused by the encoder; kept for the shared options")
      .add_text("val-tiles", s.val_tiles, "validate on these tiles; default: --val-fraction of the patches",
                split_list, join_list)
      .add("lr", s.lr, "peak learning rate (AdamW)")
      .add("patience", s.patience, "early stopping after this many epochs without a lower validation loss (0: off)")
      .add("backend", s.backend, "gradient all-reduce: auto, mpi or nccl");
  add_seed(b, s.seed, "seed of initialisation, sampling and the views");
  add_training_loop_options(b, s);
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
  s.task = "pretrain";
  s.config_text = effective_config(vm);
  train::run_train(s, mpi);  // checks the ranges of all settings (train/settings.hpp) first
  return 0;
}

}  // namespace s2crop::cli
