// The mosaic's pure pieces: aligned target grids, tile outlines in another CRS, which tiles a block needs, the
// overlap rule, and GDAL's warper reading through a callback (exact, window-independent, complete coverage); the
// streamed class COG writer.
#include <gtest/gtest.h>
#include <ogr_spatialref.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <numeric>
#include <unistd.h>

#include "s2crop/common/errors.hpp"
#include "s2crop/geo/class_raster.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/geo/warp.hpp"
#include "s2crop/pipeline/mosaic.hpp"

namespace fs = std::filesystem;
using namespace s2crop;

namespace {

// 32TQT and 33TUN windows around (12.72 E, 47.33 N): two UTM zones, overlapping across the zone border.
geo::Grid utm_tile(int epsg, double x0, double y0, int size) {
  return geo::Grid{geo::wkt_from_epsg(epsg), {x0, 10, 0, y0, 0, -10}, size, size};
}

std::array<double, 2> transform(int from, int to, double x, double y) {
  OGRSpatialReference a, b;
  a.importFromEPSG(from);
  b.importFromEPSG(to);
  a.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  b.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&a, &b));
  EXPECT_TRUE(ct && ct->Transform(1, &x, &y));
  return {x, y};
}

}  // namespace

TEST(MosaicGrid, AlignedToTheResolutionAndCoveringTheBounds) {
  const std::string wkt = geo::wkt_from_epsg(3035);
  geo::Grid g = geo::aligned_grid({1003.2, 2001.0, 1996.1, 2999.99}, 10, wkt);
  EXPECT_DOUBLE_EQ(g.geotransform[0], 1000);
  EXPECT_DOUBLE_EQ(g.geotransform[3], 3000);
  EXPECT_EQ(g.width, 100);
  EXPECT_EQ(g.height, 100);
  // Bounds already on multiples of the resolution stay as they are.
  g = geo::aligned_grid({-50, -20, 30, 40}, 10, wkt);
  EXPECT_DOUBLE_EQ(g.geotransform[0], -50);
  EXPECT_DOUBLE_EQ(g.geotransform[3], 40);
  EXPECT_EQ(g.width, 8);
  EXPECT_EQ(g.height, 6);
  EXPECT_THROW(geo::aligned_grid({0, 0, 0, 10}, 10, wkt), ConfigError);
  EXPECT_THROW(geo::aligned_grid({0, 0, 10, 10}, 0, wkt), ConfigError);
  EXPECT_THROW(geo::crs_wkt_from_user("EPSG:999999"), ConfigError);
  EXPECT_TRUE(geo::same_crs(geo::crs_wkt_from_user("EPSG:3035"), wkt));
}

TEST(MosaicGrid, OutlinesInTheTargetCrsAndTheirUnion) {
  const geo::Grid a = utm_tile(32632, 779580, 5250060, 300), b = utm_tile(32633, 326220, 5245860, 300);
  // In its own CRS the outline is the grid's outer edge, a point every `step` pixels.
  geo::Ring same = geo::grid_outline(a, a.crs_wkt, 32);
  EXPECT_EQ(same.size(), 4u * 10 + 1);  // ceil(300 / 32) = 10 per edge, closed
  geo::Bounds sb = geo::ring_bounds(same);
  EXPECT_DOUBLE_EQ(sb.xmin, 779580);
  EXPECT_DOUBLE_EQ(sb.xmax, 782580);
  EXPECT_DOUBLE_EQ(sb.ymax, 5250060);
  EXPECT_DOUBLE_EQ(sb.ymin, 5247060);

  const std::string laea = geo::wkt_from_epsg(3035);
  geo::Grid m = pipeline::mosaic_grid({a, b}, laea, 10);
  EXPECT_EQ(std::fmod(m.geotransform[0], 10.0), 0.0);
  EXPECT_EQ(std::fmod(m.geotransform[3], 10.0), 0.0);
  const double mx0 = m.geotransform[0], my1 = m.geotransform[3];
  const double mx1 = mx0 + 10.0 * m.width, my0 = my1 - 10.0 * m.height;
  geo::Bounds all{1e300, 1e300, -1e300, -1e300};
  for (const geo::Grid* t : {&a, &b}) {
    // Every corner, transformed on its own, lies in the grid; the grid adds less than a pixel on each side.
    const int epsg = t == &a ? 32632 : 32633;
    const auto& g = t->geotransform;
    for (auto [px, py] : {std::pair{0, 0}, {300, 0}, {300, 300}, {0, 300}}) {
      auto p = transform(epsg, 3035, g[0] + 10.0 * px, g[3] - 10.0 * py);
      EXPECT_GE(p[0], mx0);
      EXPECT_LE(p[0], mx1);
      EXPECT_GE(p[1], my0);
      EXPECT_LE(p[1], my1);
    }
    geo::Bounds tb = geo::ring_bounds(geo::grid_outline(*t, laea));
    all = {std::min(all.xmin, tb.xmin), std::min(all.ymin, tb.ymin), std::max(all.xmax, tb.xmax),
           std::max(all.ymax, tb.ymax)};
  }
  EXPECT_LT(all.xmin - mx0, 10);
  EXPECT_LT(mx1 - all.xmax, 10);
  EXPECT_LT(all.ymin - my0, 10);
  EXPECT_LT(my1 - all.ymax, 10);
  EXPECT_GE(all.xmin, mx0);
  EXPECT_LE(all.xmax, mx1);
}

TEST(MosaicGrid, TilesPerBlockFollowTheOutlinesWithAOnePixelMargin) {
  const std::string wkt = geo::wkt_from_epsg(32633);
  const geo::Grid target{wkt, {0, 10, 0, 1000, 0, -10}, 256, 64};
  const geo::Grid left{wkt, {0, 10, 0, 1000, 0, -10}, 100, 64};       // pixels 0..99
  const geo::Grid right{wkt, {1500, 10, 0, 1000, 0, -10}, 100, 64};   // pixels 150..249
  const geo::Grid edge{wkt, {1920, 10, 0, 1000, 0, -10}, 20, 20};     // pixels 192..211: starts on a block edge
  auto blocks = geo::cut_blocks(256, 64, 64);  // x 0, 64, 128, 192
  auto per = pipeline::tiles_per_block(target, blocks, {left, right, edge});
  ASSERT_EQ(per.size(), 4u);
  EXPECT_EQ(per[0], (std::vector<size_t>{0}));
  EXPECT_EQ(per[1], (std::vector<size_t>{0}));
  EXPECT_EQ(per[2], (std::vector<size_t>{1, 2}));  // 2 touches within the one-pixel margin
  EXPECT_EQ(per[3], (std::vector<size_t>{1, 2}));
  // A rotated square (diamond) meets a rectangle through an edge only, or through a corner inside it.
  geo::Ring diamond = {{50, 0}, {100, 50}, {50, 100}, {0, 50}, {50, 0}};
  EXPECT_TRUE(geo::ring_intersects_rect(diamond, 40, 40, 60, 60));     // rectangle inside, no vertex in it
  EXPECT_TRUE(geo::ring_intersects_rect(diamond, 90, 40, 200, 60));    // a vertex inside the rectangle
  EXPECT_TRUE(geo::ring_intersects_rect(diamond, 70, 10, 90, 25));     // edges cross, no vertex of either inside
  EXPECT_FALSE(geo::ring_intersects_rect(diamond, 0, 0, 20, 20));      // the corner the diamond cuts off
  EXPECT_FALSE(geo::ring_intersects_rect(diamond, 101, 0, 120, 100));
}

TEST(MosaicOverlap, HigherConfidenceThenTileOrderAndNoDataNeverWinsWhateverTheMergeOrder) {
  // pixel:                 0    1    2    3    4    5
  const std::vector<std::vector<std::uint8_t>> cls = {{1, 1, 255, 4, 255, 7},
                                                      {2, 2, 3, 255, 255, 8},
                                                      {5, 9, 6, 255, 255, 9}};
  const std::vector<std::vector<std::uint8_t>> conf = {{40, 60, 0, 10, 0, 50},
                                                       {50, 60, 90, 0, 0, 50},
                                                       {45, 61, 20, 0, 0, 50}};
  const std::vector<std::uint8_t> want_cls = {2, 9, 3, 4, 255, 7}, want_conf = {50, 61, 90, 10, 255, 50};
  std::vector<size_t> order = {0, 1, 2};
  do {
    std::vector<std::uint8_t> c(6, pipeline::kMosaicNoData), p(6, pipeline::kMosaicNoData);
    std::vector<std::uint16_t> w(6, 0xFFFF);
    for (size_t t : order)
      pipeline::merge_tile(6, cls[t].data(), conf[t].data(), static_cast<std::uint16_t>(t), c.data(), p.data(), w.data());
    EXPECT_EQ(c, want_cls) << order[0] << order[1] << order[2];
    EXPECT_EQ(p, want_conf);
  } while (std::next_permutation(order.begin(), order.end()));
}

namespace {

// A source "map" whose pixel (x, y) holds class x % 251 and confidence y % 251: every value says where it came from.
struct CodedSource {
  geo::Grid grid;
  int reads = 0;
  void read(int band, const geo::Window& w, std::uint8_t* out) {
    ++reads;
    for (int y = 0; y < w.height; ++y)
      for (int x = 0; x < w.width; ++x)
        out[static_cast<size_t>(y) * w.width + x] =
            static_cast<std::uint8_t>(band == 1 ? (w.x0 + x) % 251 : (w.y0 + y) % 251);
  }
};

}  // namespace

TEST(MosaicWarp, ExactNearestNeighbourIndependentOfTheWindowAndCoveringTheFootprint) {
  CodedSource src{utm_tile(32632, 779580, 5250060, 300)};
  const geo::Grid target = pipeline::mosaic_grid({src.grid}, geo::wkt_from_epsg(3035), 10);
  geo::NearestWarper warper(src.grid, 2, 64, [&](int b, const geo::Window& w, std::uint8_t* o) { src.read(b, w, o); },
                            target, 255);
  const size_t n = static_cast<size_t>(target.width) * target.height;
  std::vector<std::uint8_t> whole_c(n), whole_p(n);
  warper.warp({0, 0, target.width, target.height}, {whole_c.data(), whole_p.data()});
  EXPECT_GT(src.reads, 0);
  // The same pixels computed in odd-sized windows (37 px, as if the block size were 37).
  std::vector<std::uint8_t> tiled_c(n), tiled_p(n), bc, bp;
  for (auto& w : geo::cut_blocks(target.width, target.height, 37)) {
    bc.resize(static_cast<size_t>(w.pixels()));
    bp.resize(bc.size());
    warper.warp(w, {bc.data(), bp.data()});
    for (int y = 0; y < w.height; ++y)
      for (int x = 0; x < w.width; ++x) {
        const size_t i = static_cast<size_t>(w.y0 + y) * target.width + (w.x0 + x);
        tiled_c[i] = bc[static_cast<size_t>(y) * w.width + x];
        tiled_p[i] = bp[static_cast<size_t>(y) * w.width + x];
      }
  }
  EXPECT_EQ(whole_c, tiled_c);
  EXPECT_EQ(whole_p, tiled_p);
  // Every pixel centre inside the source gets the source pixel under it (transformed on its own, here with OGR);
  // every centre outside stays `fill`. Centres within 1e-6 px of a source pixel edge are left out (rounding).
  OGRSpatialReference a, b;
  a.importFromEPSG(3035);
  b.importFromEPSG(32632);
  a.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  b.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&a, &b));
  ASSERT_TRUE(ct);
  long inside = 0, outside = 0, wrong = 0;
  const auto& tg = target.geotransform;
  const auto& sg = src.grid.geotransform;
  for (int y = 0; y < target.height; ++y)
    for (int x = 0; x < target.width; ++x) {
      double X = tg[0] + (x + 0.5) * tg[1], Y = tg[3] + (y + 0.5) * tg[5];
      ASSERT_TRUE(ct->Transform(1, &X, &Y));
      const double sx = (X - sg[0]) / sg[1], sy = (Y - sg[3]) / sg[5];
      const double ex = std::abs(sx - std::round(sx)), ey = std::abs(sy - std::round(sy));
      if (ex < 1e-6 || ey < 1e-6) continue;
      const size_t i = static_cast<size_t>(y) * target.width + x;
      if (sx > 0 && sy > 0 && sx < 300 && sy < 300) {
        ++inside;
        const int px = static_cast<int>(sx), py = static_cast<int>(sy);
        if (whole_c[i] != px % 251 || whole_p[i] != py % 251) ++wrong;
      } else {
        ++outside;
        if (whole_c[i] != 255 || whole_p[i] != 255) ++wrong;
      }
    }
  EXPECT_GT(inside, 85000);
  EXPECT_GT(outside, 1000);
  EXPECT_EQ(wrong, 0);
}

TEST(MosaicWarp, ReaderErrorsComeThroughAsTheReadersException) {
  const geo::Grid src = utm_tile(32632, 779580, 5250060, 100);
  const geo::Grid target = pipeline::mosaic_grid({src}, geo::wkt_from_epsg(3035), 10);
  geo::NearestWarper warper(
      src, 2, 64, [](int, const geo::Window&, std::uint8_t*) { throw InputError("map.h5", "damaged chunk"); }, target,
      255);
  std::vector<std::uint8_t> c(static_cast<size_t>(target.width) * target.height), p(c.size());
  try {
    warper.warp({0, 0, target.width, target.height}, {c.data(), p.data()});
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_EQ(e.path(), "map.h5");
  }
}

TEST(MosaicCog, StreamedClassCogEqualsTheBlocksWithMetadataAndFailsCleanly) {
  const std::string dir = testing::TempDir() + "/s2crop_mosaic_" + std::to_string(::getpid());
  fs::create_directories(dir);
  const geo::Grid g{geo::wkt_from_epsg(3035), {4400000, 10, 0, 2700000, 0, -10}, 300, 200};
  auto value = [](int x, int y) { return static_cast<std::uint8_t>((x / 7 + y / 5) % 4 == 3 ? 255 : (x / 7 + y / 5) % 4); };
  int calls = 0;
  auto reader = [&](const geo::Window& w, std::uint8_t* out) {
    ++calls;
    EXPECT_EQ(w.x0 % 128, 0);
    EXPECT_EQ(w.y0 % 128, 0);
    for (int y = 0; y < w.height; ++y)
      for (int x = 0; x < w.width; ++x) out[static_cast<size_t>(y) * w.width + x] = value(w.x0 + x, w.y0 + y);
  };
  const std::vector<std::string> names = {"Maize", "Soy", "Rye"};
  const std::vector<std::array<std::uint8_t, 3>> colours = {{255, 211, 0}, {38, 112, 0}, {168, 0, 226}};
  geo::write_class_cog(dir + "/m.tif", g, reader, 128, names, colours, 255, {{"S2CROP_RUN_FINGERPRINT", "abc"}});
  EXPECT_GT(calls, 0);
  geo::RasterReader r(dir + "/m.tif");
  EXPECT_EQ(r.metadata_item("S2CROP_RUN_FINGERPRINT"), "abc");
  EXPECT_EQ(r.metadata_item("missing"), "");
  std::vector<std::uint8_t> back(static_cast<size_t>(g.width) * g.height);
  r.read(1, {0, 0, g.width, g.height}, back.data());
  long bad = 0;
  for (int y = 0; y < g.height; ++y)
    for (int x = 0; x < g.width; ++x) bad += back[static_cast<size_t>(y) * g.width + x] != value(x, y);
  EXPECT_EQ(bad, 0);
  double nodata = 0;
  EXPECT_TRUE(r.nodata(1, nodata));
  EXPECT_EQ(nodata, 255);
  // A reader that fails: its exception, and no file moved into place.
  auto failing = [](const geo::Window& w, std::uint8_t*) {
    if (w.x0 > 0) throw InputError("blocks/3.part", "damaged intermediate block");
  };
  EXPECT_THROW(geo::write_class_cog(dir + "/f.tif", g, failing, 128, names, colours), InputError);
  EXPECT_FALSE(fs::exists(dir + "/f.tif"));
  EXPECT_FALSE(fs::exists(dir + "/f.tif.tmp.tif"));
  fs::remove_all(dir);
}
