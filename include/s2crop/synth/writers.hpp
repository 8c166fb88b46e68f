#pragma once
// Writers of the synthetic region's files: STAC (Earth Search v1 style COGs + item JSON), SAFE (MTD_MSIL2A.xml +
// GRANULE/IMG_DATA images), parcel polygons (GeoPackage), label rasters and region.json.
#include <string>
#include <vector>

#include "s2crop/synth/fields.hpp"
#include "s2crop/synth/region.hpp"
#include "s2crop/synth/scene.hpp"

namespace s2crop::synth {

// stac/<tile>/<yyyy>/<m>/<ID>/{B02..B12,SCL}.tif and <ID>.json. Returns the item's path.
std::string write_stac_item(const std::string& out_dir, const TileSpec& tile, const Acquisition& acq, const Scene& scene);
std::string stac_item_dir(const std::string& out_dir, const TileSpec& tile, const Acquisition& acq);

// safe/<product>.SAFE/ with MTD_MSIL2A.xml and GRANULE/L2A_.../IMG_DATA/R10m, R20m images (.tif or .jp2).
// Returns the product folder.
std::string write_safe_product(const std::string& out_dir, const TileSpec& tile, const Acquisition& acq,
                               const Scene& scene, bool jp2);
std::string mtd_msil2a_xml(const TileSpec& tile, const Acquisition& acq, const Scene& scene, bool jp2);

// parcels.gpkg: one polygon layer per tile (named after it, in its UTM CRS): parcel_id, class_id, class_name.
void write_parcels(const std::string& path, const std::vector<TileSpec>& tiles, const std::vector<FieldLayout>& layouts);
// labels/<tile>_class.tif (uint8, 255 = no label) and labels/<tile>_parcel.tif (uint32, 0 = none), 10 m grid.
void write_labels(const std::string& out_dir, const TileSpec& tile, const FieldLayout& layout);
// region.json: tiles (EPSG, grid), acquisitions per tile, seed, options, class table.
void write_region_json(const std::string& path, const Region& region, const std::vector<FieldLayout>& layouts);

// Creates the folders of `path` (the path itself when `is_dir`). Throws OutputError.
void make_dirs(const std::string& path);

}  // namespace s2crop::synth
