#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/pipeline/composite_stage.hpp"

namespace s2crop::cli {

int run_composite(int argc, char** argv, const parallel::MpiContext& mpi) {
  pipeline::CompositeSettings s;
  po::options_description opts("Composite options");
  opts.add_options()
      ("input,i", po::value<std::vector<std::string>>(&s.inputs)->multitoken(),
       "folders or files with L2A acquisitions: STAC item JSONs (+ COGs), SAFE folders or zips, folders of per-band "
       "GeoTIFFs (..._B04.tif + SCL or MASK), sen2r BOA/SCL outputs; searched recursively");
  OptionBinder b(opts);
  b.add_unset("output,o", s.output, "composite HDF5 file to write")
      .add_text("bands", s.bands, "bands to composite, in this order; every acquisition must have them",
                sentinel2::parse_band_list, join_list);
  add_method(b, s.method);
  b.add("season-start", s.season_start,
        "first month of the 12-month season, YYYY-MM; auto: the --season-month on or before the acquisitions (an "
        "error if they span more than one season)")
      .add("season-month", s.season_month,
           "with --season-start auto: calendar month the season starts (9 = September, as TimeSen2Crop)",
           Range<int>{1, 12})
      .add_text("valid-scl", s.valid_scl, "SCL classes counted as clear (add 2 for dark areas, 11 for snow)",
                [](const std::string& text) {
                  auto scl = parse_int_list(text, "valid-scl");
                  if (scl.empty())
                    throw ConfigError("--valid-scl is empty: no SCL class would count as clear and every pixel "
                                      "would be no data (the default is 4,5,6,7)");
                  return scl;
                },
                [](const std::vector<int>& scl) {
                  std::string out;
                  for (int c : scl) out += (out.empty() ? "" : ",") + std::to_string(c);
                  return out;
                })
      .add("dilation", s.dilation, "pixels (10 m) masked around clouds, cirrus and shadows (SCL 3, 8, 9, 10)");
  add_boa_offset(b, s.offset_mode, "radiometric offset: auto (product metadata, else -1000 from 2022-01-25), 0 or -1000");
  add_tiles(b, s.tiles, "only these tiles, comma-separated (default: all found)");
  b.add_text("block-size", s.block_size,
             "block edge in pixels: the unit of work, of memory and the output's chunk; auto: " +
                 std::to_string(pipeline::kDefaultCompositeBlock) + ", or for JPEG 2000 inputs their tiles' footprint "
                 "on the 10 m grid (2048 for Sentinel-2's 1024 px tiles of 20 m bands), so each tile is decoded once",
             [](const std::string& text) {
               if (text == "auto") return 0;
               const auto limits = pipeline::kCompositeBlockSizes;
               int v = 0;
               try {
                 size_t used = 0;
                 v = std::stoi(text, &used);
                 if (used != text.size()) throw std::invalid_argument(text);
               } catch (const std::exception&) {
                 throw ConfigError("--block-size must be auto or a number of pixels (got '" + text + "')");
               }
               pipeline::check_block_size(v, limits);
               return v;
             },
             [](int v) { return v == 0 ? std::string("auto") : std::to_string(v); });
  add_on_error(b, s.skip_bad, "fail: a bad acquisition stops the run; skip: leave it out and record it in the output");
  add_exports(b, s.cog_dir, s.quicklook_dir, "also export one Cloud-Optimized GeoTIFF per tile and month here",
              "write one RGB|NDVI PNG per tile into this folder");
  b.add("quicklook-month", s.quicklook_month,
        "YYYY-MM of the quicklook (default: the 11th month of the season, July for a September start)");
  add_deflate(b, s.deflate,
              "HDF5 deflate level with byte shuffle (0 = uncompressed; 1 compresses int16 reflectance nearly as well "
              "as 9, several times faster)");
  b.flag("allow-unmasked", s.allow_unmasked,
         "composite acquisitions that have no cloud mask (no SCL, no MASK) unmasked, clouds included; without it "
         "they are an error. Its use is logged and stored in the output's configuration")
      .flag("list", s.list_only,
            "only discover and check the inputs, print the acquisitions per tile (TSV) and stop");
  add_overwrite(b, s.overwrite, "replace an existing output (or leftovers of another interrupted run)");
  po::positional_options_description pos;
  po::variables_map vm;
  if (!parse_options("composite", "--input DIR [--input DIR ...] --output FILE.h5 [options]",
                     "Builds 12 monthly composites per tile (cloud-masked with SCL, radiometric offset applied, 20 m "
                     "bands on the 10 m grid, median or mean, empty months filled by linear interpolation) and writes "
                     "them with the clear-observation counts into one HDF5 file, in parallel over MPI ranks. A run "
                     "that is killed resumes where it stopped when started again with the same command.",
                     opts, &pos, argc, argv, vm, mpi.is_root()))
    return 0;
  s.config_text = effective_config(vm);
  pipeline::run_composite(s, mpi);
  return 0;
}

}  // namespace s2crop::cli
