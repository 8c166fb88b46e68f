// `s2crop segment train`: the U-Net on a patch set, trained by the one data-parallel trainer.
#include <string>
#include <vector>

#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/train/trainer.hpp"

namespace s2crop::cli {

int run_segment_train(int argc, char** argv, const parallel::MpiContext& mpi) {
  // The U-Net's defaults where they differ from the LSTM's (train::TrainSettings); loss "" is resolved by --head.
  train::TrainSettings s;
  s.loss = "";
  s.dropout = 0.0;
  auto& g = s.segment;
  po::options_description opts("Segment train options");
  OptionBinder b(opts);
  b.add_unset("patches,p", s.samples, "patch set HDF5 (from 's2crop extract --patches SIZE')")
      .add_unset("output,o", s.output,
                 "model file to write (HDF5, self-describing: segment predict needs nothing else)")
      .add("head", g.head,
           "multiclass (softmax over the crop classes of the crop_type layer) or multilabel (a sigmoid per label)")
      .add_text("targets", g.targets,
                "multilabel: label layers of the patch set, comma-separated; crop_type gives one label per class "
                "(default: every layer but crop_type: field_boundary,cropland for 'extract --patches' sets, the 19 "
                "classes for 'import-bigearthnet' sets)",
                split_list, join_list)
      .add("loss", s.loss,
           "multiclass: ce or focal (default ce); multilabel: bce, focal or dice (default bce). No-data pixels never "
           "count")
      .add("focal-gamma", s.focal_gamma, "focusing parameter of the focal loss")
      .add("depth", g.depth, "down-sampling levels of the U-Net")
      .add("width", g.width, "channels of the first level (doubled per level)")
      .add("encoder", g.encoder, "plain (two 3x3 convolutions per level) or resnet")
      .add("blocks", g.blocks, "resnet encoder: basic blocks per level")
      .add("norm", g.norm, "group or none (batch norm is not data-parallel here)")
      .add("upsampling", g.upsampling, "transpose (2x2 transposed conv) or bilinear")
      .add("dropout", s.dropout, "dropout on the deepest features and before the head")
      .add_text("bands", s.bands, "input bands (default: all bands of the patch set)", split_list, join_list);
  add_months(b, g.months);
  b.add("label-fraction", g.label_fraction,
        "use the labels of only this share of the training patches (seeded): the scarce-label setting")
      .add("augment", g.augment,
           "flips, 90-degree rotations and a brightness factor per band (no operation mixes bands)")
      .add("jitter", g.jitter, "brightness factor range per band: 1 +- jitter")
      .add("init", g.init_encoder,
           "start from this file: a 's2crop pretrain' output (its encoder, and its decoder where masked-month "
           "reconstruction trained one), or the encoder of another U-Net of the same architecture")
      .flag("freeze-encoder", g.freeze_encoder, "with --init: keep the encoder fixed, train the decoder and head only")
      .add("encoder-lr", g.encoder_lr,
           "with --init: the learning rate of the pre-trained encoder (and decoder) as a share of --lr (e.g. 0.1: "
           "fine-tune them gently while the parts starting from random learn at the full rate)")
      .add("micro-batch", g.micro_batch,
           "patches per forward/backward pass within a rank's batch (0: all at once). 1 makes each patch's gradient "
           "independent of how the global batch is split over ranks (bitwise-reproducible data parallelism, "
           "slower); small values also bound activation memory")
      .add_text("val-tiles", s.val_tiles,
                "validate on these tiles (spatially disjoint); default: --val-fraction of the patches", split_list,
                join_list)
      .add("lr", s.lr, "peak learning rate (AdamW)")
      .add("patience", s.patience,
           "early stopping after this many epochs without a better validation mean IoU (0: off)")
      .add("backend", s.backend,
           "gradient all-reduce: auto (NCCL with one GPU per rank when built with it, else MPI), mpi or nccl");
  add_seed(b, s.seed, "seed of initialisation, sampling and augmentation");
  add_training_loop_options(b, s);
  po::variables_map vm;
  if (!parse_options("segment train", "--patches PATCHES.h5 --output MODEL.h5 [options]",
                     "Trains the U-Net (pixel-level segmentation of stacked monthly composites) on a patch set with "
                     "the same data-parallel trainer as 's2crop train': each rank reads only its shard of patches, "
                     "gradients are all-reduced in fused buckets (MPI on CPU, NCCL on GPUs), validation (per-label "
                     "IoU, mean IoU) every epoch, early stopping, checkpoints every epoch; a killed run continues from "
                     "its checkpoint when started again with the same command.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  s.task = "segment";
  if (s.loss.empty()) s.loss = g.head == "multilabel" ? "bce" : "ce";
  s.config_text = effective_config(vm);
  train::run_train(s, mpi);  // checks the ranges of all settings (train/settings.hpp) first
  return 0;
}

}  // namespace s2crop::cli
