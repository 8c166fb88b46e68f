#include "s2crop/geo/class_raster.hpp"

#include "s2crop/common/errors.hpp"
#include "s2crop/geo/raster.hpp"

namespace s2crop::geo {

namespace {

// Colour table, category names and COG options shared by both writers.
void describe_classes(const std::string& path, RasterBandData& band, WriteOptions& o,
                      const std::vector<std::string>& names,
                      const std::vector<std::array<std::uint8_t, 3>>& colours, std::uint8_t nodata) {
  if (names.size() != colours.size())
    throw OutputError(path, "class map has " + std::to_string(names.size()) + " class names but " +
                                std::to_string(colours.size()) + " colours");
  if (names.size() > nodata)
    throw OutputError(path, "no-data value " + std::to_string(nodata) + " collides with class " +
                                std::to_string(nodata) + " of " + std::to_string(names.size()));
  band.description = "class";
  // Every value of the palette is defined: class colours, then transparent for the unused codes and no data.
  band.colour_table.assign(static_cast<size_t>(nodata) + 1, {0, 0, 0, 0});
  for (size_t k = 0; k < colours.size(); ++k) band.colour_table[k] = {colours[k][0], colours[k][1], colours[k][2], 255};
  band.category_names = names;
  band.category_names.resize(static_cast<size_t>(nodata) + 1);
  band.category_names[nodata] = "no data";
  o.driver = "COG";
  o.has_nodata = true;
  o.nodata = nodata;
  o.overview_resampling = "MODE";
  o.predictor = false;
}

}  // namespace

void write_class_cog(const std::string& path, const Grid& grid, const std::uint8_t* classes,
                     const std::vector<std::string>& names, const std::vector<std::array<std::uint8_t, 3>>& colours,
                     std::uint8_t nodata) {
  RasterBandData band{classes, "class", {}, {}};
  WriteOptions o;
  describe_classes(path, band, o, names, colours, nodata);
  write_raster(path, grid, PixelType::UInt8, {band}, o);
}

void write_class_cog(const std::string& path, const Grid& grid,
                     const std::function<void(const Window& window, std::uint8_t* out)>& read_block, int block_size,
                     const std::vector<std::string>& names, const std::vector<std::array<std::uint8_t, 3>>& colours,
                     std::uint8_t nodata, const std::vector<std::pair<std::string, std::string>>& metadata) {
  RasterBandData band;
  band.read_block = [&read_block](const Window& w, void* out) { read_block(w, static_cast<std::uint8_t*>(out)); };
  WriteOptions o;
  describe_classes(path, band, o, names, colours, nodata);
  o.read_block_size = block_size;
  o.metadata = metadata;
  write_raster(path, grid, PixelType::UInt8, {band}, o);
}

}  // namespace s2crop::geo
