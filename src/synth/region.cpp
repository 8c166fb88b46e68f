#include "s2crop/synth/region.hpp"

#include <ogr_spatialref.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <memory>
#include <regex>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/synth/random.hpp"

namespace s2crop::synth {

Layout parse_layout(const std::string& text) {
  if (text == "stac") return Layout::Stac;
  if (text == "safe") return Layout::Safe;
  if (text == "both") return Layout::Both;
  throw ConfigError("--layout must be stac, safe or both, not '" + text + "'");
}

std::string layout_name(Layout layout) {
  switch (layout) {
    case Layout::Stac: return "stac";
    case Layout::Safe: return "safe";
    case Layout::Both: return "both";
  }
  return "?";
}

void SynthConfig::validate() const {
  if (out_dir.empty()) throw ConfigError("--out is required");
  if (tiles.empty()) throw ConfigError("--tiles is empty");
  if (size < 6 || size % 6 != 0)
    throw ConfigError("--size " + std::to_string(size) + " must be a positive multiple of 6 (so 20 m and 60 m grids align)");
  if (size > 10980) throw ConfigError("--size " + std::to_string(size) + " is larger than an MGRS tile (10980 px)");
  if (days < 1) throw ConfigError("--days must be at least 1");
  if (revisit < 1) throw ConfigError("--revisit must be at least 1 day");
  if (!(gap_fraction >= 0 && gap_fraction < 1)) throw ConfigError("--gap-fraction must be in [0, 1)");
  if (!(cloud_cover >= 0 && cloud_cover <= 1)) throw ConfigError("--cloud-cover must be in [0, 1]");
  if (!start.valid()) throw ConfigError("--start is not a valid date");
  if (!timesen2crop_dir.empty() && timesen2crop_per_class < 1)
    throw ConfigError("--timesen2crop-per-class must be at least 1");
  for (size_t i = 0; i < tiles.size(); ++i)
    for (size_t j = i + 1; j < tiles.size(); ++j)
      if (tiles[i] == tiles[j]) throw ConfigError("tile " + tiles[i] + " is listed twice in --tiles");
}

namespace {
const std::regex& tile_regex() {
  static const std::regex re(R"(^(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z])([A-HJ-NP-V])$)");
  return re;
}
}  // namespace

std::vector<std::string> parse_tile_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::string t;
    for (char c : item)
      if (!std::isspace(static_cast<unsigned char>(c))) t += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (t.empty()) continue;
    std::smatch m;
    if (!std::regex_match(t, m, tile_regex()) || std::stoi(m[1]) < 1 || std::stoi(m[1]) > 60)
      throw ConfigError("'" + item + "' is not an MGRS tile name like 33UVP (zone 1-60, latitude band, 2-letter square)");
    if (t.size() == 4) t = "0" + t;
    out.push_back(t);
  }
  if (out.empty()) throw ConfigError("--tiles is empty");
  return out;
}

std::array<double, 2> parse_lon_lat(const std::string& text, const std::string& option) {
  double lon = 0, lat = 0;
  char extra = 0;
  if (std::sscanf(text.c_str(), " %lf , %lf %c", &lon, &lat, &extra) != 2)
    throw ConfigError("--" + option + " '" + text + "' is not LON,LAT (degrees, e.g. 12.72,47.33)");
  if (!(lon >= -180 && lon <= 180) || !(lat >= -80 && lat <= 84))
    throw ConfigError("--" + option + " " + text + " is outside the UTM range (lon -180..180, lat -80..84)");
  return {lon, lat};
}

TileSpec make_tile(const std::string& name, int index, int size, std::uint64_t run_seed,
                   const std::optional<std::array<double, 2>>& subset_at) {
  std::smatch m;
  if (!std::regex_match(name, m, tile_regex())) throw ConfigError("'" + name + "' is not an MGRS tile name");
  TileSpec t;
  t.index = index;
  t.name = name;
  t.zone = std::stoi(m[1]);
  t.latitude_band = m[2].str()[0];
  t.grid_square = m[3].str() + m[4].str();
  t.epsg = (t.latitude_band >= 'N' ? 32600 : 32700) + t.zone;
  // The real MGRS 100 km square: column letters cycle over three sets by zone, rows over 20 letters (offset 5 in
  // even zones); the 2000 km row ambiguity is resolved with the latitude band. Sentinel-2 tiles start 40 m west
  // of the square's west edge at its north edge (e.g. 33UVP: 399960, 5400000).
  static const std::string col_sets[3] = {"STUVWXYZ", "ABCDEFGH", "JKLMNPQR"};
  static const std::string rows = "ABCDEFGHJKLMNPQRSTUV";
  static const std::string bands = "CDEFGHJKLMNPQRSTUVWX";
  const std::string& cols = col_sets[t.zone % 3];
  auto ci = cols.find(t.grid_square[0]);
  if (ci == std::string::npos)
    throw ConfigError("tile " + name + ": column letter " + t.grid_square.substr(0, 1) + " does not occur in UTM zone " +
                      std::to_string(t.zone) + " (letters " + cols + ")");
  double easting = (static_cast<double>(ci) + 1) * 100000.0;
  int ri = static_cast<int>(rows.find(t.grid_square[1]));
  if (t.zone % 2 == 0) ri = (ri - 5 + 20) % 20;
  double band_lat = -80.0 + 8.0 * static_cast<double>(bands.find(t.latitude_band)) + 4.0;
  double band_northing = band_lat * 110946.0 + (band_lat < 0 ? 10000000.0 : 0.0);
  double best = 0, best_err = 1e30;
  for (int k = 0; k < 6; ++k) {
    double n = ri * 100000.0 + k * 2000000.0;
    double err = std::abs(n + 50000.0 - band_northing);
    if (err < best_err) best_err = err, best = n;
  }
  // Snapped to 60 m so the 10, 20 and 60 m grids of every tile share their origin.
  double ulx = std::round((easting - 40.0) / 60.0) * 60.0, uly = std::round((best + 100000.0) / 60.0) * 60.0;
  if (subset_at) {
    // The window centred on the point, inside the tile's real extent (109.8 km from the corner above).
    OGRSpatialReference wgs, utm;
    wgs.importFromEPSG(4326);
    utm.importFromEPSG(t.epsg);
    wgs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    utm.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&wgs, &utm));
    double x = (*subset_at)[0], y = (*subset_at)[1];
    if (!ct || !ct->Transform(1, &x, &y)) throw Error("cannot transform a lon/lat point to EPSG:" + std::to_string(t.epsg));
    constexpr double kExtent = 109800.0;
    const double window = 10.0 * size;
    if (x < ulx || x > ulx + kExtent || y > uly || y < uly - kExtent) {
      char msg[320];
      std::snprintf(msg, sizeof msg,
                    "--subset-at %.6f,%.6f lies outside tile %s (EPSG:%d x %.0f..%.0f, y %.0f..%.0f; the point is at "
                    "x %.0f, y %.0f)",
                    (*subset_at)[0], (*subset_at)[1], name.c_str(), t.epsg, ulx, ulx + kExtent, uly - kExtent, uly, x, y);
      throw ConfigError(msg);
    }
    // Offsets from the corner in whole 60 m steps (window and extent are multiples of 60 m too).
    const double dx = std::round((x - window / 2 - ulx) / 60.0) * 60.0;
    const double dy = std::round((uly - (y + window / 2)) / 60.0) * 60.0;
    ulx += std::clamp(dx, 0.0, kExtent - window);
    uly -= std::clamp(dy, 0.0, kExtent - window);
  }
  t.grid10.crs_wkt = geo::wkt_from_epsg(t.epsg);
  t.grid10.geotransform = {ulx, 10.0, 0.0, uly, 0.0, -10.0};
  t.grid10.width = t.grid10.height = size;
  t.grid20 = t.grid10;
  t.grid20.geotransform[1] = 20.0;
  t.grid20.geotransform[5] = -20.0;
  t.grid20.width = t.grid20.height = size / 2;
  t.seed = hash_combine(run_seed, hash_string(name));
  return t;
}

std::vector<std::array<double, 2>> TileSpec::footprint_lonlat() const {
  OGRSpatialReference utm, wgs;
  utm.importFromEPSG(epsg);
  wgs.importFromEPSG(4326);
  utm.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  wgs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&utm, &wgs));
  if (!ct) throw Error("cannot create a transformation from EPSG:" + std::to_string(epsg) + " to EPSG:4326");
  const auto& g = grid10.geotransform;
  double x0 = g[0], y0 = g[3], x1 = g[0] + g[1] * grid10.width, y1 = g[3] + g[5] * grid10.height;
  double xs[5] = {x0, x1, x1, x0, x0}, ys[5] = {y0, y0, y1, y1, y0};
  if (!ct->Transform(5, xs, ys)) throw Error("cannot transform the footprint of tile " + name + " to lon/lat");
  std::vector<std::array<double, 2>> out;
  for (int i = 0; i < 5; ++i) out.push_back({std::round(xs[i] * 1e7) / 1e7, std::round(ys[i] * 1e7) / 1e7});
  return out;
}

std::string Acquisition::processing_baseline() const { return boa_offset() != 0 ? "05.00" : "03.01"; }

std::string Acquisition::stac_id(const TileSpec& tile) const {
  return std::string("S2") + platform + "_" + tile.name + "_" + date.compact() + "_0_L2A";
}

std::string Acquisition::safe_name(const TileSpec& tile) const {
  std::string baseline = boa_offset() != 0 ? "N0500" : "N0301";
  return std::string("S2") + platform + "_MSIL2A_" + date.compact() + "T102031_" + baseline + "_R065_T" + tile.name +
         "_" + date.compact() + "T120000.SAFE";
}

std::string Acquisition::datetime() const { return date.iso() + "T10:20:31Z"; }

std::vector<Acquisition> plan_acquisitions(const SynthConfig& config, const TileSpec& tile) {
  std::vector<Acquisition> out;
  long d0 = config.start.days_since_epoch();
  // Mean cloud fraction m: cover = u^k with k = 1/m - 1 has mean m and is U-ish shaped like real cloud statistics
  // (many clear dates, some nearly overcast).
  double m = std::min(std::max(config.cloud_cover, 1e-3), 0.999);
  double k = 1.0 / m - 1.0;
  for (int i = 0; i * config.revisit < config.days; ++i) {
    Acquisition a;
    a.tile = tile.index;
    a.date = sentinel2::Date::from_days(d0 + static_cast<long>(i) * config.revisit);
    a.platform = (i % 2 == 0) ? 'A' : 'B';
    a.seed = hash_combine(tile.seed, static_cast<std::uint64_t>(a.date.days_since_epoch()));
    if (hash_uniform(a.seed ^ 0x6761707321ULL) < config.gap_fraction) continue;  // dropped acquisition
    double u = hash_uniform(a.seed ^ 0x636c6f7564ULL);
    double cover = std::pow(u, k);
    if (cover > 0.88) cover = 0.985;  // nearly fully cloudy dates
    if (config.cloud_cover <= 0) cover = 0;
    a.cloud_target = cover;
    a.cirrus = config.cloud_cover > 0 && hash_uniform(a.seed ^ 0x6369727275ULL) < 0.3;
    a.nodata_wedge = hash_uniform(a.seed ^ 0x7765646765ULL) < 0.08;
    out.push_back(a);
  }
  return out;
}

Region Region::plan(const SynthConfig& config) {
  config.validate();
  Region r;
  r.config = config;
  for (size_t i = 0; i < config.tiles.size(); ++i) {
    r.tiles.push_back(make_tile(config.tiles[i], static_cast<int>(i), config.size, config.seed, config.subset_at));
    auto acq = plan_acquisitions(config, r.tiles.back());
    r.acquisitions.insert(r.acquisitions.end(), acq.begin(), acq.end());
  }
  return r;
}

}  // namespace s2crop::synth
