#pragma once
// Crop labels given as rasters: a uint8 class raster (class id 0..15, 255 = no label) and optionally a parcel-id
// raster, either one pair per tile in a folder (<tile>_class.tif, <tile>_parcel.tif: what `s2crop synth` writes
// under labels/) or one class raster for all tiles (e.g. a national raster in EPSG:3035).
// A raster on exactly the tile's grid is read as is; any other raster is resampled onto the tile grid by nearest
// neighbour in memory (GDAL warp, exact transform per pixel), so labels never get interpolated into other classes.
#include <map>
#include <memory>
#include <string>

#include "s2crop/geo/parcel_labels.hpp"
#include "s2crop/geo/raster.hpp"

namespace s2crop::geo {

class LabelRasters : public LabelSource {
 public:
  // `path`: a folder or a single class raster. Throws InputError if the single raster cannot be opened.
  explicit LabelRasters(const std::string& path);

  ParcelLabels read(const std::string& tile, const Grid& grid, const Window& window) override;
  std::string describe() const override;

  // The class raster used for `tile`, empty where the folder has none for it.
  std::string class_path(const std::string& tile) const;
  // The parcel raster used for `tile`, empty where there is none (parcels then unknown: -1).
  std::string parcel_path(const std::string& tile) const;

 private:
  struct TileRasters {
    std::unique_ptr<RasterReader> labels, parcels;
  };
  TileRasters& open(const std::string& tile);

  std::string path_;
  bool folder_ = false;
  std::string open_tile_;  // the tile whose rasters are open: a rank works through one tile at a time
  TileRasters open_rasters_;
};

}  // namespace s2crop::geo
