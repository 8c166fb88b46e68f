#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/pipeline/composite_stage.hpp"

namespace s2crop::cli {


int run_composite(int argc, char** argv, const parallel::MpiContext& mpi) {
  po::options_description opts("Composite options");
  opts.add_options()
      ("input,i", po::value<std::vector<std::string>>()->multitoken(),
       "folders or files with L2A acquisitions: STAC item JSONs (+ COGs), SAFE folders or zips, folders of per-band "
       "GeoTIFFs (..._B04.tif + SCL or MASK), sen2r BOA/SCL outputs; searched recursively")
      ("output,o", po::value<std::string>(), "composite HDF5 file to write")
      ("bands", po::value<std::string>()->default_value("B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12"),
       "bands to composite, in this order; every acquisition must have them")
      ("method", po::value<std::string>()->default_value("median"), "median or mean of the clear observations")
      ("season-start", po::value<std::string>()->default_value("auto"),
       "first month of the 12-month season, YYYY-MM; auto: the --season-month on or before the acquisitions (an error "
       "if they span more than one season)")
      ("season-month", po::value<int>()->default_value(9),
       "with --season-start auto: calendar month the season starts (9 = September, as TimeSen2Crop)")
      ("valid-scl", po::value<std::string>()->default_value("4,5,6,7"),
       "SCL classes counted as clear (add 2 for dark areas, 11 for snow)")
      ("dilation", po::value<int>()->default_value(2),
       "pixels (10 m) masked around clouds, cirrus and shadows (SCL 3, 8, 9, 10)")
      ("boa-offset", po::value<std::string>()->default_value("auto"),
       "radiometric offset: auto (product metadata, else -1000 from 2022-01-25), 0 or -1000")
      ("tiles", po::value<std::string>()->default_value(""), "only these tiles, comma-separated (default: all found)")
      ("block-size", po::value<int>()->default_value(512), "block edge in pixels: the unit of work and of memory")
      ("on-error", po::value<std::string>()->default_value("fail"),
       "fail: a bad acquisition stops the run; skip: leave it out and record it in the output")
      ("cog", po::value<std::string>()->default_value(""), "also export one Cloud-Optimized GeoTIFF per tile and month here")
      ("quicklook", po::value<std::string>()->default_value(""), "write one RGB|NDVI PNG per tile into this folder")
      ("quicklook-month", po::value<std::string>()->default_value(""),
       "YYYY-MM of the quicklook (default: the 11th month of the season, July for a September start)")
      ("deflate", po::value<int>()->default_value(1),
       "HDF5 deflate level with byte shuffle (0 = uncompressed; 1 compresses int16 reflectance nearly as well as 9, "
       "several times faster)")
      ("allow-unmasked", po::bool_switch(),
       "composite acquisitions that have no cloud mask (no SCL, no MASK) unmasked, clouds included; without it they "
       "are an error. Its use is logged and stored in the output's configuration")
      ("list", po::bool_switch(), "only discover and check the inputs, print the acquisitions per tile (TSV) and stop")
      ("overwrite", po::bool_switch(), "replace an existing output (or leftovers of another interrupted run)");
  po::positional_options_description pos;
  po::variables_map vm;
  if (!parse_options("composite", "--input DIR [--input DIR ...] --output FILE.h5 [options]",
                     "Builds 12 monthly composites per tile (cloud-masked with SCL, radiometric offset applied, 20 m "
                     "bands on the 10 m grid, median or mean, empty months filled by linear interpolation) and writes "
                     "them with the clear-observation counts into one HDF5 file, in parallel over MPI ranks. A run "
                     "that is killed resumes where it stopped when started again with the same command.",
                     opts, &pos, argc, argv, vm, mpi.is_root()))
    return 0;
  pipeline::CompositeSettings s;
  if (vm.count("input")) s.inputs = vm["input"].as<std::vector<std::string>>();
  if (vm.count("output")) s.output = vm["output"].as<std::string>();
  s.bands = sentinel2::parse_band_list(vm["bands"].as<std::string>());
  s.method = composite::parse_method(vm["method"].as<std::string>());
  s.season_start = vm["season-start"].as<std::string>();
  s.season_month = vm["season-month"].as<int>();
  if (s.season_month < 1 || s.season_month > 12) throw ConfigError("--season-month must be 1-12");
  s.valid_scl = parse_int_list(vm["valid-scl"].as<std::string>(), "valid-scl");
  if (s.valid_scl.empty())
    throw ConfigError("--valid-scl is empty: no SCL class would count as clear and every pixel would be no data "
                      "(the default is 4,5,6,7)");
  s.dilation = vm["dilation"].as<int>();
  s.offset_mode = sentinel2::parse_offset_mode(vm["boa-offset"].as<std::string>());
  s.tiles = parse_tile_list(vm["tiles"].as<std::string>());
  s.block_size = vm["block-size"].as<int>();
  std::string on_error = vm["on-error"].as<std::string>();
  if (on_error != "fail" && on_error != "skip") throw ConfigError("--on-error must be fail or skip");
  s.skip_bad = on_error == "skip";
  s.cog_dir = vm["cog"].as<std::string>();
  s.quicklook_dir = vm["quicklook"].as<std::string>();
  s.quicklook_month = vm["quicklook-month"].as<std::string>();
  s.deflate = vm["deflate"].as<int>();
  s.overwrite = vm["overwrite"].as<bool>();
  s.list_only = vm["list"].as<bool>();
  s.allow_unmasked = vm["allow-unmasked"].as<bool>();
  s.config_text = effective_config(vm);
  pipeline::run_composite(s, mpi);
  return 0;
}

}  // namespace s2crop::cli
