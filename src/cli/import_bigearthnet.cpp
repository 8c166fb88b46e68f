// s2crop import-bigearthnet: BigEarthNet v1.0 Sentinel-2 patch folders -> a patch set with patch-level labels.
#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/samples/bigearthnet_import.hpp"
#include "s2crop/sentinel2/bands.hpp"

namespace s2crop::cli {

int run_import_bigearthnet(int argc, char** argv, const parallel::MpiContext& mpi) {
  samples::bigearthnet::ImportSettings s;
  po::options_description opts("import-bigearthnet options");
  opts.add_options()
      ("input", po::value<std::vector<std::string>>(&s.inputs)->composing(),
       "a folder of BigEarthNet patch folders (searched recursively), or one patch folder; repeat for several");
  OptionBinder b(opts);
  b.add_unset("output", s.output, "patch-set HDF5 file to write")
      .add_text("bands", s.bands,
                "bands to import, in this order (20 m and 60 m bands are replicated onto the 10 m grid)",
                sentinel2::parse_band_list, join_list)
      .add("season-start", s.season_start,
           "calendar month the 12-month season starts (9 = September, TimeSen2Crop's agronomic year); the season is "
           "the one holding the earliest acquisition, each patch sits in its calendar month",
           Range<int>{1, 12})
      // 19 or 43: samples::bigearthnet::layer_names refuses the others with what they mean.
      .add("nomenclature", s.nomenclature,
           "label layers: 19 (the BigEarthNet-19 classes of Sumbul et al. 2021, grouping the CORINE labels) or 43 "
           "(one layer per CORINE level-3 label of BigEarthNet v1.0)");
  add_overwrite(b, s.overwrite, "replace an existing output file");
  po::variables_map vm;
  if (!parse_options("import-bigearthnet", "--input DIR [--input DIR2 ...] --output PATCHES.h5 [options]",
                     "Reads BigEarthNet v1.0 Sentinel-2 L2A patches (a folder per patch with one GeoTIFF per band and\n"
                     "<patch>_labels_metadata.json) and writes them as one patch set for 'segment train' and\n"
                     "'pretrain', in parallel over MPI ranks; the output does not depend on the rank count.\n"
                     "  pixels  each band on the patch's 10 m grid (20 m and 60 m bands replicated, nearest\n"
                     "          neighbour), reflectance x 10000 (BOA offset -1000 from 2022-01-25), DN 0 -> no data;\n"
                     "  months  one acquisition is a monthly composite with one clear month: its calendar month in the\n"
                     "          season holding the earliest acquisition is clear, the other 11 hold the same values\n"
                     "          (gap-filled, clear 0); patches of other seasons keep their calendar month (nominal);\n"
                     "  labels  label_scope patch: per class a binary layer, 1 on every pixel of a patch with the\n"
                     "          label, 0 elsewhere, 255 on no-data pixels;\n"
                     "  extras  datasets patch_name and acquisition_date; tiles from tile_source, row/col -1.\n"
                     "A missing or mis-sized band, unreadable JSON or an unknown label stops every rank with the file\n"
                     "named, and no output is left.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  if (!vm.count("input")) throw ConfigError("s2crop import-bigearthnet: --input DIR is required (see --help)");
  if (!vm.count("output")) throw ConfigError("s2crop import-bigearthnet: --output PATCHES.h5 is required (see --help)");
  samples::bigearthnet::layer_names(s.nomenclature);  // ConfigError for anything but 19 or 43
  s.config_text = effective_config(vm);
  samples::bigearthnet::run_import(s, mpi);
  return 0;
}

}  // namespace s2crop::cli
