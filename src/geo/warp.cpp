#include "s2crop/geo/warp.hpp"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal_alg.h>
#include <gdalwarper.h>
#include <ogr_spatialref.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "block_dataset.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/geo/raster.hpp"

namespace s2crop::geo {

Bounds ring_bounds(const Ring& ring) {
  Bounds b{std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(),
           -std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  for (auto& p : ring) {
    b.xmin = std::min(b.xmin, p[0]);
    b.xmax = std::max(b.xmax, p[0]);
    b.ymin = std::min(b.ymin, p[1]);
    b.ymax = std::max(b.ymax, p[1]);
  }
  return b;
}

std::string crs_wkt_from_user(const std::string& text) {
  init_gdal();  // GDAL's errors become our exception, not stderr lines
  OGRSpatialReference srs;
  if (text.empty() || srs.SetFromUserInput(text.c_str()) != OGRERR_NONE)
    throw ConfigError("'" + text + "' is not a coordinate reference system GDAL knows (try EPSG:3035)");
  char* wkt = nullptr;
  srs.exportToWkt(&wkt);
  std::string out = wkt ? wkt : "";
  CPLFree(wkt);
  return out;
}

Ring grid_outline(const Grid& grid, const std::string& target_wkt, int step) {
  init_gdal();
  OGRSpatialReference src, dst;
  if (src.importFromWkt(grid.crs_wkt.c_str()) != OGRERR_NONE) throw Error("grid has no valid CRS: " + grid.describe());
  if (dst.importFromWkt(target_wkt.c_str()) != OGRERR_NONE) throw Error("target CRS is not valid WKT");
  src.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  dst.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&src, &dst));
  if (!ct) throw Error("no transformation from " + crs_short_name(grid.crs_wkt) + " to " + crs_short_name(target_wkt));
  step = std::max(1, step);
  const double W = grid.width, H = grid.height;
  std::vector<double> px, py;
  auto edge = [&](double x0, double y0, double x1, double y1, double length) {
    const int n = std::max(1, static_cast<int>(std::ceil(length / step)));
    for (int i = 0; i < n; ++i) {  // the edge's end is the next edge's start
      const double t = static_cast<double>(i) / n;
      px.push_back(x0 + (x1 - x0) * t);
      py.push_back(y0 + (y1 - y0) * t);
    }
  };
  edge(0, 0, W, 0, W);
  edge(W, 0, W, H, H);
  edge(W, H, 0, H, W);
  edge(0, H, 0, 0, H);
  const auto& g = grid.geotransform;
  std::vector<double> xs(px.size()), ys(px.size());
  for (size_t i = 0; i < px.size(); ++i) {
    xs[i] = g[0] + px[i] * g[1] + py[i] * g[2];
    ys[i] = g[3] + px[i] * g[4] + py[i] * g[5];
  }
  std::vector<int> ok(xs.size(), 0);
  if (!ct->Transform(xs.size(), xs.data(), ys.data(), nullptr, ok.data()) ||
      std::find(ok.begin(), ok.end(), 0) != ok.end())
    throw Error("cannot transform the outline of the grid " + grid.describe() + " to " + crs_short_name(target_wkt));
  Ring ring;
  for (size_t i = 0; i < xs.size(); ++i) ring.push_back({xs[i], ys[i]});
  ring.push_back(ring.front());
  return ring;
}

Grid aligned_grid(const Bounds& b, double resolution, const std::string& wkt) {
  if (!(resolution > 0)) throw ConfigError("the resolution must be positive");
  if (!(b.xmax > b.xmin && b.ymax > b.ymin)) throw ConfigError("the area to grid is empty");
  const double x0 = std::floor(b.xmin / resolution) * resolution, x1 = std::ceil(b.xmax / resolution) * resolution;
  const double y0 = std::floor(b.ymin / resolution) * resolution, y1 = std::ceil(b.ymax / resolution) * resolution;
  const double w = std::round((x1 - x0) / resolution), h = std::round((y1 - y0) / resolution);
  if (w > std::numeric_limits<int>::max() || h > std::numeric_limits<int>::max())
    throw ConfigError("a grid of " + std::to_string(w) + " x " + std::to_string(h) +
                      " pixels is too large; choose a coarser resolution");
  Grid g;
  g.crs_wkt = wkt;
  g.geotransform = {x0, resolution, 0.0, y1, 0.0, -resolution};
  g.width = static_cast<int>(w);
  g.height = static_cast<int>(h);
  return g;
}

Ring ring_to_pixels(const Ring& ring, const Grid& grid) {
  const auto& g = grid.geotransform;
  Ring out;
  out.reserve(ring.size());
  for (auto& p : ring) out.push_back({(p[0] - g[0]) / g[1], (p[1] - g[3]) / g[5]});
  return out;
}

namespace {
double cross(const std::array<double, 2>& o, const std::array<double, 2>& a, const std::array<double, 2>& b) {
  return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
}
bool on_segment(const std::array<double, 2>& p, const std::array<double, 2>& a, const std::array<double, 2>& b) {
  return std::min(a[0], b[0]) <= p[0] && p[0] <= std::max(a[0], b[0]) && std::min(a[1], b[1]) <= p[1] &&
         p[1] <= std::max(a[1], b[1]);
}
bool segments_meet(const std::array<double, 2>& p1, const std::array<double, 2>& p2, const std::array<double, 2>& q1,
                   const std::array<double, 2>& q2) {
  const double d1 = cross(q1, q2, p1), d2 = cross(q1, q2, p2), d3 = cross(p1, p2, q1), d4 = cross(p1, p2, q2);
  if (((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0))) return true;
  return (d1 == 0 && on_segment(p1, q1, q2)) || (d2 == 0 && on_segment(p2, q1, q2)) ||
         (d3 == 0 && on_segment(q1, p1, p2)) || (d4 == 0 && on_segment(q2, p1, p2));
}
}  // namespace

bool ring_contains(const Ring& ring, double x, double y) {
  bool inside = false;
  for (size_t i = 0, j = ring.size() - 1; i < ring.size(); j = i++) {
    const auto &a = ring[i], &b = ring[j];
    if ((a[1] > y) != (b[1] > y) && x < (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]) + a[0]) inside = !inside;
  }
  return inside;
}

bool ring_intersects_rect(const Ring& ring, double x0, double y0, double x1, double y1) {
  if (ring.size() < 4) return false;
  for (auto& p : ring)
    if (p[0] >= x0 && p[0] <= x1 && p[1] >= y0 && p[1] <= y1) return true;
  const std::array<std::array<double, 2>, 4> c = {{{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}}};
  for (auto& p : c)
    if (ring_contains(ring, p[0], p[1])) return true;
  for (size_t i = 0; i + 1 < ring.size(); ++i)
    for (size_t k = 0; k < 4; ++k)
      if (segments_meet(ring[i], ring[i + 1], c[k], c[(k + 1) % 4])) return true;
  return false;
}

struct NearestWarper::Impl {
  int bands = 0;
  std::uint8_t fill = 0;
  std::unique_ptr<detail::BlockDataset> src, dst;
  void* transformer = nullptr;
  GDALWarpOptions* options = nullptr;
  std::unique_ptr<GDALWarpOperation> op;
  ~Impl() {
    op.reset();
    if (options) {
      options->pTransformerArg = nullptr;
      GDALDestroyWarpOptions(options);
    }
    if (transformer) GDALDestroyGenImgProjTransformer(transformer);
  }
};

NearestWarper::NearestWarper(const Grid& source, int bands, int source_block, ByteBlockReader read,
                             const Grid& target, std::uint8_t fill)
    : impl_(std::make_unique<Impl>()) {
  init_gdal();
  Impl& m = *impl_;
  m.bands = bands;
  m.fill = fill;
  m.src = std::make_unique<detail::BlockDataset>(
      source, bands, GDT_Byte, source_block,
      [read = std::move(read)](int band, const Window& w, void* out) { read(band, w, static_cast<std::uint8_t*>(out)); });
  // The target is the whole grid, never read (INIT_DEST): pixel coordinates are global, so the transform of a
  // target pixel is the same computation in every window.
  m.dst = std::make_unique<detail::BlockDataset>(target, bands, GDT_Byte, 256, [fill](int, const Window& w, void* out) {
    std::memset(out, fill, static_cast<size_t>(w.pixels()));
  }, /*writable=*/true);
  CPLErrorReset();
  // No approximating wrapper (GDALApproxTransform): every pixel centre is transformed exactly.
  m.transformer = GDALCreateGenImgProjTransformer2(GDALDataset::ToHandle(m.src.get()),
                                                   GDALDataset::ToHandle(m.dst.get()), nullptr);
  if (!m.transformer)
    throw Error("cannot transform " + source.describe() + " to " + target.describe() + ": " + CPLGetLastErrorMsg());
  m.options = GDALCreateWarpOptions();
  m.options->hSrcDS = GDALDataset::ToHandle(m.src.get());
  m.options->hDstDS = GDALDataset::ToHandle(m.dst.get());
  m.options->nBandCount = bands;
  m.options->panSrcBands = static_cast<int*>(CPLMalloc(sizeof(int) * static_cast<size_t>(bands)));
  m.options->panDstBands = static_cast<int*>(CPLMalloc(sizeof(int) * static_cast<size_t>(bands)));
  for (int b = 0; b < bands; ++b) m.options->panSrcBands[b] = m.options->panDstBands[b] = b + 1;
  m.options->eResampleAlg = GRA_NearestNeighbour;
  m.options->eWorkingDataType = GDT_Byte;
  m.options->pfnTransformer = GDALGenImgProjTransform;
  m.options->pTransformerArg = m.transformer;
  m.options->papszWarpOptions = CSLSetNameValue(m.options->papszWarpOptions, "INIT_DEST", CPLSPrintf("%d", fill));
  // (INIT_DEST tells the warper the target holds nothing worth reading; warp() fills its buffer itself.)
  // The source window of a target window: sampled over a grid of points (not only the edges) with 2 extra source
  // pixels around it, so no source pixel a target pixel centre falls in is left out of the window.
  m.options->papszWarpOptions = CSLSetNameValue(m.options->papszWarpOptions, "SAMPLE_GRID", "YES");
  m.options->papszWarpOptions = CSLSetNameValue(m.options->papszWarpOptions, "SOURCE_EXTRA", "2");
  m.op = std::make_unique<GDALWarpOperation>();
  if (m.op->Initialize(m.options) != CE_None)
    throw Error("cannot set up the warper for " + source.describe() + ": " + CPLGetLastErrorMsg());
}

NearestWarper::~NearestWarper() = default;

void NearestWarper::warp(const Window& w, const std::vector<std::uint8_t*>& out) {
  Impl& m = *impl_;
  const size_t n = static_cast<size_t>(w.pixels());
  // WarpRegionToBuffer leaves INIT_DEST to its caller (WarpRegion's CreateDestinationBuffer): pixels it does not
  // reach keep what the buffer holds.
  std::vector<std::uint8_t> buffer(n * static_cast<size_t>(m.bands), m.fill);
  CPLErrorReset();
  CPLErr err = m.op->WarpRegionToBuffer(w.x0, w.y0, w.width, w.height, buffer.data(), GDT_Byte);
  if (auto failure = m.src->failure()) std::rethrow_exception(failure);
  if (err != CE_None) throw Error(std::string("warping failed: ") + CPLGetLastErrorMsg());
  for (int b = 0; b < m.bands && b < static_cast<int>(out.size()); ++b)
    std::memcpy(out[static_cast<size_t>(b)], buffer.data() + n * static_cast<size_t>(b), n);
}

}  // namespace s2crop::geo
