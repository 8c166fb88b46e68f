#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/samples/extract.hpp"

namespace s2crop::cli {

int run_extract(int argc, char** argv, const parallel::MpiContext& mpi) {
  samples::ExtractSettings s;
  po::options_description opts("Extract options");
  OptionBinder b(opts);
  b.add_unset("composites,c", s.composites, "composite HDF5 file from 's2crop composite'")
      .add_unset("labels,l", s.labels,
                 "crop labels: a parcel vector file (GeoPackage, Shapefile, GeoJSON, any CRS), a uint8 class raster "
                 "(255 = no label, any grid), or a folder of <tile>_class.tif (+ <tile>_parcel.tif) rasters as "
                 "'s2crop synth' writes under labels/")
      .add_unset("output,o", s.output, "training-set HDF5 file to write");
  add_tiles(b, s.tiles, "only these tiles of the composite file, comma-separated (default: all)");
  b.add("per-class", s.per_class,
        "at most this many samples per class, a seeded uniform random choice (0: keep every candidate); not in "
        "patch mode",
        Range<std::int64_t>{0})
      .add("border", s.border,
           "keep only pixels whose neighbours within this many pixels belong to the same parcel and class "
           "(0: keep parcel edges too); not in patch mode")
      .add("min-clear-months", s.min_clear_months,
           "keep only pixels with a clear observation in at least this many months; not in patch mode");
  add_seed(b, s.seed, "seed of the per-class random choice; not in patch mode");
  b.add("class-field", s.label_options.class_field,
        "vector labels: field with the class, an id 0-15 or a class name (e.g. 'Winter wheat')")
      .add("parcel-field", s.label_options.parcel_field,
           "vector labels: integer parcel id field (the feature id where the default field is absent)")
      .add("layer", s.label_options.layer, "vector labels: only this layer (default: every layer)")
      // Only the sign here: 0 or 8-1024 is one sentence of the stage's ("--patches must be 8-1024 (or 0 ...)").
      .add("patches", s.patch_size,
           "patch mode: write SIZE x SIZE px patches (8-1024) of a regular grid of each tile as a patch set (x, "
           "crop_type / field_boundary / cropland labels, clear flags) for segmentation models instead of pixel "
           "samples; --per-class, --border, --min-clear-months and --seed do not apply (0: pixel mode)",
           Range<int>{0})
      .add("patch-stride", s.patch_stride,
           "patch mode: step between windows in px (0: the patch size, no overlap); only windows fully inside the "
           "tile")
      .add("min-labelled", s.min_labelled,
           "patch mode: keep a window when at least this fraction of its pixels is labelled (0: every window, e.g. "
           "for self-supervised pre-training)");
  add_overwrite(b, s.overwrite, "replace an existing output");
  po::variables_map vm;
  if (!parse_options("extract", "--composites FILE.h5 --labels PATH --output FILE.h5 [options]",
                     "Extracts labelled pixel time series from monthly composites: each pixel inside a labelled parcel "
                     "(away from its border, with clear observations) is a candidate; per class a seeded random "
                     "choice of at most --per-class candidates is written as a training set. With --patches SIZE, "
                     "square patches with per-pixel labels are written as a patch set instead. The result does not "
                     "depend on the number of MPI ranks.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  s.label_options.parcel_field_required = !vm["parcel-field"].defaulted();
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
  s.config_text = effective_config(vm);
  samples::run_extract(s, mpi);
  return 0;
}

}  // namespace s2crop::cli
