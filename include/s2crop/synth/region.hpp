#pragma once
// The synthetic region: its configuration, the MGRS-like tiles (grid placed in their UTM zone) and the acquisition
// plan (revisit, S2A/S2B alternation, dropped acquisitions, cloud cover per date).
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "s2crop/geo/grid.hpp"
#include "s2crop/sentinel2/bands.hpp"

namespace s2crop::synth {

enum class Layout { Stac, Safe, Both };
Layout parse_layout(const std::string& text);  // "stac" | "safe" | "both"; throws ConfigError
std::string layout_name(Layout layout);

struct SynthConfig {
  std::string out_dir;
  std::vector<std::string> tiles = {"32TQT", "33TUM", "33UVP"};
  int size = 1098;  // 10 m pixels per side; multiple of 6
  sentinel2::Date start{2021, 9, 1};
  int days = 365;
  int revisit = 5;
  double gap_fraction = 0.1;
  double cloud_cover = 0.3;
  std::uint64_t seed = 42;
  Layout layout = Layout::Stac;
  bool safe_jp2 = false;
  // Also write the sampled parcel pixels in the TimeSen2Crop layout here (empty: not at all).
  std::string timesen2crop_dir;
  int timesen2crop_per_class = 40;  // pixels per class and tile
  // Centre of every tile's window (lon, lat in WGS84); unset: the window sits at the tile's upper-left corner.
  std::optional<std::array<double, 2>> subset_at;
  void validate() const;  // throws ConfigError naming the bad value
};

// "32TQT,33TUM" -> {"32TQT", "33TUM"} (spaces ignored, upper-cased); throws ConfigError on a malformed name.
std::vector<std::string> parse_tile_list(const std::string& text);

struct TileSpec {
  int index = 0;           // position in the tile list
  std::string name;        // "33UVP"
  int zone = 0;            // 33
  char latitude_band = 0;  // 'U'
  std::string grid_square; // "VP"
  int epsg = 0;            // 32633
  geo::Grid grid10;        // 10 m grid of the tile
  geo::Grid grid20;        // 20 m grid (same origin)
  std::uint64_t seed = 0;  // stream of this tile (from the run seed and the name)
  // Footprint corners in lon/lat (EPSG:4326, lon first), closed ring of 5 points.
  std::vector<std::array<double, 2>> footprint_lonlat() const;
};

// "13.5,47.2" -> {13.5, 47.2} (lon, lat); throws ConfigError naming the option if malformed or out of range.
std::array<double, 2> parse_lon_lat(const std::string& text, const std::string& option);

// Places tile `name` in its UTM zone at the position of the real MGRS 100 km square (upper-left corner, origin on
// a 60 m multiple); `size` pixels of 10 m per side. With `subset_at` (lon, lat) the window is centred on that point
// instead (origin snapped to 60 m so the 10/20/60 m grids still align, clamped inside the tile's real 109.8 km
// extent); ConfigError if the point lies outside that extent.
TileSpec make_tile(const std::string& name, int index, int size, std::uint64_t run_seed,
                   const std::optional<std::array<double, 2>>& subset_at = std::nullopt);

struct Acquisition {
  int tile = 0;             // index into the tile list
  sentinel2::Date date;
  char platform = 'A';      // 'A' or 'B'
  double cloud_target = 0;  // fraction of the tile under (detected or undetected) cloud
  bool cirrus = false;
  bool nodata_wedge = false;
  std::uint64_t seed = 0;   // stream of this acquisition: from (run seed, tile, date)

  int boa_offset() const { return sentinel2::offset_by_date(date); }  // -1000 from 2022-01-25
  std::string processing_baseline() const;  // "05.00" from 2022-01-25, else "03.01"
  std::string stac_id(const TileSpec& tile) const;    // "S2A_33UVP_20210905_0_L2A"
  std::string safe_name(const TileSpec& tile) const;  // "S2A_MSIL2A_20210905T102031_N0301_R065_T33UVP_20210905T120000.SAFE"
  std::string datetime() const;                        // "2021-09-05T10:20:31Z"
};

// Acquisitions of one tile, in date order.
std::vector<Acquisition> plan_acquisitions(const SynthConfig& config, const TileSpec& tile);

// The whole region: tiles and the global list of (tile, acquisition) work units, tile-major in date order.
struct Region {
  SynthConfig config;
  std::vector<TileSpec> tiles;
  std::vector<Acquisition> acquisitions;
  static Region plan(const SynthConfig& config);
};

}  // namespace s2crop::synth
