#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/samples/extract.hpp"

namespace s2crop::cli {

int run_extract(int argc, char** argv, const parallel::MpiContext& mpi) {
  po::options_description opts("Extract options");
  opts.add_options()
      ("composites,c", po::value<std::string>(), "composite HDF5 file from 's2crop composite'")
      ("labels,l", po::value<std::string>(),
       "crop labels: a parcel vector file (GeoPackage, Shapefile, GeoJSON, any CRS), a uint8 class raster "
       "(255 = no label, any grid), or a folder of <tile>_class.tif (+ <tile>_parcel.tif) rasters as 's2crop synth' "
       "writes under labels/")
      ("output,o", po::value<std::string>(), "training-set HDF5 file to write")
      ("tiles", po::value<std::string>()->default_value(""),
       "only these tiles of the composite file, comma-separated (default: all)")
      ("per-class", po::value<long>()->default_value(2000),
       "at most this many samples per class, a seeded uniform random choice (0: keep every candidate)")
      ("border", po::value<int>()->default_value(1),
       "keep only pixels whose neighbours within this many pixels belong to the same parcel and class "
       "(0: keep parcel edges too)")
      ("min-clear-months", po::value<int>()->default_value(1),
       "keep only pixels with a clear observation in at least this many months")
      ("seed", po::value<unsigned>()->default_value(42), "seed of the per-class random choice")
      ("class-field", po::value<std::string>()->default_value("class_id"),
       "vector labels: field with the class, an id 0-15 or a class name (e.g. 'Winter wheat')")
      ("parcel-field", po::value<std::string>()->default_value("parcel_id"),
       "vector labels: integer parcel id field (the feature id where the default field is absent)")
      ("layer", po::value<std::string>()->default_value(""), "vector labels: only this layer (default: every layer)")
      ("overwrite", po::bool_switch(), "replace an existing output");
  po::variables_map vm;
  if (!parse_options("extract", "--composites FILE.h5 --labels PATH --output FILE.h5 [options]",
                     "Extracts labelled pixel time series from monthly composites: each pixel inside a labelled parcel "
                     "(away from its border, with clear observations) is a candidate; per class a seeded random "
                     "choice of at most --per-class candidates is written as a training set. The result does not "
                     "depend on the number of MPI ranks.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  samples::ExtractSettings s;
  if (vm.count("composites")) s.composites = vm["composites"].as<std::string>();
  if (vm.count("labels")) s.labels = vm["labels"].as<std::string>();
  if (vm.count("output")) s.output = vm["output"].as<std::string>();
  s.tiles = split_list(vm["tiles"].as<std::string>());
  s.per_class = vm["per-class"].as<long>();
  s.border = vm["border"].as<int>();
  s.min_clear_months = vm["min-clear-months"].as<int>();
  s.seed = vm["seed"].as<unsigned>();
  s.label_options.class_field = vm["class-field"].as<std::string>();
  s.label_options.parcel_field = vm["parcel-field"].as<std::string>();
  s.label_options.parcel_field_required = !vm["parcel-field"].defaulted();
  s.label_options.layer = vm["layer"].as<std::string>();
  s.overwrite = vm["overwrite"].as<bool>();
  s.config_text = effective_config(vm);
  samples::run_extract(s, mpi);
  return 0;
}

}  // namespace s2crop::cli
