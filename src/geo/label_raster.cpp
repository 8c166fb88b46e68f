#include "s2crop/geo/label_raster.hpp"

#include <filesystem>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/errors.hpp"

namespace fs = std::filesystem;

namespace s2crop::geo {

LabelRasters::LabelRasters(const std::string& path) : path_(path) {
  init_gdal();
  std::error_code ec;
  folder_ = fs::is_directory(path, ec);
  if (!folder_) {
    if (!fs::exists(path, ec)) throw InputError(path, "label raster not found");
    open_rasters_.labels = std::make_unique<RasterReader>(path);  // fails early, naming the file
  }
}

std::string LabelRasters::class_path(const std::string& tile) const {
  if (!folder_) return path_;
  std::string p = (fs::path(path_) / (tile + "_class.tif")).string();
  std::error_code ec;
  return fs::exists(p, ec) ? p : std::string();
}

std::string LabelRasters::parcel_path(const std::string& tile) const {
  if (!folder_) return {};
  std::string p = (fs::path(path_) / (tile + "_parcel.tif")).string();
  std::error_code ec;
  return fs::exists(p, ec) ? p : std::string();
}

LabelRasters::TileRasters& LabelRasters::open(const std::string& tile) {
  if (!folder_ || tile == open_tile_) return open_rasters_;
  open_rasters_ = {};
  if (auto p = class_path(tile); !p.empty()) open_rasters_.labels = std::make_unique<RasterReader>(p);
  if (auto p = parcel_path(tile); !p.empty() && open_rasters_.labels)
    open_rasters_.parcels = std::make_unique<RasterReader>(p);
  open_tile_ = tile;
  return open_rasters_;
}

ParcelLabels LabelRasters::read(const std::string& tile, const Grid& grid, const Window& window) {
  ParcelLabels out(window);
  TileRasters& r = open(tile);
  if (!r.labels) return out;
  if (r.labels->grid().same_as(grid))
    r.labels->read(1, window, out.label.data());
  else
    r.labels->read_warped(1, grid, window, out.label.data(), kNoCropLabel);
  for (auto& v : out.label)
    if (v >= kCropClassCount && v != kNoCropLabel)
      throw InputError(r.labels->path(), "pixel value " + std::to_string(v) +
                                             " is not a crop class id (0-15) nor 255 (no label)");
  if (r.parcels) {
    if (r.parcels->grid().same_as(grid)) {
      r.parcels->read(1, window, out.parcel.data());
      double nodata = 0;
      if (r.parcels->nodata(1, nodata))
        for (auto& v : out.parcel)
          if (static_cast<double>(v) == nodata) v = kNoParcel;
    } else {
      r.parcels->read_warped(1, grid, window, out.parcel.data(), kNoParcel);
    }
  }
  return out;
}

std::string LabelRasters::describe() const {
  if (folder_)
    return "label rasters <tile>_class.tif (+ <tile>_parcel.tif) in " + path_ +
           ", read as is where on the tile grid, else resampled nearest-neighbour onto it";
  return "class raster " + path_ + " (" + open_rasters_.labels->grid().describe() +
         "), resampled nearest-neighbour onto each tile grid where it differs; parcels unknown";
}

}  // namespace s2crop::geo
