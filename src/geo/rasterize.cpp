#include "s2crop/geo/rasterize.hpp"

#include <gdal_alg.h>
#include <gdal_priv.h>
#include <ogr_spatialref.h>
#include <ogrsf_frmts.h>

#include <algorithm>
#include <cmath>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/geo/raster.hpp"

namespace s2crop::geo {

namespace {

std::string field_names(OGRFeatureDefn* defn) {
  std::string out;
  for (int i = 0; i < defn->GetFieldCount(); ++i) out += (i ? ", " : "") + std::string(defn->GetFieldDefn(i)->GetNameRef());
  return out.empty() ? "none" : out;
}

std::string class_name_list() {
  std::string out;
  for (auto& c : crop_classes()) out += (out.empty() ? "" : ", ") + c.name;
  return out;
}

struct OgrTransformDeleter {
  void operator()(OGRCoordinateTransformation* t) const { OGRCoordinateTransformation::DestroyCT(t); }
};
using TransformPtr = std::unique_ptr<OGRCoordinateTransformation, OgrTransformDeleter>;

}  // namespace

struct ParcelVector::LayerInfo {
  OGRLayer* layer = nullptr;
  std::string name;
  int class_field = -1;
  bool class_is_name = false;  // a string field: class names, matched with crop_class_id
  int parcel_field = -1;       // -1: the FID is the parcel id
  std::unique_ptr<OGRSpatialReference> srs;  // null: the layer has no CRS and is taken to be in the grid's
  // Transformations for the grid CRS last used (a rank works through one tile, hence one CRS, at a time).
  std::string grid_wkt;
  TransformPtr to_grid, to_layer;
};

ParcelVector::ParcelVector(const std::string& path, const LabelSourceOptions& options)
    : path_(path), options_(options) {
  init_gdal();
  CPLErrorReset();
  dataset_ = GDALDataset::Open(path.c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY);
  if (!dataset_) throw InputError(path, std::string("cannot open as a vector file: ") + CPLGetLastErrorMsg());
  std::vector<std::string> all;
  for (int i = 0; i < dataset_->GetLayerCount(); ++i) all.push_back(dataset_->GetLayer(i)->GetName());
  for (int i = 0; i < dataset_->GetLayerCount(); ++i) {
    OGRLayer* layer = dataset_->GetLayer(i);
    if (!options.layer.empty() && options.layer != layer->GetName()) continue;
    auto info = std::make_unique<LayerInfo>();
    info->layer = layer;
    info->name = layer->GetName();
    OGRFeatureDefn* defn = layer->GetLayerDefn();
    info->class_field = defn->GetFieldIndex(options.class_field.c_str());
    if (info->class_field < 0)
      throw InputError(path, "layer '" + info->name + "' has no class field '" + options.class_field +
                                 "' (fields: " + field_names(defn) + "); name the class field with --class-field");
    const OGRFieldType class_type = defn->GetFieldDefn(info->class_field)->GetType();
    if (class_type == OFTString)
      info->class_is_name = true;
    else if (class_type != OFTInteger && class_type != OFTInteger64 && class_type != OFTReal)
      throw InputError(path, "layer '" + info->name + "': class field '" + options.class_field +
                                 "' is neither a number (class id 0-15) nor text (class name)");
    info->parcel_field = defn->GetFieldIndex(options.parcel_field.c_str());
    if (info->parcel_field < 0 && options.parcel_field_required)
      throw InputError(path, "layer '" + info->name + "' has no parcel field '" + options.parcel_field +
                                 "' (fields: " + field_names(defn) + ")");
    if (info->parcel_field >= 0) {
      const OGRFieldType t = defn->GetFieldDefn(info->parcel_field)->GetType();
      if (t != OFTInteger && t != OFTInteger64)
        throw InputError(path, "layer '" + info->name + "': parcel field '" + options.parcel_field +
                                   "' is not an integer field");
    }
    if (const OGRSpatialReference* srs = layer->GetSpatialRef()) {
      info->srs.reset(srs->Clone());
      info->srs->SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    }
    layer_names_.push_back(info->name);
    layers_.push_back(std::move(info));
  }
  if (layers_.empty()) {
    std::string names;
    for (auto& n : all) names += (names.empty() ? "" : ", ") + n;
    throw InputError(path, options.layer.empty() ? "has no layer"
                                                 : "has no layer '" + options.layer + "' (layers: " + names + ")");
  }
}

ParcelVector::~ParcelVector() {
  layers_.clear();
  if (dataset_) GDALClose(dataset_);
}

std::int64_t ParcelVector::check_classes() {
  std::int64_t empty = 0;
  for (auto& info : layers_) {
    OGRLayer* layer = info->layer;
    const char* class_name = layer->GetLayerDefn()->GetFieldDefn(info->class_field)->GetNameRef();
    std::vector<std::string> ignored{"OGR_GEOMETRY", "OGR_STYLE"};
    OGRFeatureDefn* defn = layer->GetLayerDefn();
    for (int i = 0; i < defn->GetFieldCount(); ++i)
      if (i != info->class_field) ignored.push_back(defn->GetFieldDefn(i)->GetNameRef());
    std::vector<const char*> list;
    for (auto& s : ignored) list.push_back(s.c_str());
    list.push_back(nullptr);
    layer->SetIgnoredFields(list.data());
    layer->SetSpatialFilter(nullptr);
    layer->ResetReading();
    try {
      while (OGRFeatureUniquePtr f{layer->GetNextFeature()}) {
        if (!f->IsFieldSetAndNotNull(info->class_field)) {
          ++empty;
          continue;
        }
        const std::string where = "layer '" + info->name + "', feature " + std::to_string(f->GetFID()) + ": ";
        if (info->class_is_name) {
          const std::string value = f->GetFieldAsString(info->class_field);
          if (crop_class_id(value) < 0)
            throw InputError(path_, where + "class '" + value + "' (field " + class_name +
                                        ") is not one of the 16 crop classes (" + class_name_list() + ")");
        } else {
          const double value = f->GetFieldAsDouble(info->class_field);
          if (value != std::floor(value) || value < 0 || value >= kCropClassCount)
            throw InputError(path_, where + "class id " + f->GetFieldAsString(info->class_field) + " (field " +
                                        class_name + ") is not a crop class id 0-15");
        }
      }
    } catch (...) {
      layer->SetIgnoredFields(nullptr);
      throw;
    }
    layer->SetIgnoredFields(nullptr);
  }
  return empty;
}

ParcelLabels ParcelVector::read(const std::string&, const Grid& grid, const Window& window) {
  return rasterize(grid, window);
}

ParcelLabels ParcelVector::rasterize(const Grid& grid, const Window& w) {
  ParcelLabels out(w);
  const auto& g = grid.geotransform;
  if (g[2] != 0 || g[4] != 0) throw InputError(path_, "cannot rasterise onto a rotated grid (" + grid.describe() + ")");
  const double xa = g[0] + g[1] * w.x0, xb = g[0] + g[1] * (w.x0 + w.width);
  const double ya = g[3] + g[5] * w.y0, yb = g[3] + g[5] * (w.y0 + w.height);
  const double min_x = std::min(xa, xb), max_x = std::max(xa, xb), min_y = std::min(ya, yb), max_y = std::max(ya, yb);

  struct Burn {
    size_t layer;
    GIntBig fid;
    std::int64_t parcel;
    std::uint8_t label;
    std::unique_ptr<OGRGeometry> geometry;
  };
  std::vector<Burn> burns;
  for (size_t li = 0; li < layers_.size(); ++li) {
    LayerInfo& info = *layers_[li];
    if (info.srs && info.grid_wkt != grid.crs_wkt) {
      OGRSpatialReference grid_srs;
      if (grid_srs.importFromWkt(grid.crs_wkt.c_str()) != OGRERR_NONE)
        throw InputError(path_, "the tile grid has an unreadable CRS: " + grid.crs_wkt);
      grid_srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
      if (info.srs->IsSame(&grid_srs)) {
        info.to_grid.reset();
        info.to_layer.reset();
      } else {
        info.to_grid.reset(OGRCreateCoordinateTransformation(info.srs.get(), &grid_srs));
        info.to_layer.reset(OGRCreateCoordinateTransformation(&grid_srs, info.srs.get()));
        if (!info.to_grid || !info.to_layer)
          throw InputError(path_, "layer '" + info.name + "': no transformation from its CRS to " +
                                      crs_short_name(grid.crs_wkt));
      }
      info.grid_wkt = grid.crs_wkt;
    }
    // Only features near the window: the spatial index keeps a national parcel file cheap per block.
    double fx0 = min_x, fy0 = min_y, fx1 = max_x, fy1 = max_y;
    bool filtered = true;
    if (info.to_layer) filtered = info.to_layer->TransformBounds(min_x, min_y, max_x, max_y, &fx0, &fy0, &fx1, &fy1, 21);
    if (filtered)
      info.layer->SetSpatialFilterRect(fx0, fy0, fx1, fy1);
    else
      info.layer->SetSpatialFilter(nullptr);
    info.layer->ResetReading();
    while (OGRFeatureUniquePtr f{info.layer->GetNextFeature()}) {
      if (!f->IsFieldSetAndNotNull(info.class_field)) continue;
      int cls = -1;
      if (info.class_is_name) {
        cls = crop_class_id(f->GetFieldAsString(info.class_field));
      } else {
        const double v = f->GetFieldAsDouble(info.class_field);
        if (v == std::floor(v) && v >= 0 && v < kCropClassCount) cls = static_cast<int>(v);
      }
      if (cls < 0)
        throw InputError(path_, "layer '" + info.name + "', feature " + std::to_string(f->GetFID()) + ": class '" +
                                    f->GetFieldAsString(info.class_field) + "' is not one of the 16 crop classes");
      std::unique_ptr<OGRGeometry> geometry(f->StealGeometry());
      if (!geometry || geometry->IsEmpty()) continue;
      // A polygon that cannot be expressed in the grid's CRS lies far outside the tile.
      if (info.to_grid && geometry->transform(info.to_grid.get()) != OGRERR_NONE) continue;
      const std::int64_t parcel =
          info.parcel_field >= 0 && f->IsFieldSetAndNotNull(info.parcel_field)
              ? static_cast<std::int64_t>(f->GetFieldAsInteger64(info.parcel_field))
              : static_cast<std::int64_t>(f->GetFID());
      burns.push_back({li, f->GetFID(), parcel, static_cast<std::uint8_t>(cls), std::move(geometry)});
    }
  }
  if (burns.empty()) return out;
  std::sort(burns.begin(), burns.end(),
            [](const Burn& a, const Burn& b) { return a.layer != b.layer ? a.layer < b.layer : a.fid < b.fid; });

  GDALDriver* mem = GetGDALDriverManager()->GetDriverByName("MEM");
  if (!mem) throw Error("GDAL driver MEM is not available");
  GDALDatasetUniquePtr target(mem->Create("", w.width, w.height, 1, GDT_Int32, nullptr));
  if (!target) throw Error(std::string("cannot create an in-memory raster: ") + CPLGetLastErrorMsg());
  double gt[6] = {xa, g[1], 0, ya, 0, g[5]};
  target->SetGeoTransform(gt);
  target->SetProjection(grid.crs_wkt.c_str());
  GDALRasterBand* band = target->GetRasterBand(1);
  band->Fill(-1);
  std::vector<OGRGeometryH> geometries;
  std::vector<double> burn_values;
  for (size_t i = 0; i < burns.size(); ++i) {
    geometries.push_back(OGRGeometry::ToHandle(burns[i].geometry.get()));
    burn_values.push_back(static_cast<double>(i));
  }
  int band_list[1] = {1};
  CPLErrorReset();
  // No transformer: geometries are in the grid's CRS, the dataset's geotransform maps them to pixels. Default
  // rule: a pixel belongs to a polygon when its centre lies inside.
  if (GDALRasterizeGeometries(target.get(), 1, band_list, static_cast<int>(geometries.size()), geometries.data(),
                              nullptr, nullptr, burn_values.data(), nullptr, nullptr, nullptr) != CE_None)
    throw InputError(path_, std::string("rasterising failed: ") + CPLGetLastErrorMsg());
  std::vector<std::int32_t> index(static_cast<size_t>(w.pixels()));
  if (band->RasterIO(GF_Read, 0, 0, w.width, w.height, index.data(), w.width, w.height, GDT_Int32, 0, 0, nullptr) !=
      CE_None)
    throw Error(std::string("cannot read the rasterised parcels back: ") + CPLGetLastErrorMsg());
  for (size_t i = 0; i < index.size(); ++i) {
    if (index[i] < 0) continue;
    const Burn& b = burns[static_cast<size_t>(index[i])];
    out.parcel[i] = b.parcel;
    out.label[i] = b.label;
  }
  return out;
}

std::string ParcelVector::describe() const {
  std::string names;
  for (auto& info : layers_) {
    names += (names.empty() ? "" : ", ") + info->name;
    if (!info->srs) names += " (no CRS: taken to be in each tile's CRS)";
  }
  return "parcels " + path_ + " (layers " + names + "; class field '" + options_.class_field + "', parcel field '" +
         options_.parcel_field + "' or the FID), rasterised onto each tile grid (pixel centre inside the polygon)";
}

}  // namespace s2crop::geo
