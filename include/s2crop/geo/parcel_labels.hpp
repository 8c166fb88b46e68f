#pragma once
// Parcel labels of a window of a tile grid (which parcel and crop class each pixel belongs to), wherever they come
// from: polygons rasterised through OGR (rasterize.hpp) or label rasters (label_raster.hpp). Also the border rule
// that keeps only pixels well inside one parcel, whose spectra are not mixed with a neighbour's.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "s2crop/geo/grid.hpp"

namespace s2crop::geo {

inline constexpr std::int64_t kNoParcel = -1;

struct ParcelLabels {
  Window window;                     // position in the tile grid
  std::vector<std::int64_t> parcel;  // parcel id per pixel (row-major), kNoParcel where none or unknown
  std::vector<std::uint8_t> label;   // crop class id per pixel, kNoCropLabel where unlabelled

  ParcelLabels() = default;
  explicit ParcelLabels(const Window& w);  // all pixels unlabelled
};

// Pixels (row-major over `labels.window`) that are labelled and whose every neighbour within `border` pixels
// (Chebyshev distance) has the same parcel and class. Neighbours outside the window are not looked at: callers read
// the window grown by `border` on each side (clipped to the tile, see grow_window) and keep the inner part
// (crop_mask), so the result for a pixel never depends on how the tile is cut into blocks. At the tile edge the
// neighbours beyond the tile are unknown and do not exclude a pixel. `border` 0 keeps every labelled pixel.
std::vector<std::uint8_t> border_eligible(const ParcelLabels& labels, int border);

// `inner` grown by `margin` pixels on each side, clipped to a width x height grid.
Window grow_window(const Window& inner, int margin, int width, int height);
// The part of `mask` (over `outer`) that covers `inner` (which lies inside `outer`), row-major.
std::vector<std::uint8_t> crop_mask(const std::vector<std::uint8_t>& mask, const Window& outer, const Window& inner);

// Where the labels of a tile come from.
class LabelSource {
 public:
  virtual ~LabelSource() = default;
  // Labels of `window` of tile `tile` whose grid is `grid`. Pixels the source does not cover are unlabelled.
  virtual ParcelLabels read(const std::string& tile, const Grid& grid, const Window& window) = 0;
  // One line for the log: what the source is and how it maps onto tile grids.
  virtual std::string describe() const = 0;
};

struct LabelSourceOptions {
  // Vector files only.
  std::string class_field = "class_id";    // integer class id (0..15) or a class name (crop_class_id)
  std::string parcel_field = "parcel_id";  // integer parcel id; the feature id (FID) where the field is absent
  bool parcel_field_required = false;      // true when the user named the field: absence is then an error
  std::string layer;                       // only this layer (empty: every layer of the file)
};

// Opens labels at `path`: a folder holding <tile>_class.tif (+ optional <tile>_parcel.tif), a single class raster,
// or a vector file OGR reads (GeoPackage, Shapefile, GeoJSON, ...). Throws InputError naming the path and the problem.
std::unique_ptr<LabelSource> open_label_source(const std::string& path, const LabelSourceOptions& options);

}  // namespace s2crop::geo
