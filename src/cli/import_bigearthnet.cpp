// s2crop import-bigearthnet: BigEarthNet v1.0 Sentinel-2 patch folders -> a patch set with patch-level labels.
#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/samples/bigearthnet_import.hpp"
#include "s2crop/sentinel2/bands.hpp"

namespace s2crop::cli {

int run_import_bigearthnet(int argc, char** argv, const parallel::MpiContext& mpi) {
  po::options_description opts("import-bigearthnet options");
  opts.add_options()
      ("input", po::value<std::vector<std::string>>()->composing(),
       "a folder of BigEarthNet patch folders (searched recursively), or one patch folder; repeat for several")
      ("output", po::value<std::string>(), "patch-set HDF5 file to write")
      ("bands", po::value<std::string>()->default_value("B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12"),
       "bands to import, in this order (20 m and 60 m bands are replicated onto the 10 m grid)")
      ("season-start", po::value<int>()->default_value(9),
       "calendar month the 12-month season starts (9 = September, TimeSen2Crop's agronomic year); the season is "
       "the one holding the earliest acquisition, each patch sits in its calendar month")
      ("nomenclature", po::value<int>()->default_value(19),
       "label layers: 19 (the BigEarthNet-19 classes of Sumbul et al. 2021, grouping the CORINE labels) or 43 (one "
       "layer per CORINE level-3 label of BigEarthNet v1.0)")
      ("overwrite", po::bool_switch(), "replace an existing output file");
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
  samples::bigearthnet::ImportSettings s;
  if (!vm.count("input")) throw ConfigError("s2crop import-bigearthnet: --input DIR is required (see --help)");
  if (!vm.count("output")) throw ConfigError("s2crop import-bigearthnet: --output PATCHES.h5 is required (see --help)");
  s.inputs = vm["input"].as<std::vector<std::string>>();
  s.output = vm["output"].as<std::string>();
  s.bands = sentinel2::parse_band_list(vm["bands"].as<std::string>());
  s.season_start = vm["season-start"].as<int>();
  if (s.season_start < 1 || s.season_start > 12) throw ConfigError("--season-start must be a month 1-12");
  s.nomenclature = vm["nomenclature"].as<int>();
  samples::bigearthnet::layer_names(s.nomenclature);  // ConfigError for anything but 19 or 43
  s.overwrite = vm["overwrite"].as<bool>();
  s.config_text = effective_config(vm);
  samples::bigearthnet::run_import(s, mpi);
  return 0;
}

}  // namespace s2crop::cli
