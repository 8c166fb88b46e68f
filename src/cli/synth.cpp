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
  po::options_description opts("synth options");
  opts.add_options()
      ("out", po::value<std::string>(), "output folder (required): stac/, safe/, labels/, parcels.gpkg, region.json")
      ("tiles", po::value<std::string>()->default_value("32TQT,33TUM,33UVP"),
       "comma-separated MGRS tile names; each is placed at its real 100 km square in its UTM zone")
      ("size", po::value<int>()->default_value(1098),
       "tile width = height in 10 m pixels; a multiple of 6 so 20 m and 60 m grids align (a real tile: 10980)")
      ("start", po::value<std::string>()->default_value("2021-09-01"), "first acquisition date, YYYY-MM-DD")
      ("days", po::value<int>()->default_value(365), "length of the time series in days")
      ("revisit", po::value<int>()->default_value(5), "days between acquisitions (S2A and S2B alternate)")
      ("gap-fraction", po::value<double>()->default_value(0.1, "0.1"), "fraction of acquisitions dropped at random")
      ("cloud-cover", po::value<double>()->default_value(0.3, "0.3"), "mean cloud fraction of an acquisition, 0..1")
      ("seed", po::value<long>()->default_value(42), "random seed: same seed, same files, whatever the rank count")
      ("layout", po::value<std::string>()->default_value("stac"),
       "product layout: stac (Earth Search v1 style COGs + item JSON), safe (SAFE folders) or both")
      ("safe-jp2", po::bool_switch(), "write SAFE images as lossless JPEG2000 (.jp2, slow) instead of tiled GeoTIFF")
      ("timesen2crop", po::value<std::string>()->default_value(""),
       "also write sampled parcel pixels in the TimeSen2Crop layout into this folder (<tile>/dates.csv, "
       "<tile>/<class>/<n>.csv) with pixels.tsv giving each file's tile, row and column")
      ("timesen2crop-per-class", po::value<int>()->default_value(40),
       "with --timesen2crop: pixels per class and tile (inside parcels, away from their borders)")
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

  synth::SynthConfig cfg;
  if (!vm.count("out")) throw ConfigError("s2crop synth: --out is required (see s2crop synth --help)");
  cfg.out_dir = vm["out"].as<std::string>();
  cfg.tiles = synth::parse_tile_list(vm["tiles"].as<std::string>());
  cfg.size = vm["size"].as<int>();
  cfg.start = sentinel2::Date::parse(vm["start"].as<std::string>());
  cfg.days = vm["days"].as<int>();
  cfg.revisit = vm["revisit"].as<int>();
  cfg.gap_fraction = vm["gap-fraction"].as<double>();
  cfg.cloud_cover = vm["cloud-cover"].as<double>();
  long seed = vm["seed"].as<long>();
  if (seed < 0) throw ConfigError("--seed must not be negative");
  cfg.seed = static_cast<std::uint64_t>(seed);
  cfg.layout = synth::parse_layout(vm["layout"].as<std::string>());
  cfg.safe_jp2 = vm["safe-jp2"].as<bool>();
  cfg.timesen2crop_dir = vm["timesen2crop"].as<std::string>();
  cfg.timesen2crop_per_class = vm["timesen2crop-per-class"].as<int>();
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
