// The raster writers in a build without GDAL (-DS2CROP_WITH_GDAL=OFF: the model stages alone, e.g. on a GPU node).
// The stages that export COGs call them only where --cog was given; they refuse with the build named, before any
// file is touched.
#include <string>

#include "s2crop/common/errors.hpp"
#include "s2crop/geo/class_raster.hpp"
#include "s2crop/geo/raster.hpp"

namespace s2crop::geo {

namespace {
[[noreturn]] void refuse(const std::string& path) {
  throw ConfigError(path + ": this s2crop was built without GDAL (model stages only) and writes no GeoTIFF; rebuild "
                    "with -DS2CROP_WITH_GDAL=ON for COG exports");
}
}  // namespace

void init_gdal() {}
double block_cache_mib() { return 0; }

void write_raster(const std::string& path, const Grid&, PixelType, const std::vector<RasterBandData>&,
                  const WriteOptions&) {
  refuse(path);
}

void write_class_cog(const std::string& path, const Grid&, const std::uint8_t*, const std::vector<std::string>&,
                     const std::vector<std::array<std::uint8_t, 3>>&, std::uint8_t) {
  refuse(path);
}

void write_class_cog(const std::string& path, const Grid&, const std::function<void(const Window&, std::uint8_t*)>&,
                     int, const std::vector<std::string>&, const std::vector<std::array<std::uint8_t, 3>>&, std::uint8_t,
                     const std::vector<std::pair<std::string, std::string>>&) {
  refuse(path);
}

}  // namespace s2crop::geo
