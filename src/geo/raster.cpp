#include "s2crop/geo/raster.hpp"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_vsi.h>
#include <gdal_priv.h>
#include <gdalwarper.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <vector>

#include "block_dataset.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/staged_file.hpp"

namespace s2crop::geo {

namespace {
std::string last_gdal_error() {
  const char* msg = CPLGetLastErrorMsg();
  return (msg && *msg) ? std::string(msg) : std::string("unknown GDAL error");
}

GDALDataType to_gdal(PixelType t) {
  switch (t) {
    case PixelType::UInt8: return GDT_Byte;
    case PixelType::UInt16: return GDT_UInt16;
    case PixelType::Int16: return GDT_Int16;
    case PixelType::Float32: return GDT_Float32;
    case PixelType::UInt32: return GDT_UInt32;
  }
  return GDT_Unknown;
}
}  // namespace

void init_gdal() {
  static std::once_flag once;
  std::call_once(once, [] {
    GDALAllRegister();
    // GDAL's default block cache is 5 % of RAM per process; with one rank per core that multiplies. Blocks are
    // read once per unit, so a modest cache keeps memory per rank bounded by the block size. Users can still set it.
    if (!CPLGetConfigOption("GDAL_CACHEMAX", nullptr)) GDALSetCacheMax64(static_cast<GIntBig>(64) << 20);
    // We turn every failure into an exception with the file name; GDAL's own stderr lines would only repeat it.
    CPLSetErrorHandler(CPLQuietErrorHandler);
  });
}

double block_cache_mib() {
  init_gdal();
  return static_cast<double>(GDALGetCacheMax64()) / 1048576.0;
}

RasterReader::RasterReader(const std::string& path) : path_(path) {
  init_gdal();
  CPLErrorReset();
  dataset_ = static_cast<GDALDataset*>(GDALOpenEx(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr,
                                                  nullptr, nullptr));
  if (!dataset_) throw InputError(path, "cannot open as a raster (" + last_gdal_error() + ")");
  grid_.width = dataset_->GetRasterXSize();
  grid_.height = dataset_->GetRasterYSize();
  if (dataset_->GetGeoTransform(grid_.geotransform.data()) != CE_None)
    throw InputError(path, "raster has no geotransform (not georeferenced)");
  const char* wkt = dataset_->GetProjectionRef();
  grid_.crs_wkt = wkt ? wkt : "";
  if (grid_.crs_wkt.empty()) throw InputError(path, "raster has no coordinate reference system");
}

RasterReader::~RasterReader() {
  if (dataset_) GDALClose(dataset_);
}
RasterReader::RasterReader(RasterReader&& o) noexcept
    : path_(std::move(o.path_)), dataset_(o.dataset_), grid_(std::move(o.grid_)) {
  o.dataset_ = nullptr;
}
RasterReader& RasterReader::operator=(RasterReader&& o) noexcept {
  if (this != &o) {
    if (dataset_) GDALClose(dataset_);
    path_ = std::move(o.path_);
    dataset_ = o.dataset_;
    grid_ = std::move(o.grid_);
    o.dataset_ = nullptr;
  }
  return *this;
}

int RasterReader::band_count() const { return dataset_->GetRasterCount(); }

int RasterReader::jpeg2000_tile_size() const {
  const char* driver = dataset_->GetDriver() ? dataset_->GetDriver()->GetDescription() : "";
  if (std::string(driver).rfind("JP2", 0) != 0 && std::string(driver) != "JPEG2000") return 0;
  int bx = 0, by = 0;
  dataset_->GetRasterBand(1)->GetBlockSize(&bx, &by);
  if (bx >= grid_.width && by >= grid_.height) return 0;  // one tile: GDAL decodes sub-areas of it
  return std::max(bx, by);
}

std::string RasterReader::metadata_item(const std::string& key) const {
  const char* v = dataset_->GetMetadataItem(key.c_str());
  return v ? v : "";
}

bool RasterReader::nodata(int band, double& value) const {
  int has = 0;
  value = dataset_->GetRasterBand(band)->GetNoDataValue(&has);
  return has != 0;
}

std::string RasterReader::data_type(int band) const {
  if (band < 1 || band > band_count()) return "";
  return GDALGetDataTypeName(dataset_->GetRasterBand(band)->GetRasterDataType());
}

bool RasterReader::is_floating_point(int band) const {
  if (band < 1 || band > band_count()) return false;
  return GDALDataTypeIsFloating(dataset_->GetRasterBand(band)->GetRasterDataType()) != 0;
}

void RasterReader::read_raw(int band, const Window& w, void* out, int gdal_type) const {
  if (band < 1 || band > band_count())
    throw InputError(path_, "has " + std::to_string(band_count()) + " band(s), band " + std::to_string(band) +
                                " was asked for");
  if (w.x0 < 0 || w.y0 < 0 || w.x0 + w.width > grid_.width || w.y0 + w.height > grid_.height)
    throw InputError(path_, "window outside the raster (" + grid_.describe() + ")");
  CPLErrorReset();
  CPLErr err = dataset_->GetRasterBand(band)->RasterIO(GF_Read, w.x0, w.y0, w.width, w.height, out, w.width,
                                                        w.height, static_cast<GDALDataType>(gdal_type), 0, 0,
                                                        nullptr);
  if (err != CE_None) {
    char where[128];
    std::snprintf(where, sizeof where, "band %d, window x=%d y=%d %dx%d", band, w.x0, w.y0, w.width, w.height);
    throw InputError(path_, std::string("read failed (") + where + "): " + last_gdal_error() +
                                " - the file is probably truncated or corrupt");
  }
}

void RasterReader::read(int band, const Window& w, std::int16_t* out) const { read_raw(band, w, out, GDT_Int16); }
void RasterReader::read(int band, const Window& w, std::uint16_t* out) const { read_raw(band, w, out, GDT_UInt16); }
void RasterReader::read(int band, const Window& w, std::uint8_t* out) const { read_raw(band, w, out, GDT_Byte); }
void RasterReader::read(int band, const Window& w, float* out) const { read_raw(band, w, out, GDT_Float32); }
void RasterReader::read(int band, const Window& w, std::int64_t* out) const { read_raw(band, w, out, GDT_Int64); }

namespace {
// read_replicated for any pixel type (moved here from the Sentinel-2 reader so every reader of coarser bands shares
// it). Rows are expanded once and copied for the fine rows that share them; no division per pixel.
template <typename T>
void replicate(const RasterReader& file, int band, int f, const Window& w, std::vector<T>& coarse, T* out) {
  if (f == 1) {
    file.read(band, w, out);
    return;
  }
  Window c{w.x0 / f, w.y0 / f, (w.x0 + w.width - 1) / f - w.x0 / f + 1, (w.y0 + w.height - 1) / f - w.y0 / f + 1};
  coarse.resize(static_cast<size_t>(c.pixels()));
  file.read(band, c, coarse.data());
  int previous_row = -1;
  for (int y = 0; y < w.height; ++y) {
    T* o = out + static_cast<size_t>(y) * w.width;
    int cy = (w.y0 + y) / f - c.y0;
    if (cy == previous_row) {
      std::copy(o - w.width, o, o);
      continue;
    }
    previous_row = cy;
    const T* row = coarse.data() + static_cast<size_t>(cy) * c.width;
    int phase = w.x0 % f, x = 0;
    if (f == 2) {  // 20 m bands on the 10 m grid: pairs, in a loop the compiler vectorises
      int cx = 0;
      if (phase == 1) o[x++] = row[cx++];
      const int pairs = (w.width - x) / 2;
      T* __restrict po = o + x;
      const T* __restrict pr = row + cx;
      for (int k = 0; k < pairs; ++k) {
        const T v = pr[k];
        po[2 * k] = v;
        po[2 * k + 1] = v;
      }
      if (x + 2 * pairs < w.width) o[w.width - 1] = row[cx + pairs];
      continue;
    }
    for (int cx = 0; x < w.width; ++cx) {
      T v = row[cx];
      for (; phase < f && x < w.width; ++phase) o[x++] = v;
      phase = 0;
    }
  }
}
}  // namespace

void read_replicated(const RasterReader& file, int band, int factor, const Window& window,
                     std::vector<std::uint16_t>& coarse, std::uint16_t* out) {
  replicate(file, band, factor, window, coarse, out);
}

void read_replicated(const RasterReader& file, int band, int factor, const Window& window,
                     std::vector<std::uint8_t>& coarse, std::uint8_t* out) {
  replicate(file, band, factor, window, coarse, out);
}

void RasterReader::read_warped_raw(int band, const Grid& target, const Window& w, void* out, int gdal_type,
                                   double fill) const {
  if (band < 1 || band > band_count())
    throw InputError(path_, "has " + std::to_string(band_count()) + " band(s), band " + std::to_string(band) +
                                " was asked for");
  GDALDriver* mem = GetGDALDriverManager()->GetDriverByName("MEM");
  if (!mem) throw Error("GDAL driver MEM is not available");
  const auto type = static_cast<GDALDataType>(gdal_type);
  GDALDatasetUniquePtr dst(mem->Create("", w.width, w.height, 1, type, nullptr));
  if (!dst) throw Error("cannot create an in-memory raster: " + last_gdal_error());
  const auto& g = target.geotransform;
  double gt[6] = {g[0] + g[1] * w.x0 + g[2] * w.y0, g[1], g[2], g[3] + g[4] * w.x0 + g[5] * w.y0, g[4], g[5]};
  dst->SetGeoTransform(gt);
  dst->SetProjection(target.crs_wkt.c_str());
  GDALRasterBand* dst_band = dst->GetRasterBand(1);
  dst_band->Fill(fill);
  dst_band->SetNoDataValue(fill);
  GDALWarpOptions* options = GDALCreateWarpOptions();
  options->hSrcDS = dataset_;
  options->hDstDS = dst.get();
  options->nBandCount = 1;
  options->panSrcBands = static_cast<int*>(CPLMalloc(sizeof(int)));
  options->panSrcBands[0] = band;
  options->panDstBands = static_cast<int*>(CPLMalloc(sizeof(int)));
  options->panDstBands[0] = 1;
  options->eResampleAlg = GRA_NearestNeighbour;
  options->eWorkingDataType = type;
  options->papszWarpOptions = CSLSetNameValue(options->papszWarpOptions, "INIT_DEST", CPLSPrintf("%.17g", fill));
  int has_nodata = 0;
  const double src_nodata = dataset_->GetRasterBand(band)->GetNoDataValue(&has_nodata);
  if (has_nodata) {
    options->padfSrcNoDataReal = static_cast<double*>(CPLMalloc(sizeof(double)));
    options->padfSrcNoDataReal[0] = src_nodata;
  }
  CPLErrorReset();
  // Exact transform (no GDALApproxTransform): the source pixel of each target pixel is computed on its own.
  options->pTransformerArg = GDALCreateGenImgProjTransformer2(dataset_, dst.get(), nullptr);
  CPLErr err = CE_Failure;
  if (options->pTransformerArg) {
    options->pfnTransformer = GDALGenImgProjTransform;
    GDALWarpOperation warp;
    err = warp.Initialize(options);
    if (err == CE_None) err = warp.ChunkAndWarpImage(0, 0, w.width, w.height);
    GDALDestroyGenImgProjTransformer(options->pTransformerArg);
  }
  options->pTransformerArg = nullptr;
  GDALDestroyWarpOptions(options);
  if (err != CE_None)
    throw InputError(path_, "cannot resample onto the grid " + target.describe() + ": " + last_gdal_error());
  err = dst_band->RasterIO(GF_Read, 0, 0, w.width, w.height, out, w.width, w.height, type, 0, 0, nullptr);
  if (err != CE_None) throw InputError(path_, "read failed after resampling: " + last_gdal_error());
}

void RasterReader::read_warped(int band, const Grid& target, const Window& w, std::uint8_t* out,
                               std::uint8_t fill) const {
  read_warped_raw(band, target, w, out, GDT_Byte, fill);
}
void RasterReader::read_warped(int band, const Grid& target, const Window& w, std::int64_t* out,
                               std::int64_t fill) const {
  // Warped as doubles (exact for ids below 2^53): GDAL's warp kernel is on firmer ground there than with Int64.
  std::vector<double> values(static_cast<size_t>(w.pixels()));
  read_warped_raw(band, target, w, values.data(), GDT_Float64, static_cast<double>(fill));
  for (size_t i = 0; i < values.size(); ++i) out[i] = static_cast<std::int64_t>(values[i]);
}

void RasterReader::check_complete() const {
  GDALDriver* driver = dataset_->GetDriver();
  if (!driver || std::string(driver->GetDescription()) != "GTiff") return;
  VSIStatBufL st;
  if (VSIStatL(path_.c_str(), &st) != 0) return;  // e.g. inside an archive without stat support
  auto file_size = static_cast<unsigned long long>(st.st_size);
  for (int b = 1; b <= band_count(); ++b) {
    GDALRasterBand* band = dataset_->GetRasterBand(b);
    int bx = 0, by = 0;
    band->GetBlockSize(&bx, &by);
    int nx = (grid_.width + bx - 1) / bx, ny = (grid_.height + by - 1) / by;
    // The last block is the one written last by GDAL and by downloaders: checking it (and the first) catches
    // truncation without reading pixel data.
    for (auto [x, y] : {std::pair<int, int>{0, 0}, {nx - 1, ny - 1}}) {
      std::string key = "_" + std::to_string(x) + "_" + std::to_string(y);
      const char* off = band->GetMetadataItem(("BLOCK_OFFSET" + key).c_str(), "TIFF");
      const char* size = band->GetMetadataItem(("BLOCK_SIZE" + key).c_str(), "TIFF");
      if (!off || !size) continue;  // sparse block
      unsigned long long end = std::stoull(off) + std::stoull(size);
      if (end > file_size)
        throw InputError(path_, "truncated: band " + std::to_string(b) + " data ends at byte " +
                                    std::to_string(end) + " but the file has " + std::to_string(file_size) +
                                    " bytes");
    }
  }
}

RasterReader& RasterCache::get(const std::string& path) {
  auto it = open_.find(path);
  if (it == open_.end()) {
    if (open_.size() >= capacity_) {
      auto oldest = open_.begin();
      for (auto i = open_.begin(); i != open_.end(); ++i)
        if (i->second.last_used < oldest->second.last_used) oldest = i;
      open_.erase(oldest);
    }
    it = open_.emplace(path, Entry{std::make_unique<RasterReader>(path), 0}).first;
  }
  it->second.last_used = ++clock_;
  return *it->second.reader;
}

void RasterCache::clear() { open_.clear(); }

void write_raster(const std::string& path, const Grid& grid, PixelType type, const std::vector<RasterBandData>& bands,
                  const WriteOptions& options) {
  init_gdal();
  GDALDriver* mem = GetGDALDriverManager()->GetDriverByName("MEM");
  GDALDriver* out_driver = GetGDALDriverManager()->GetDriverByName(options.driver.c_str());
  if (!mem || !out_driver) throw OutputError(path, "GDAL driver " + options.driver + " is not available");
  GDALDataType gt = to_gdal(type);
  const bool streamed = std::any_of(bands.begin(), bands.end(), [](const RasterBandData& b) { return !b.data; });
  std::unique_ptr<GDALDataset> src;
  detail::BlockDataset* blocks = nullptr;
  if (streamed) {
    // Pixels come window by window from the callers' readers as the driver asks for them: memory stays at a few
    // windows (GDAL's block cache), whatever the raster's size.
    for (auto& b : bands)
      if (!b.data && !b.read_block) throw OutputError(path, "a band has neither pixels nor a block reader");
    src = std::make_unique<detail::BlockDataset>(
        grid, static_cast<int>(bands.size()), gt, options.read_block_size,
        [&bands](int band, const Window& w, void* out) {
          const RasterBandData& b = bands[static_cast<size_t>(band - 1)];
          if (b.read_block) return b.read_block(w, out);
          throw Error("write_raster: cannot mix bands in memory and streamed bands");
        });
    blocks = static_cast<detail::BlockDataset*>(src.get());
  } else {
    src.reset(mem->Create("", grid.width, grid.height, static_cast<int>(bands.size()), gt, nullptr));
    src->SetGeoTransform(const_cast<double*>(grid.geotransform.data()));
    src->SetProjection(grid.crs_wkt.c_str());
  }
  for (auto& [key, value] : options.metadata) src->SetMetadataItem(key.c_str(), value.c_str());
  for (size_t i = 0; i < bands.size(); ++i) {
    GDALRasterBand* b = src->GetRasterBand(static_cast<int>(i) + 1);
    if (!streamed && b->RasterIO(GF_Write, 0, 0, grid.width, grid.height, const_cast<void*>(bands[i].data),
                                 grid.width, grid.height, gt, 0, 0, nullptr) != CE_None)
      throw OutputError(path, "cannot fill in-memory raster: " + last_gdal_error());
    if (!bands[i].description.empty()) b->SetDescription(bands[i].description.c_str());
    if (options.has_nodata) b->SetNoDataValue(options.nodata);
    if (!bands[i].colour_table.empty()) {
      GDALColorTable table(GPI_RGB);
      for (size_t v = 0; v < bands[i].colour_table.size(); ++v) {
        const auto& c = bands[i].colour_table[v];
        GDALColorEntry entry{c[0], c[1], c[2], c[3]};
        table.SetColorEntry(static_cast<int>(v), &entry);
      }
      b->SetColorTable(&table);
      b->SetColorInterpretation(GCI_PaletteIndex);
    }
    if (!bands[i].category_names.empty()) {
      std::vector<char*> names;
      for (const auto& n : bands[i].category_names) names.push_back(const_cast<char*>(n.c_str()));
      names.push_back(nullptr);
      b->SetCategoryNames(names.data());
    }
  }
  std::string bs = std::to_string(options.block_size);
  std::vector<std::string> opts = {"COMPRESS=" + options.compress};
  if (options.driver == "COG") {
    opts.push_back("BLOCKSIZE=" + bs);
    if (!options.overviews) opts.push_back("OVERVIEWS=NONE");
    if (!options.overview_resampling.empty()) opts.push_back("OVERVIEW_RESAMPLING=" + options.overview_resampling);
  } else {
    opts.push_back("TILED=YES");
    opts.push_back("BLOCKXSIZE=" + bs);
    opts.push_back("BLOCKYSIZE=" + bs);
  }
  if (options.predictor && (options.compress == "DEFLATE" || options.compress == "ZSTD")) opts.push_back("PREDICTOR=2");
  std::vector<const char*> copts;
  for (auto& o : opts) copts.push_back(o.c_str());
  copts.push_back(nullptr);
  StagedFile staged(path, ".tmp.tif");
  // GDAL writes a GeoTIFF's category names to a .aux.xml side file next to the temporary; it has no StagedFile of
  // its own (its temporary is not its final name plus a suffix), so each failure below removes it.
  const std::string tmp_aux = staged.path() + ".aux.xml", aux = path + ".aux.xml";
  CPLErrorReset();
  GDALDataset* out = out_driver->CreateCopy(staged.path().c_str(), src.get(), FALSE,
                                            const_cast<char**>(copts.data()), nullptr, nullptr);
  if (!out) {
    VSIUnlink(tmp_aux.c_str());
    // A reader's own error (e.g. a damaged intermediate file, named) says more than GDAL's echo of it.
    if (blocks && blocks->failure()) std::rethrow_exception(blocks->failure());
    throw OutputError(path, "cannot write raster: " + last_gdal_error());
  }
  GDALClose(out);
  if (blocks && blocks->failure()) {  // a read failed but the driver carried on: never move such a file into place
    VSIUnlink(tmp_aux.c_str());
    std::rethrow_exception(blocks->failure());
  }
  // The side file moves first, so the raster never appears without it, and a side file left by an earlier raster of
  // the same name must not describe this one.
  VSIStatBufL st;
  if (VSIStatL(tmp_aux.c_str(), &st) == 0) {
    if (VSIRename(tmp_aux.c_str(), aux.c_str()) != 0) {
      VSIUnlink(tmp_aux.c_str());
      throw OutputError(path, "cannot rename the raster's .aux.xml side file into place");
    }
  } else if (VSIStatL(aux.c_str(), &st) == 0) {
    VSIUnlink(aux.c_str());
  }
  staged.commit();
}

}  // namespace s2crop::geo
