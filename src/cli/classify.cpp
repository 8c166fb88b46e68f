#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/infer/classify.hpp"

namespace s2crop::cli {

int run_classify(int argc, char** argv, const parallel::MpiContext& mpi) {
  po::options_description opts("Classify options");
  opts.add_options()
      ("composites,c", po::value<std::string>(), "composite HDF5 file (from 's2crop composite')")
      ("model,m", po::value<std::string>(), "model file (from 's2crop train')")
      ("output,o", po::value<std::string>(), "class map HDF5 file to write")
      ("tiles", po::value<std::string>()->default_value(""), "only these tiles, comma-separated (default: all)")
      ("probabilities", po::bool_switch(), "also store every class's probability (x 100) per pixel")
      ("cog", po::value<std::string>()->default_value(""),
       "also export one GeoTIFF (COG) per tile with colour table and class names into this folder")
      ("quicklook", po::value<std::string>()->default_value(""), "write one PNG per tile with a legend into this folder")
      ("block-size", po::value<int>()->default_value(512), "block edge in pixels: the unit of work and of resume")
      ("batch-size", po::value<int>()->default_value(2048), "pixels per model call (a few thousand keep the working set in cache)")
      ("threads", po::value<int>()->default_value(0), "threads per rank (0: node cores / ranks on the node)")
      ("deflate", po::value<int>()->default_value(1), "HDF5 deflate level (0 = uncompressed)")
      ("overwrite", po::bool_switch(), "replace an existing map (or leftovers of another interrupted run)");
  po::variables_map vm;
  if (!parse_options("classify", "--composites C.h5 --model MODEL.h5 --output MAP.h5 [options]",
                     "Runs a trained model over every pixel of every tile of a composite file, (tile, block) units "
                     "balanced over the MPI ranks, and writes the class, its probability (confidence) and optionally "
                     "all class probabilities into one parallel HDF5 map. Pixels without any clear observation in the "
                     "year are no data (255). A killed run resumes where it stopped when started again.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  infer::ClassifySettings s;
  if (vm.count("composites")) s.composites = vm["composites"].as<std::string>();
  if (vm.count("model")) s.model = vm["model"].as<std::string>();
  if (vm.count("output")) s.output = vm["output"].as<std::string>();
  s.tiles = parse_tile_list(vm["tiles"].as<std::string>());
  s.probabilities = vm["probabilities"].as<bool>();
  s.cog_dir = vm["cog"].as<std::string>();
  s.quicklook_dir = vm["quicklook"].as<std::string>();
  s.block_size = vm["block-size"].as<int>();
  s.batch_size = vm["batch-size"].as<int>();
  s.threads = vm["threads"].as<int>();
  s.deflate = vm["deflate"].as<int>();
  s.overwrite = vm["overwrite"].as<bool>();
  s.config_text = effective_config(vm);
  infer::run_classify(s, mpi);
  return 0;
}

}  // namespace s2crop::cli
