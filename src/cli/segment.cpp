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
  po::options_description opts("Segment predict options");
  opts.add_options()
      ("composites,c", po::value<std::string>(), "composite HDF5 file (from 's2crop composite')")
      ("model,m", po::value<std::string>(), "U-Net model file (from 's2crop segment train')")
      ("output,o", po::value<std::string>(), "segmentation map HDF5 file to write")
      ("tiles", po::value<std::string>()->default_value(""), "only these tiles, comma-separated (default: all)")
      ("window", po::value<int>()->default_value(128),
       "edge of the sliding window in pixels (best a multiple of 2^depth of the U-Net; a tile smaller than it gets "
       "one window of its size)")
      ("overlap", po::value<int>()->default_value(32),
       "pixels shared by neighbouring windows: predictions are blended with weights tapering over this margin")
      ("threshold", po::value<double>()->default_value(0.5), "multilabel: a label is set where its probability >= this")
      ("probabilities", po::bool_switch(),
       "multiclass: also store every class's probability (x 100) per pixel (multilabel maps always do)")
      ("cog", po::value<std::string>()->default_value(""),
       "also export one GeoTIFF (COG) per tile into this folder: the class map with colour table and class names "
       "(multiclass) or a band per label's probability (multilabel)")
      ("quicklook", po::value<std::string>()->default_value(""),
       "write one PNG per tile into this folder: the class map with legend, or a grey panel per label")
      ("block-size", po::value<int>()->default_value(512),
       "block edge in pixels: the unit of work and of resume (does not change the output)")
      ("threads", po::value<int>()->default_value(0), "threads per rank (0: node cores / ranks on the node)")
      ("deflate", po::value<int>()->default_value(1), "HDF5 deflate level (0 = uncompressed)")
      ("overwrite", po::bool_switch(), "replace an existing map (or leftovers of another interrupted run)");
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
  infer::SegmentPredictSettings s;
  if (vm.count("composites")) s.composites = vm["composites"].as<std::string>();
  if (vm.count("model")) s.model = vm["model"].as<std::string>();
  if (vm.count("output")) s.output = vm["output"].as<std::string>();
  s.tiles = parse_tile_list(vm["tiles"].as<std::string>());
  s.window = vm["window"].as<int>();
  s.overlap = vm["overlap"].as<int>();
  s.threshold = vm["threshold"].as<double>();
  s.probabilities = vm["probabilities"].as<bool>();
  s.cog_dir = vm["cog"].as<std::string>();
  s.quicklook_dir = vm["quicklook"].as<std::string>();
  s.block_size = vm["block-size"].as<int>();
  s.threads = vm["threads"].as<int>();
  s.deflate = vm["deflate"].as<int>();
  s.overwrite = vm["overwrite"].as<bool>();
  s.config_text = effective_config(vm);
  infer::run_segment_predict(s, mpi);
  return 0;
}

int run_segment_evaluate(int argc, char** argv, const parallel::MpiContext& mpi) {
  po::options_description opts("Segment evaluate options");
  opts.add_options()
      ("model,m", po::value<std::string>(), "U-Net model file (from 's2crop segment train')")
      ("patches,p", po::value<std::string>(), "patch set HDF5 with labels (from 's2crop extract --patches')")
      ("output,o", po::value<std::string>(), "report JSON to write")
      ("tiles", po::value<std::string>()->default_value(""), "only patches of these tiles, comma-separated (default: all)")
      ("png", po::value<std::string>()->default_value(""),
       "write a PNG per sample patch into this folder: true-colour image, truth and prediction with a legend")
      ("samples", po::value<int>()->default_value(8), "sample patches drawn as PNG (evenly spaced over the selection)")
      ("predictions", po::value<std::string>()->default_value(""),
       "also write every patch's predicted labels (and mean probabilities) to this HDF5 file")
      ("threads", po::value<int>()->default_value(0), "threads per rank (0: node cores / ranks on the node)");
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
  infer::SegmentEvaluateSettings s;
  if (vm.count("model")) s.model = vm["model"].as<std::string>();
  if (vm.count("patches")) s.patches = vm["patches"].as<std::string>();
  if (vm.count("output")) s.output = vm["output"].as<std::string>();
  s.tiles = parse_tile_list(vm["tiles"].as<std::string>());
  s.png_dir = vm["png"].as<std::string>();
  s.samples = vm["samples"].as<int>();
  s.predictions = vm["predictions"].as<std::string>();
  s.threads = vm["threads"].as<int>();
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
