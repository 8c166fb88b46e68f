#pragma once
// Parcels as polygons (GeoPackage, Shapefile, GeoJSON, ... anything OGR reads) rasterised onto a tile grid: each
// pixel whose centre lies inside a parcel gets that parcel's id and crop class. Polygons in another CRS than the
// grid (a national LPIS in EPSG:31287 or 4326, one layer per UTM zone) are reprojected onto the grid's CRS first.
// Where polygons overlap, the one later in (layer, FID) order wins, whatever window is rasterised.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "s2crop/geo/parcel_labels.hpp"

class GDALDataset;
class OGRLayer;

namespace s2crop::geo {

class ParcelVector : public LabelSource {
 public:
  // Opens the file and checks the fields of every used layer: throws InputError naming the file, the layer and the
  // fields found if the class field (or a required parcel field, or the chosen layer) is missing.
  ParcelVector(const std::string& path, const LabelSourceOptions& options);
  ~ParcelVector() override;
  ParcelVector(const ParcelVector&) = delete;
  ParcelVector& operator=(const ParcelVector&) = delete;

  // Parcels of `window` of `grid`; the tile name plays no part (polygons are found by location).
  ParcelLabels rasterize(const Grid& grid, const Window& window);
  ParcelLabels read(const std::string& tile, const Grid& grid, const Window& window) override;
  std::string describe() const override;

  // Reads the class of every feature (no geometry) and throws InputError naming the file, layer, feature and value
  // for the first one that is not a crop class. Worth doing once before a parallel run, so the failure is clean.
  // Returns the number of features with an empty class value (they are left unlabelled).
  std::int64_t check_classes();

  const std::vector<std::string>& layer_names() const { return layer_names_; }

 private:
  struct LayerInfo;
  std::string path_;
  LabelSourceOptions options_;
  GDALDataset* dataset_ = nullptr;
  std::vector<std::string> layer_names_;
  std::vector<std::unique_ptr<LayerInfo>> layers_;
};

}  // namespace s2crop::geo
