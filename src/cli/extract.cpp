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
       "at most this many samples per class, a seeded uniform random choice (0: keep every candidate); not in "
       "patch mode")
      ("border", po::value<int>()->default_value(1),
       "keep only pixels whose neighbours within this many pixels belong to the same parcel and class "
       "(0: keep parcel edges too); not in patch mode")
      ("min-clear-months", po::value<int>()->default_value(1),
       "keep only pixels with a clear observation in at least this many months; not in patch mode")
      ("seed", po::value<unsigned>()->default_value(42), "seed of the per-class random choice; not in patch mode")
      ("class-field", po::value<std::string>()->default_value("class_id"),
       "vector labels: field with the class, an id 0-15 or a class name (e.g. 'Winter wheat')")
      ("parcel-field", po::value<std::string>()->default_value("parcel_id"),
       "vector labels: integer parcel id field (the feature id where the default field is absent)")
      ("layer", po::value<std::string>()->default_value(""), "vector labels: only this layer (default: every layer)")
      ("patches", po::value<int>()->default_value(0),
       "patch mode: write SIZE x SIZE px patches (8-1024) of a regular grid of each tile as a patch set (x, "
       "crop_type / field_boundary / cropland labels, clear flags) for segmentation models instead of pixel "
       "samples; --per-class, --border, --min-clear-months and --seed do not apply (0: pixel mode)")
      ("patch-stride", po::value<int>()->default_value(0),
       "patch mode: step between windows in px (0: the patch size, no overlap); only windows fully inside the tile")
      ("min-labelled", po::value<double>()->default_value(0.05, "0.05"),
       "patch mode: keep a window when at least this fraction of its pixels is labelled (0: every window, e.g. "
       "for self-supervised pre-training)")
      ("overwrite", po::bool_switch(), "replace an existing output");
  po::variables_map vm;
  if (!parse_options("extract", "--composites FILE.h5 --labels PATH --output FILE.h5 [options]",
                     "Extracts labelled pixel time series from monthly composites: each pixel inside a labelled parcel "
                     "(away from its border, with clear observations) is a candidate; per class a seeded random "
                     "choice of at most --per-class candidates is written as a training set. With --patches SIZE, "
                     "square patches with per-pixel labels are written as a patch set instead. The result does not "
                     "depend on the number of MPI ranks.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  samples::ExtractSettings s;
  if (vm.count("composites")) s.composites = vm["composites"].as<std::string>();
  if (vm.count("labels")) s.labels = vm["labels"].as<std::string>();
  if (vm.count("output")) s.output = vm["output"].as<std::string>();
  s.tiles = parse_tile_list(vm["tiles"].as<std::string>());
  s.per_class = vm["per-class"].as<long>();
  s.border = vm["border"].as<int>();
  s.min_clear_months = vm["min-clear-months"].as<int>();
  s.seed = vm["seed"].as<unsigned>();
  s.label_options.class_field = vm["class-field"].as<std::string>();
  s.label_options.parcel_field = vm["parcel-field"].as<std::string>();
  s.label_options.parcel_field_required = !vm["parcel-field"].defaulted();
  s.label_options.layer = vm["layer"].as<std::string>();
  s.patch_size = vm["patches"].as<int>();
  s.patch_stride = vm["patch-stride"].as<int>();
  s.min_labelled = vm["min-labelled"].as<double>();
  if (s.patch_size < 0) throw ConfigError("extract: --patches must be 8-1024 (or 0 for pixel samples)");
  // Options of the other mode are refused when given on the command line (a config file may set them for either).
  const auto given = [&](const std::string& option) {
    for (int i = 0; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == option || a.rfind(option + "=", 0) == 0) return true;
    }
    return false;
  };
  for (const char* o : {"--per-class", "--border", "--min-clear-months", "--seed"})
    if (s.patch_size > 0 && given(o))
      throw ConfigError(std::string("extract: ") + o + " does not apply with --patches (patch mode keeps windows by "
                        "--min-labelled)");
  for (const char* o : {"--patch-stride", "--min-labelled"})
    if (s.patch_size == 0 && given(o)) throw ConfigError(std::string("extract: ") + o + " applies only with --patches SIZE");
  s.overwrite = vm["overwrite"].as<bool>();
  s.config_text = effective_config(vm);
  samples::run_extract(s, mpi);
  return 0;
}

}  // namespace s2crop::cli
