// s2crop synth: a realistic synthetic Sentinel-2 L2A region (the demo input and the compositor's test fixture).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/synth/generator.hpp"
#include "s2crop/synth/region.hpp"
#include "s2crop/synth/timesen2crop_writer.hpp"

namespace s2crop::cli {

int run_synth(int argc, char** argv, const parallel::MpiContext& mpi) {
  synth::SynthConfig cfg;
  po::options_description opts("synth options");
  OptionBinder b(opts);
  b.add_unset("out", cfg.out_dir,
              "output folder (required): stac/, safe/, labels/, parcels.gpkg, region.json")
      .add_text("tiles", cfg.tiles,
                "comma-separated MGRS tile names; each is placed at its real 100 km square in its UTM zone",
                synth::parse_tile_list, join_list)
      .add("size", cfg.size,
           "tile width = height in 10 m pixels; a multiple of 6 so 20 m and 60 m grids align (a real tile: 10980)")
      .add_text("start", cfg.start, "first acquisition date, YYYY-MM-DD", sentinel2::Date::parse,
                [](const sentinel2::Date& d) { return d.iso(); })
      .add("days", cfg.days, "length of the time series in days")
      .add("revisit", cfg.revisit, "days between acquisitions (S2A and S2B alternate)")
      .add("gap-fraction", cfg.gap_fraction, "fraction of acquisitions dropped at random")
      .add("cloud-cover", cfg.cloud_cover, "mean cloud fraction of an acquisition, 0..1");
  add_seed(b, cfg.seed, "random seed: same seed, same files, whatever the rank count");
  b.add_text("layout", cfg.layout,
             "product layout: stac (Earth Search v1 style COGs + item JSON), safe (SAFE folders) or both",
             synth::parse_layout, synth::layout_name)
      .flag("safe-jp2", cfg.safe_jp2, "write SAFE images as lossless JPEG2000 (.jp2, slow) instead of tiled GeoTIFF")
      .add("timesen2crop", cfg.timesen2crop_dir,
           "also write sampled parcel pixels in the TimeSen2Crop layout into this folder (<tile>/dates.csv, "
           "<tile>/<class>/<n>.csv) with pixels.tsv giving each file's tile, row and column")
      .add("timesen2crop-per-class", cfg.timesen2crop_per_class,
           "with --timesen2crop: pixels per class and tile (inside parcels, away from their borders)");
  opts.add_options()
      ("subset-at", po::value<std::string>(),
       "LON,LAT (WGS84 degrees): centre every tile's SIZE x SIZE window on this point instead of placing it at the "
       "tile's upper-left corner (snapped to 60 m, kept inside the tile's 109.8 km extent; an error if the point is "
       "outside a tile). Neighbouring tiles, also across a UTM zone border, then overlap like real ones");
  po::variables_map vm;
  if (!parse_options("synth", "--out DIR [options]",
                     "Generates a synthetic Sentinel-2 L2A region: crop parcels of the 16 TimeSen2Crop classes with\n"
                     "class-specific phenology, clouds with shadows and cirrus, a consistent SCL, the processing\n"
                     "baseline 04.00 offset from 2022-01-25, parcel polygons and label rasters. Acquisitions are\n"
                     "distributed over the MPI ranks; the output does not depend on the rank count.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;

  if (!vm.count("out")) throw ConfigError("s2crop synth: --out is required (see s2crop synth --help)");
  if (vm.count("subset-at")) cfg.subset_at = synth::parse_lon_lat(vm["subset-at"].as<std::string>(), "subset-at");
  synth::Region region = synth::Region::plan(cfg);  // validates (ConfigError on every rank alike)

  const auto total = static_cast<std::int64_t>(region.acquisitions.size());
  log::root("synth: " + std::to_string(region.tiles.size()) + " tile(s) of " + std::to_string(cfg.size) + " px, " +
            std::to_string(total) + " acquisitions, layout " + synth::layout_name(cfg.layout) + ", " +
            std::to_string(mpi.size()) + " rank(s) -> " + cfg.out_dir);
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<log::Progress> progress;
  if (mpi.is_root()) progress = std::make_unique<log::Progress>("synth", "acquisitions", total);
  // Rank 0 reports its own share scaled by the rank count (round-robin keeps the shares even).
  auto stats = synth::generate(region, mpi.rank(), mpi.size(), [&](std::int64_t done) {
    if (progress) progress->update(std::min(total, done * mpi.size()));
  });
  MPI_Barrier(mpi.world());
  if (progress) progress->finish();
  if (!cfg.timesen2crop_dir.empty()) {
    // Every rank's staged dates must exist before any pixel's series is assembled.
    std::int64_t csv = parallel::sum(mpi.world(), synth::assemble_timesen2crop(region, mpi.rank(), mpi.size()));
    MPI_Barrier(mpi.world());
    if (mpi.is_root()) synth::remove_timesen2crop_staging(cfg.timesen2crop_dir);
    log::root("synth: wrote " + std::to_string(csv) + " TimeSen2Crop pixel series to " + cfg.timesen2crop_dir);
  }
  long long files = parallel::sum(mpi.world(), stats.files);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char line[256];
  std::snprintf(line, sizeof line, "synth: wrote %lld raster files for %lld acquisitions in %.1f s", files,
                static_cast<long long>(total), secs);
  log::root(line);
  return 0;
}

}  // namespace s2crop::cli
