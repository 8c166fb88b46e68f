// `s2crop segment train|evaluate|predict`: the U-Net for segmentation. evaluate scores it on a patch set's labels,
// predict runs it over whole tiles (infer/segment.hpp).
#include <cstring>
#include <iostream>

#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/infer/segment.hpp"

namespace s2crop::cli {

namespace {

int run_segment_predict(int argc, char** argv, const parallel::MpiContext& mpi) {
  infer::SegmentPredictSettings s;
  po::options_description opts("Segment predict options");
  OptionBinder b(opts);
  b.add_unset("composites,c", s.composites, "composite HDF5 file (from 's2crop composite')")
      .add_unset("model,m", s.model, "U-Net model file (from 's2crop segment train')")
      .add_unset("output,o", s.output, "segmentation map HDF5 file to write");
  add_tiles(b, s.tiles);
  b.add("window", s.window,
        "edge of the sliding window in pixels (best a multiple of 2^depth of the U-Net; a tile smaller than it gets "
        "one window of its size)")
      .add("overlap", s.overlap,
           "pixels shared by neighbouring windows: predictions are blended with weights tapering over this margin")
      .add("threshold", s.threshold, "multilabel: a label is set where its probability >= this")
      .flag("probabilities", s.probabilities,
            "multiclass: also store every class's probability (x 100) per pixel (multilabel maps always do)");
  add_exports(b, s.cog_dir, s.quicklook_dir,
              "also export one GeoTIFF (COG) per tile into this folder: the class map with colour table and class "
              "names (multiclass) or a band per label's probability (multilabel)",
              "write one PNG per tile into this folder: the class map with legend, or a grey panel per label");
  add_block_size(b, s.block_size, pipeline::kInferenceBlockSizes,
                 "block edge in pixels: the unit of work and of resume (does not change the output)");
  add_threads(b, s.threads);
  add_device(b, s.device);
  add_precision(b, s.precision);
  add_deflate(b, s.deflate);
  add_overwrite(b, s.overwrite, "replace an existing map (or leftovers of another interrupted run)");
  po::variables_map vm;
  if (!parse_options("segment predict", "--composites C.h5 --model UNET.h5 --output MAP.h5 [options]",
                     "Runs a U-Net over whole tiles of a composite file by sliding windows of one fixed grid per tile, "
                     "blending overlapping windows with smooth weights so no seams show, (tile, block) units balanced "
                     "over the MPI ranks. The map is bitwise the same for any rank count and block size. Multiclass "
                     "models write class and confidence (and optionally every class's probability), multilabel models "
                     "every label's probability and the labels above --threshold. Pixels without data in any month "
                     "the model reads are no data (255). A killed run resumes where it stopped when started again.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  s.config_text = effective_config(vm);
  infer::run_segment_predict(s, mpi);
  return 0;
}

int run_segment_evaluate(int argc, char** argv, const parallel::MpiContext& mpi) {
  infer::SegmentEvaluateSettings s;
  po::options_description opts("Segment evaluate options");
  OptionBinder b(opts);
  b.add_unset("model,m", s.model, "U-Net model file (from 's2crop segment train')")
      .add_unset("patches,p", s.patches, "patch set HDF5 with labels (from 's2crop extract --patches')")
      .add_unset("output,o", s.output, "report JSON to write");
  add_tiles(b, s.tiles, "only patches of these tiles, comma-separated (default: all)");
  b.add("png", s.png_dir,
        "write a PNG per sample patch into this folder: true-colour image, truth and prediction with a legend")
      .add("samples", s.samples, "sample patches drawn as PNG (evenly spaced over the selection)")
      .add("predictions", s.predictions,
           "also write every patch's predicted labels (and mean probabilities) to this HDF5 file");
  add_threads(b, s.threads);
  add_device(b, s.device);
  po::variables_map vm;
  if (!parse_options("segment evaluate", "--model UNET.h5 --patches PATCHES.h5 --output REPORT.json [options]",
                     "Scores a U-Net on the labels of a patch set, the patches split over the MPI ranks (the report is "
                     "the same for any rank count): per label (class or output) IoU, F1, precision, recall and "
                     "support in pixels, mean IoU and mean F1, pixel accuracy for multiclass models; for patch sets "
                     "with image-level labels (label_scope patch, e.g. BigEarthNet) also per-label precision, recall "
                     "and F1 over patches (a label is predicted where its mean probability over the patch is > 0.5). "
                     "The model's outputs are found in the set's label layers by name, as training maps them.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  s.config_text = effective_config(vm);
  infer::run_segment_evaluate(s, mpi);
  return 0;
}

}  // namespace

int run_segment(int argc, char** argv, const parallel::MpiContext& mpi) {
  if (argc >= 2 && !std::strcmp(argv[1], "predict")) return run_segment_predict(argc - 1, argv + 1, mpi);
  if (argc >= 2 && !std::strcmp(argv[1], "train")) return run_segment_train(argc - 1, argv + 1, mpi);
  if (argc >= 2 && !std::strcmp(argv[1], "evaluate")) return run_segment_evaluate(argc - 1, argv + 1, mpi);
  if (mpi.is_root())
    std::cout << "Usage: s2crop segment train|evaluate|predict [options]   ('s2crop segment predict --help')\n"
                 "  train     train the U-Net on a patch set (from 'extract --patches'), data-parallel\n"
                 "  evaluate  per-label IoU, F1, precision, recall on a patch set's labels -> JSON, PNGs of samples\n"
                 "  predict   the U-Net over whole tiles by blended sliding windows -> map HDF5, COGs, quicklooks\n";
  return argc >= 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) ? 0 : 2;
}

}  // namespace s2crop::cli
