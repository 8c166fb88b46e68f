#include "s2crop/geo/grid.hpp"

#include "s2crop/common/errors.hpp"

#ifndef S2CROP_WITHOUT_GDAL
#include <ogr_spatialref.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace s2crop::geo {

#ifdef S2CROP_WITHOUT_GDAL
// Without GDAL (model stages only): CRSs compare as text, which is what the stages store (the composite's own WKT
// copied through); EPSG codes cannot be resolved.
bool same_crs(const std::string& wkt_a, const std::string& wkt_b) { return wkt_a == wkt_b; }

std::string crs_short_name(const std::string& wkt) {
  if (wkt.empty()) return "unknown CRS";
  const size_t at = wkt.rfind("AUTHORITY[\"EPSG\",\"");
  if (at == std::string::npos) return "CRS";
  const size_t end = wkt.find('"', at + 18);
  return "EPSG:" + wkt.substr(at + 18, end == std::string::npos ? std::string::npos : end - at - 18);
}

std::string wkt_from_epsg(int epsg) {
  throw ConfigError("EPSG:" + std::to_string(epsg) + ": this s2crop was built without GDAL and cannot resolve EPSG codes");
}
#else
bool same_crs(const std::string& wkt_a, const std::string& wkt_b) {
  if (wkt_a == wkt_b) return true;
  OGRSpatialReference a, b;
  if (a.importFromWkt(wkt_a.c_str()) != OGRERR_NONE || b.importFromWkt(wkt_b.c_str()) != OGRERR_NONE) return false;
  return a.IsSame(&b) != 0;
}

std::string crs_short_name(const std::string& wkt) {
  OGRSpatialReference srs;
  if (wkt.empty() || srs.importFromWkt(wkt.c_str()) != OGRERR_NONE) return "unknown CRS";
  srs.AutoIdentifyEPSG();
  const char* name = srs.GetAuthorityName(nullptr);
  const char* code = srs.GetAuthorityCode(nullptr);
  if (name && code) return std::string(name) + ":" + code;
  const char* n = srs.GetName();
  return n ? n : "unnamed CRS";
}

std::string wkt_from_epsg(int epsg) {
  OGRSpatialReference srs;
  srs.importFromEPSG(epsg);
  char* wkt = nullptr;
  srs.exportToWkt(&wkt);
  std::string out = wkt ? wkt : "";
  CPLFree(wkt);
  return out;
}
#endif

bool Grid::same_as(const Grid& o) const {
  if (width != o.width || height != o.height) return false;
  double tol = 1e-6 * std::abs(geotransform[1]);
  for (int i = 0; i < 6; ++i)
    if (std::abs(geotransform[i] - o.geotransform[i]) > std::max(tol, 1e-9)) return false;
  return same_crs(crs_wkt, o.crs_wkt);
}

bool Grid::is_aligned_coarser(const Grid& coarse, int& factor) const {
  double ratio = coarse.geotransform[1] / geotransform[1];
  int f = static_cast<int>(std::lround(ratio));
  if (f < 1 || std::abs(ratio - f) > 1e-6) return false;
  if (std::abs(coarse.geotransform[5] / geotransform[5] - f) > 1e-6) return false;
  double tol = 1e-3 * std::abs(geotransform[1]);
  if (std::abs(coarse.geotransform[0] - geotransform[0]) > tol) return false;
  if (std::abs(coarse.geotransform[3] - geotransform[3]) > tol) return false;
  if (coarse.geotransform[2] != 0 || coarse.geotransform[4] != 0) return false;
  // The coarse raster must cover the fine one.
  if (static_cast<long long>(coarse.width) * f < width || static_cast<long long>(coarse.height) * f < height)
    return false;
  if (!same_crs(crs_wkt, coarse.crs_wkt)) return false;
  factor = f;
  return true;
}

std::string Grid::describe() const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%dx%d px, %g m, origin (%.2f, %.2f), %s", width, height, geotransform[1],
                geotransform[0], geotransform[3], crs_short_name(crs_wkt).c_str());
  return buf;
}

std::vector<Window> cut_blocks(int width, int height, int block_size) {
  std::vector<Window> blocks;
  for (int y = 0; y < height; y += block_size)
    for (int x = 0; x < width; x += block_size)
      blocks.push_back({x, y, std::min(block_size, width - x), std::min(block_size, height - y)});
  return blocks;
}

}  // namespace s2crop::geo
