#pragma once
// Private to geo: a read-only GDAL raster whose blocks come from a callback. The warper and the COG writer read it
// like any dataset, so rasters that are not in memory (HDF5 map tiles, a mosaic's part files) stream through them
// block by block. Band metadata (no-data, colour table, category names) lives in memory, so write_raster can set it
// as on a MEM dataset.
#include <gdal_priv.h>

#include <exception>
#include <functional>
#include <memory>

#include "s2crop/geo/grid.hpp"

namespace s2crop::geo::detail {

// Fills `window` (clipped to the raster) of band `band` (1-based): window.width x window.height values, row-major.
using BlockFill = std::function<void(int band, const Window& window, void* out)>;

class BlockDataset : public GDALDataset {
 public:
  // `writable`: the warper's target must look writable, though it is never written (WarpRegionToBuffer).
  BlockDataset(const Grid& grid, int bands, GDALDataType type, int block_size, BlockFill fill, bool writable = false);
  ~BlockDataset() override;
  CPLErr GetGeoTransform(double* gt) override;
  const OGRSpatialReference* GetSpatialRef() const override { return &srs_; }
  // The first exception a fill threw (GDAL only sees a failed read): callers rethrow it so an InputError naming a
  // file reaches the user as such.
  std::exception_ptr failure() const { return failure_; }

 private:
  friend class BlockBand;
  Grid grid_;
  OGRSpatialReference srs_;
  BlockFill fill_;
  std::exception_ptr failure_;
};

}  // namespace s2crop::geo::detail
