#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/infer/classify.hpp"

namespace s2crop::cli {

int run_classify(int argc, char** argv, const parallel::MpiContext& mpi) {
  infer::ClassifySettings s;
  po::options_description opts("Classify options");
  OptionBinder b(opts);
  b.add_unset("composites,c", s.composites, "composite HDF5 file (from 's2crop composite')")
      .add_unset("model,m", s.model, "model file (from 's2crop train')")
      .add_unset("output,o", s.output, "class map HDF5 file to write");
  add_tiles(b, s.tiles);
  b.flag("probabilities", s.probabilities, "also store every class's probability (x 100) per pixel");
  add_exports(b, s.cog_dir, s.quicklook_dir,
              "also export one GeoTIFF (COG) per tile with colour table and class names into this folder",
              "write one PNG per tile with a legend into this folder");
  add_block_size(b, s.block_size, pipeline::kInferenceBlockSizes);
  b.add("batch-size", s.batch_size, "pixels per model call (a few thousand keep the working set in cache)");
  add_threads(b, s.threads);
  add_device(b, s.device);
  add_precision(b, s.precision);
  add_deflate(b, s.deflate);
  add_overwrite(b, s.overwrite, "replace an existing map (or leftovers of another interrupted run)");
  po::variables_map vm;
  if (!parse_options("classify", "--composites C.h5 --model MODEL.h5 --output MAP.h5 [options]",
                     "Runs a trained model over every pixel of every tile of a composite file, (tile, block) units "
                     "balanced over the MPI ranks, and writes the class, its probability (confidence) and optionally "
                     "all class probabilities into one parallel HDF5 map. Pixels without any clear observation in the "
                     "year are no data (255). A killed run resumes where it stopped when started again.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  s.config_text = effective_config(vm);
  infer::run_classify(s, mpi);
  return 0;
}

}  // namespace s2crop::cli
