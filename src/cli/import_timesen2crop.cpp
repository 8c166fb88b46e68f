// s2crop import-timesen2crop: a TimeSen2Crop tree (per-pixel CSV series) -> a training set of monthly composites.
#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/samples/timesen2crop_import.hpp"

namespace s2crop::cli {

int run_import_timesen2crop(int argc, char** argv, const parallel::MpiContext& mpi) {
  samples::timesen2crop::ImportSettings s;
  po::options_description opts("import-timesen2crop options");
  OptionBinder b(opts);
  b.add_unset("root", s.root,
              "the TimeSen2Crop folder (the unzipped data set, or any folder above its tile folders)")
      .add_unset("output", s.output, "training-set HDF5 file to write");
  add_method(b, s.rule.method);
  b.add("season-month", s.season_month,
        "calendar month the 12-month season starts (9 = September, TimeSen2Crop's agronomic year); per tile the "
        "season starts in this month on or before the tile's first date",
        Range<int>{1, 12})
      .add_text("valid-flags", s.rule.valid_flag,
                "Flag values counted as clear (0 clear, 1 cloud, 2 shadow, 3 snow); e.g. 0,3 keeps snow",
                [](const std::string& text) {
                  return samples::timesen2crop::parse_valid_flags(parse_int_list(text, "valid-flags"));
                },
                [](const auto& valid) {
                  std::string out;
                  for (size_t f = 0; f < valid.size(); ++f)
                    if (valid[f]) out += (out.empty() ? "" : ",") + std::to_string(f);
                  return out;
                });
  add_boa_offset(b, s.offset_mode,
                 "offset added to the CSV values: auto (-1000 for dates from 2022-01-25, else 0), 0 or -1000; use 0 "
                 "for series whose offset was already applied");
  add_on_error(b, s.skip_bad,
               "fail: a malformed sample file stops the run; skip: leave it out and list it in the output attribute "
               "skipped");
  add_overwrite(b, s.overwrite, "replace an existing output file");
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
  if (!vm.count("root")) throw ConfigError("s2crop import-timesen2crop: ROOT is required (see --help)");
  if (!vm.count("output")) throw ConfigError("s2crop import-timesen2crop: OUT.h5 is required (see --help)");
  s.config_text = effective_config(vm);
  samples::timesen2crop::run_import(s, mpi);
  return 0;
}

}  // namespace s2crop::cli
