#include "block_dataset.hpp"

#include <cpl_error.h>
#include <cpl_string.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace s2crop::geo::detail {

class BlockBand : public GDALRasterBand {
 public:
  BlockBand(BlockDataset* ds, int band, GDALDataType type, int block_size) {
    poDS = ds;
    nBand = band;
    eDataType = type;
    eAccess = ds->GetAccess();
    nRasterXSize = ds->GetRasterXSize();
    nRasterYSize = ds->GetRasterYSize();
    nBlockXSize = std::min(block_size, nRasterXSize);
    nBlockYSize = std::min(block_size, nRasterYSize);
  }

  CPLErr IReadBlock(int bx, int by, void* data) override {
    auto* ds = static_cast<BlockDataset*>(poDS);
    const Window w{bx * nBlockXSize, by * nBlockYSize, std::min(nBlockXSize, nRasterXSize - bx * nBlockXSize),
                   std::min(nBlockYSize, nRasterYSize - by * nBlockYSize)};
    const size_t px = static_cast<size_t>(GDALGetDataTypeSizeBytes(eDataType));
    try {
      if (w.width == nBlockXSize) {
        ds->fill_(nBand, w, data);
      } else {  // right edge: GDAL's block buffer keeps the full block stride
        std::vector<unsigned char> tmp(static_cast<size_t>(w.pixels()) * px);
        ds->fill_(nBand, w, tmp.data());
        auto* out = static_cast<unsigned char*>(data);
        for (int y = 0; y < w.height; ++y)
          std::memcpy(out + static_cast<size_t>(y) * nBlockXSize * px, tmp.data() + static_cast<size_t>(y) * w.width * px,
                      static_cast<size_t>(w.width) * px);
      }
    } catch (const std::exception& e) {
      if (!ds->failure_) ds->failure_ = std::current_exception();
      CPLError(CE_Failure, CPLE_AppDefined, "%s", e.what());
      return CE_Failure;
    }
    return CE_None;
  }

  double GetNoDataValue(int* ok) override {
    if (ok) *ok = has_nodata_;
    return nodata_;
  }
  CPLErr SetNoDataValue(double value) override {
    nodata_ = value;
    has_nodata_ = 1;
    return CE_None;
  }
  GDALColorTable* GetColorTable() override { return table_.get(); }
  CPLErr SetColorTable(GDALColorTable* table) override {
    table_.reset(table ? table->Clone() : nullptr);
    return CE_None;
  }
  GDALColorInterp GetColorInterpretation() override { return interp_; }
  CPLErr SetColorInterpretation(GDALColorInterp interp) override {
    interp_ = interp;
    return CE_None;
  }
  char** GetCategoryNames() override { return names_.List(); }
  CPLErr SetCategoryNames(char** names) override {
    names_.Assign(CSLDuplicate(names), TRUE);
    return CE_None;
  }

 private:
  double nodata_ = 0;
  int has_nodata_ = 0;
  std::unique_ptr<GDALColorTable> table_;
  GDALColorInterp interp_ = GCI_GrayIndex;
  CPLStringList names_;
};

BlockDataset::BlockDataset(const Grid& grid, int bands, GDALDataType type, int block_size, BlockFill fill,
                           bool writable)
    : grid_(grid), fill_(std::move(fill)) {
  nRasterXSize = grid.width;
  nRasterYSize = grid.height;
  eAccess = writable ? GA_Update : GA_ReadOnly;
  srs_.importFromWkt(grid.crs_wkt.c_str());
  // Easting first, whatever the CRS's official axis order (EPSG:3035 and 4326 list northing/latitude first).
  srs_.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  for (int b = 1; b <= bands; ++b) SetBand(b, new BlockBand(this, b, type, block_size));
}

BlockDataset::~BlockDataset() { FlushCache(true); }

CPLErr BlockDataset::GetGeoTransform(double* gt) {
  std::copy(grid_.geotransform.begin(), grid_.geotransform.end(), gt);
  return CE_None;
}

}  // namespace s2crop::geo::detail
