#include "s2crop/geo/parcel_labels.hpp"

#include <gdal_priv.h>

#include <algorithm>
#include <filesystem>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/geo/label_raster.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/geo/rasterize.hpp"

namespace s2crop::geo {

ParcelLabels::ParcelLabels(const Window& w)
    : window(w),
      parcel(static_cast<size_t>(w.pixels()), kNoParcel),
      label(static_cast<size_t>(w.pixels()), kNoCropLabel) {}

std::vector<std::uint8_t> border_eligible(const ParcelLabels& labels, int border) {
  const int w = labels.window.width, h = labels.window.height;
  std::vector<std::uint8_t> eligible(static_cast<size_t>(labels.window.pixels()), 0);
  auto at = [w](int y, int x) { return static_cast<size_t>(y) * static_cast<size_t>(w) + static_cast<size_t>(x); };
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const size_t i = at(y, x);
      const std::uint8_t cls = labels.label[i];
      if (cls == kNoCropLabel) continue;
      const std::int64_t parcel = labels.parcel[i];
      bool same = true;
      for (int ny = std::max(0, y - border); same && ny <= std::min(h - 1, y + border); ++ny)
        for (int nx = std::max(0, x - border); nx <= std::min(w - 1, x + border); ++nx) {
          const size_t j = at(ny, nx);
          if (labels.label[j] != cls || labels.parcel[j] != parcel) {
            same = false;
            break;
          }
        }
      eligible[i] = same ? 1 : 0;
    }
  return eligible;
}

Window grow_window(const Window& inner, int margin, int width, int height) {
  const int x0 = std::max(0, inner.x0 - margin), y0 = std::max(0, inner.y0 - margin);
  const int x1 = std::min(width, inner.x0 + inner.width + margin);
  const int y1 = std::min(height, inner.y0 + inner.height + margin);
  return {x0, y0, x1 - x0, y1 - y0};
}

std::vector<std::uint8_t> crop_mask(const std::vector<std::uint8_t>& mask, const Window& outer, const Window& inner) {
  std::vector<std::uint8_t> out(static_cast<size_t>(inner.pixels()));
  for (int y = 0; y < inner.height; ++y) {
    const size_t from = static_cast<size_t>(inner.y0 - outer.y0 + y) * static_cast<size_t>(outer.width) +
                        static_cast<size_t>(inner.x0 - outer.x0);
    std::copy_n(mask.begin() + static_cast<std::ptrdiff_t>(from), inner.width,
                out.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(y) * static_cast<size_t>(inner.width)));
  }
  return out;
}

namespace {

// A vector file wins over raster interpretation: a GeoPackage may hold both, and parcels are what users pass.
bool opens_as_vector(const std::string& path) {
  GDALDatasetUniquePtr ds(GDALDataset::Open(path.c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY));
  return ds && ds->GetLayerCount() > 0;
}

}  // namespace

std::unique_ptr<LabelSource> open_label_source(const std::string& path, const LabelSourceOptions& options) {
  init_gdal();
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return std::make_unique<LabelRasters>(path);
  if (!std::filesystem::exists(path, ec))
    throw InputError(path, "label file not found (expected a parcel vector file, a class raster or a folder of "
                           "<tile>_class.tif rasters)");
  if (opens_as_vector(path)) return std::make_unique<ParcelVector>(path, options);
  return std::make_unique<LabelRasters>(path);
}

}  // namespace s2crop::geo
