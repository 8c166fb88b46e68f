// s2crop import-timesen2crop: a TimeSen2Crop tree (per-pixel CSV series) -> a training set of monthly composites.
#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/samples/timesen2crop_import.hpp"

namespace s2crop::cli {

int run_import_timesen2crop(int argc, char** argv, const parallel::MpiContext& mpi) {
  po::options_description opts("import-timesen2crop options");
  opts.add_options()
      ("root", po::value<std::string>(),
       "the TimeSen2Crop folder (the unzipped data set, or any folder above its tile folders)")
      ("output", po::value<std::string>(), "training-set HDF5 file to write")
      ("method", po::value<std::string>()->default_value("median"), "median or mean of the clear observations")
      ("season-month", po::value<int>()->default_value(9),
       "calendar month the 12-month season starts (9 = September, TimeSen2Crop's agronomic year); per tile the "
       "season starts in this month on or before the tile's first date")
      ("valid-flags", po::value<std::string>()->default_value("0"),
       "Flag values counted as clear (0 clear, 1 cloud, 2 shadow, 3 snow); e.g. 0,3 keeps snow")
      ("boa-offset", po::value<std::string>()->default_value("auto"),
       "offset added to the CSV values: auto (-1000 for dates from 2022-01-25, else 0), 0 or -1000; use 0 for "
       "series whose offset was already applied")
      ("on-error", po::value<std::string>()->default_value("fail"),
       "fail: a malformed sample file stops the run; skip: leave it out and list it in the output attribute skipped")
      ("overwrite", po::bool_switch(), "replace an existing output file");
  po::positional_options_description pos;
  pos.add("root", 1).add("output", 1);
  po::variables_map vm;
  if (!parse_options("import-timesen2crop", "ROOT OUT.h5 [options]  (or --root ROOT --output OUT.h5)",
                     "Reads TimeSen2Crop (tile folders with dates.csv and class folders 0..15 of per-pixel CSV series,\n"
                     "found anywhere under ROOT), reduces every pixel's irregular series to 12 monthly composites of\n"
                     "B02 B03 B04 B05 B06 B07 B8A B11 B12 (cloud, shadow and snow flags masked, median or mean, empty\n"
                     "months filled by linear interpolation: the same code as 's2crop composite') and writes them as\n"
                     "one training set, in parallel over MPI ranks. The output does not depend on the rank count.",
                     opts, &pos, argc, argv, vm, mpi.is_root()))
    return 0;
  samples::timesen2crop::ImportSettings s;
  if (!vm.count("root")) throw ConfigError("s2crop import-timesen2crop: ROOT is required (see --help)");
  if (!vm.count("output")) throw ConfigError("s2crop import-timesen2crop: OUT.h5 is required (see --help)");
  s.root = vm["root"].as<std::string>();
  s.output = vm["output"].as<std::string>();
  s.rule.method = composite::parse_method(vm["method"].as<std::string>());
  s.season_month = vm["season-month"].as<int>();
  if (s.season_month < 1 || s.season_month > 12) throw ConfigError("--season-month must be 1-12");
  s.rule.valid_flag =
      samples::timesen2crop::parse_valid_flags(parse_int_list(vm["valid-flags"].as<std::string>(), "valid-flags"));
  s.offset_mode = sentinel2::parse_offset_mode(vm["boa-offset"].as<std::string>());
  const std::string on_error = vm["on-error"].as<std::string>();
  if (on_error != "fail" && on_error != "skip") throw ConfigError("--on-error must be fail or skip");
  s.skip_bad = on_error == "skip";
  s.overwrite = vm["overwrite"].as<bool>();
  s.config_text = effective_config(vm);
  samples::timesen2crop::run_import(s, mpi);
  return 0;
}

}  // namespace s2crop::cli
