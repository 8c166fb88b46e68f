#pragma once
// Thin RAII over GDAL rasters. Every failure is an InputError/OutputError naming the file.
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "s2crop/geo/grid.hpp"

class GDALDataset;

namespace s2crop::geo {

void init_gdal();  // registers drivers once, quiets GDAL's own error printing (we throw instead)
double block_cache_mib();  // the most GDAL's block cache holds (s2crop's default 64 MiB, or GDAL_CACHEMAX)

class RasterReader {
 public:
  explicit RasterReader(const std::string& path);  // throws InputError if GDAL cannot open it
  ~RasterReader();
  RasterReader(RasterReader&&) noexcept;
  RasterReader& operator=(RasterReader&&) noexcept;
  RasterReader(const RasterReader&) = delete;
  RasterReader& operator=(const RasterReader&) = delete;

  const std::string& path() const { return path_; }
  const Grid& grid() const { return grid_; }
  int band_count() const;
  // The band's no-data value, if it declares one.
  bool nodata(int band, double& value) const;
  // GDAL's name of the band's pixel type ("UInt16", "Float32"), and whether it is a floating-point type.
  std::string data_type(int band) const;
  bool is_floating_point(int band) const;
  // The edge (pixels) of the tiles a JPEG 2000 file is decoded in, 0 for other formats and untiled codestreams:
  // reading any pixel decodes its whole tile, so readers align their windows to it.
  int jpeg2000_tile_size() const;
  // A dataset metadata item (default domain), empty if absent.
  std::string metadata_item(const std::string& key) const;
  // Reads a window of band `band` (1-based) converted to the buffer type. Throws InputError on any read error
  // (truncated or corrupt file) naming the file, band and window.
  void read(int band, const Window& window, std::int16_t* out) const;
  void read(int band, const Window& window, std::uint16_t* out) const;
  void read(int band, const Window& window, std::uint8_t* out) const;
  void read(int band, const Window& window, float* out) const;
  void read(int band, const Window& window, std::int64_t* out) const;
  // Reads band `band` resampled by nearest neighbour onto `window` of another grid `target` (any CRS). The transform
  // is computed exactly per pixel, not approximated, so a pixel's value never depends on the window it is read in.
  // Pixels the raster does not cover or marks as no-data receive `fill`.
  void read_warped(int band, const Grid& target, const Window& window, std::uint8_t* out, std::uint8_t fill) const;
  void read_warped(int band, const Grid& target, const Window& window, std::int64_t* out, std::int64_t fill) const;
  // Checks that every tile/strip of a GeoTIFF lies inside the file, so a truncated download is caught before any
  // work starts instead of after hours. No-op for other formats.
  void check_complete() const;

 private:
  void read_raw(int band, const Window& window, void* out, int gdal_type) const;
  void read_warped_raw(int band, const Grid& target, const Window& window, void* out, int gdal_type, double fill) const;
  std::string path_;
  GDALDataset* dataset_ = nullptr;
  Grid grid_;
};

// Reads `window` of a grid `factor` times finer than `file` whose pixels share the file's top-left corner (how
// Sentinel-2 20 m and 60 m bands sit on the 10 m grid: Grid::is_aligned_coarser) by replicating each coarse pixel
// factor x factor (nearest neighbour, no interpolation: a fine pixel holds exactly the DN of the coarse pixel it lies
// in). `coarse` is scratch the caller reuses between calls. factor 1 is a plain read. Throws like read().
void read_replicated(const RasterReader& file, int band, int factor, const Window& window,
                     std::vector<std::uint16_t>& coarse, std::uint16_t* out);
void read_replicated(const RasterReader& file, int band, int factor, const Window& window,
                     std::vector<std::uint8_t>& coarse, std::uint8_t* out);

// Keeps recently used rasters open: a rank works through the blocks of a tile and reads the same few hundred files
// for each block; reopening (and re-parsing COG headers) per block would dominate small blocks.
class RasterCache {
 public:
  explicit RasterCache(size_t capacity = 256) : capacity_(capacity) {}
  RasterReader& get(const std::string& path);  // opens on first use; throws InputError like RasterReader
  void clear();

 private:
  size_t capacity_;
  std::uint64_t clock_ = 0;
  struct Entry {
    std::unique_ptr<RasterReader> reader;
    std::uint64_t last_used;
  };
  std::map<std::string, Entry> open_;
};

enum class PixelType { UInt8, UInt16, Int16, Float32, UInt32 };

struct RasterBandData {
  const void* data = nullptr;  // width*height values of the raster's PixelType, row-major (or null: read_block)
  std::string description;     // band description (e.g. "B04"), may be empty
  // Categorical (UInt8) bands: a palette entry per value (RGBA, index = value) and a name per value, so GIS tools
  // show the classes by name and colour. Both may be empty.
  std::vector<std::array<std::uint8_t, 4>> colour_table{};
  std::vector<std::string> category_names{};
  // Rasters larger than memory: where `data` is null, the writer asks for the pixels of one window at a time
  // (windows of WriteOptions::read_block_size on a block grid from the top-left, clipped at the edges), row-major.
  std::function<void(const Window& window, void* out)> read_block{};
};

struct WriteOptions {
  std::string driver = "COG";      // "COG" (tiled, overviews) or "GTiff" (tiled)
  std::string compress = "DEFLATE";
  int block_size = 256;
  bool has_nodata = false;
  double nodata = 0;
  bool overviews = true;           // COG only
  std::string overview_resampling; // COG only: e.g. "MODE" for classes; empty = the driver's default
  bool predictor = true;           // horizontal differencing with DEFLATE/ZSTD (pointless for class codes)
  int read_block_size = 1024;      // window edge for bands given by RasterBandData::read_block
  std::vector<std::pair<std::string, std::string>> metadata{};  // dataset metadata items (GDAL_METADATA tag)
};

// Writes a multi-band GeoTIFF/COG atomically (temporary name, then rename) so a killed writer never leaves a
// file that looks whole.
void write_raster(const std::string& path, const Grid& grid, PixelType type, const std::vector<RasterBandData>& bands,
                  const WriteOptions& options = {});

}  // namespace s2crop::geo
