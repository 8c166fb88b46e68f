// Sample extraction pieces: border exclusion (and its independence of the block layout), the seeded per-class cap
// across ranks, contiguous rank ranges, rasterising real GeoPackage parcels in another CRS, label rasters warped
// onto a tile grid.
#include <gdal_priv.h>
#include <gtest/gtest.h>
#include <ogr_spatialref.h>
#include <ogrsf_frmts.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <random>
#include <set>

#include <unistd.h>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/geo/grid.hpp"
#include "s2crop/geo/label_raster.hpp"
#include "s2crop/geo/parcel_labels.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/geo/rasterize.hpp"
#include "s2crop/parallel/mpi.hpp"
#include "s2crop/samples/extract.hpp"

namespace fs = std::filesystem;
using namespace s2crop;

namespace {

// Parcels as rectangles of random size and class on a width x height grid; gaps stay unlabelled.
geo::ParcelLabels random_parcels(int width, int height, unsigned seed) {
  geo::ParcelLabels labels(geo::Window{0, 0, width, height});
  std::mt19937 rng(seed);
  std::int64_t id = 1;
  for (int y = 0; y < height;) {
    const int h = 3 + static_cast<int>(rng() % 12);
    for (int x = 0; x < width;) {
      const int w = 3 + static_cast<int>(rng() % 16);
      const bool labelled = rng() % 5 != 0;
      const auto cls = static_cast<std::uint8_t>(rng() % kCropClassCount);
      for (int yy = y; yy < std::min(height, y + h); ++yy)
        for (int xx = x; xx < std::min(width, x + w); ++xx) {
          const size_t i = static_cast<size_t>(yy) * width + xx;
          labels.parcel[i] = labelled ? id : geo::kNoParcel;
          labels.label[i] = labelled ? cls : kNoCropLabel;
        }
      ++id;
      x += w;
    }
    y += h;
  }
  return labels;
}

geo::ParcelLabels sub_labels(const geo::ParcelLabels& full, const geo::Window& w) {
  geo::ParcelLabels out(w);
  for (int y = 0; y < w.height; ++y)
    for (int x = 0; x < w.width; ++x) {
      const size_t from = static_cast<size_t>(w.y0 + y) * full.window.width + (w.x0 + x);
      const size_t to = static_cast<size_t>(y) * w.width + x;
      out.parcel[to] = full.parcel[from];
      out.label[to] = full.label[from];
    }
  return out;
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("s2crop-extract-test-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(std::random_device{}()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// A UTM 33N grid: 40 x 30 px of 10 m.
geo::Grid utm_grid() { return geo::Grid{geo::wkt_from_epsg(32633), {500000, 10, 0, 5300000, 0, -10}, 40, 30}; }

struct ParcelSpec {
  int x0, y0, x1, y1;  // pixel rectangle [x0, x1) x [y0, y1) of utm_grid()
  const char* class_name;
  int parcel_id;
};

// Writes the rectangles as polygons in EPSG:4326 (lon/lat), their edges densified so that the lines still follow
// the UTM rectangle; `with_parcel_id` false leaves the parcel field out (the FID then identifies parcels).
void write_wgs84_parcels(const std::string& path, const std::vector<ParcelSpec>& parcels, bool with_parcel_id,
                         const char* class_field = "crop") {
  geo::init_gdal();
  GDALDriver* drv = GetGDALDriverManager()->GetDriverByName("GPKG");
  ASSERT_NE(drv, nullptr);
  GDALDatasetUniquePtr ds(drv->Create(path.c_str(), 0, 0, 0, GDT_Unknown, nullptr));
  ASSERT_TRUE(ds);
  OGRSpatialReference wgs84, utm;
  wgs84.importFromEPSG(4326);
  wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  utm.importFromEPSG(32633);
  utm.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation> to_wgs84(OGRCreateCoordinateTransformation(&utm, &wgs84));
  OGRLayer* layer = ds->CreateLayer("fields", &wgs84, wkbPolygon, nullptr);
  ASSERT_NE(layer, nullptr);
  OGRFieldDefn name_field(class_field, OFTString), id_field("parcel_id", OFTInteger);
  ASSERT_EQ(layer->CreateField(&name_field), OGRERR_NONE);
  if (with_parcel_id) ASSERT_EQ(layer->CreateField(&id_field), OGRERR_NONE);
  const auto g = utm_grid().geotransform;
  for (const ParcelSpec& p : parcels) {
    OGRFeature feature(layer->GetLayerDefn());
    feature.SetField(class_field, p.class_name);
    if (with_parcel_id) feature.SetField("parcel_id", p.parcel_id);
    const double x0 = g[0] + g[1] * p.x0, x1 = g[0] + g[1] * p.x1;
    const double y0 = g[3] + g[5] * p.y0, y1 = g[3] + g[5] * p.y1;
    OGRLinearRing ring;
    const double corners[5][2] = {{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}, {x0, y0}};
    for (int c = 0; c < 4; ++c)
      for (int k = 0; k < 10; ++k) {
        const double t = k / 10.0;
        ring.addPoint(corners[c][0] + t * (corners[c + 1][0] - corners[c][0]),
                      corners[c][1] + t * (corners[c + 1][1] - corners[c][1]));
      }
    ring.closeRings();
    OGRPolygon polygon;
    polygon.addRing(&ring);
    ASSERT_EQ(polygon.transform(to_wgs84.get()), OGRERR_NONE);
    const OGREnvelope envelope = [&] {
      OGREnvelope e;
      polygon.getEnvelope(&e);
      return e;
    }();
    ASSERT_GT(envelope.MinX, 14.0);  // lon/lat order, near 15 E 47.8 N
    ASSERT_LT(envelope.MaxX, 16.0);
    ASSERT_GT(envelope.MinY, 47.0);
    feature.SetGeometry(&polygon);
    ASSERT_EQ(layer->CreateFeature(&feature), OGRERR_NONE);
  }
}

}  // namespace

TEST(BorderEligible, KeepsOnlyPixelsInsideOneParcel) {
  // 6 x 4: parcel 1 (class 2) in columns 0-3, parcel 2 (class 5) in columns 4-5.
  geo::ParcelLabels labels(geo::Window{0, 0, 6, 4});
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 6; ++x) {
      labels.parcel[static_cast<size_t>(y * 6 + x)] = x < 4 ? 1 : 2;
      labels.label[static_cast<size_t>(y * 6 + x)] = x < 4 ? 2 : 5;
    }
  labels.label[0] = kNoCropLabel;  // an unlabelled pixel in parcel 1's corner
  labels.parcel[0] = geo::kNoParcel;
  const auto mask = geo::border_eligible(labels, 1);
  // Neighbours beyond the window do not exclude; the parcel boundary (columns 3|4) and the hole at (0,0) do.
  const std::vector<std::uint8_t> expected = {0, 0, 1, 0, 0, 1,  //
                                              0, 0, 1, 0, 0, 1,  //
                                              1, 1, 1, 0, 0, 1,  //
                                              1, 1, 1, 0, 0, 1};
  EXPECT_EQ(mask, expected);
  // Same parcel id but another class also separates.
  labels.label[static_cast<size_t>(3 * 6 + 0)] = 7;
  EXPECT_EQ(geo::border_eligible(labels, 1)[static_cast<size_t>(2 * 6 + 1)], 0);
  // Border 0: every labelled pixel.
  const auto all = geo::border_eligible(labels, 0);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], labels.label[i] != kNoCropLabel ? 1 : 0);
  // Border 2 in a 4-wide parcel: no pixel is 2 away from both column 3|4 and the hole's neighbourhood.
  const auto wide = geo::border_eligible(labels, 2);
  EXPECT_EQ(std::count(wide.begin(), wide.begin() + 4, 1), 0);
}

TEST(BorderEligible, IndependentOfTheBlockLayoutWithAHalo) {
  const int width = 83, height = 61;
  const auto full = random_parcels(width, height, 11);
  for (int border : {0, 1, 2, 3}) {
    const auto whole = geo::border_eligible(full, border);
    ASSERT_GT(std::count(whole.begin(), whole.end(), 1), 100) << "fixture has too few eligible pixels";
    for (int block : {5, 8, 16, 64}) {
      std::vector<std::uint8_t> assembled(whole.size(), 9);
      for (auto& b : geo::cut_blocks(width, height, block)) {
        const auto grown = geo::grow_window(b, border, width, height);
        const auto mask = geo::crop_mask(geo::border_eligible(sub_labels(full, grown), border), grown, b);
        for (int y = 0; y < b.height; ++y)
          for (int x = 0; x < b.width; ++x)
            assembled[static_cast<size_t>(b.y0 + y) * width + b.x0 + x] = mask[static_cast<size_t>(y) * b.width + x];
      }
      EXPECT_EQ(assembled, whole) << "border " << border << ", block " << block;
      if (border > 0 && block <= 16) {
        // Without the halo the block edges would exclude pixels: the halo is what makes the result layout-free.
        std::vector<std::uint8_t> no_halo(whole.size(), 0);
        for (auto& b : geo::cut_blocks(width, height, block)) {
          const auto mask = geo::border_eligible(sub_labels(full, b), border);
          for (int y = 0; y < b.height; ++y)
            for (int x = 0; x < b.width; ++x)
              no_halo[static_cast<size_t>(b.y0 + y) * width + b.x0 + x] = mask[static_cast<size_t>(y) * b.width + x];
        }
        EXPECT_NE(no_halo, whole) << "border " << border << ", block " << block;
      }
    }
  }
}

TEST(SampleCap, HashIsAFunctionOfSeedTileAndPosition) {
  const auto h = samples::sample_hash(42, "33UVP", 10, 20);
  EXPECT_EQ(h, samples::sample_hash(42, "33UVP", 10, 20));
  EXPECT_NE(h, samples::sample_hash(43, "33UVP", 10, 20));
  EXPECT_NE(h, samples::sample_hash(42, "32TQT", 10, 20));
  EXPECT_NE(h, samples::sample_hash(42, "33UVP", 20, 10));
  EXPECT_NE(h, samples::sample_hash(42, "33UVP", 10, 21));
  // Roughly uniform: the top bit is set for about half of a tile's pixels.
  int high = 0, n = 0;
  for (int r = 0; r < 100; ++r)
    for (int c = 0; c < 100; ++c, ++n) high += samples::sample_hash(7, "33UVP", r, c) >> 63;
  EXPECT_NEAR(high / static_cast<double>(n), 0.5, 0.03);
}

TEST(SampleCap, SameSelectionWhateverTheRankSplit) {
  // 5000 candidates of one class in global order; cap 700.
  std::vector<std::uint64_t> hashes;
  for (int r = 0; r < 50; ++r)
    for (int c = 0; c < 100; ++c) hashes.push_back(samples::sample_hash(42, "33UVP", r, c));
  const size_t cap = 700;
  std::set<size_t> reference;
  for (int ranks : {1, 2, 3, 7, 16}) {
    // Contiguous slices like the extract stage; each rank keeps its cap smallest, rank 0 merges.
    std::vector<double> costs(hashes.size(), 1.0);
    const auto bounds = parallel::contiguous_ranges(costs, ranks);
    std::vector<std::uint64_t> merged;
    for (int r = 0; r < ranks; ++r) {
      samples::SmallestHashes local(cap);
      for (size_t i = bounds[static_cast<size_t>(r)]; i < bounds[static_cast<size_t>(r) + 1]; ++i)
        local.offer(hashes[i]);
      const auto sorted = local.sorted();
      EXPECT_TRUE(std::is_sorted(sorted.begin(), sorted.end()));
      EXPECT_LE(sorted.size(), cap);
      merged.insert(merged.end(), sorted.begin(), sorted.end());
    }
    const auto threshold = samples::keep_threshold(merged, cap);
    std::set<size_t> kept;
    for (size_t i = 0; i < hashes.size(); ++i)
      if (hashes[i] <= threshold) kept.insert(i);
    EXPECT_EQ(kept.size(), cap) << ranks << " ranks";
    if (reference.empty()) reference = kept;
    EXPECT_EQ(kept, reference) << ranks << " ranks";
  }
  // The kept ones are exactly the cap smallest hashes.
  auto sorted = hashes;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i : reference) EXPECT_LE(hashes[i], sorted[cap - 1]);
  // Fewer candidates than the cap, exactly the cap, or no cap: keep all.
  EXPECT_EQ(samples::keep_threshold({5, 1, 9}, 4), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(samples::keep_threshold({5, 1, 9}, 3), 9u);
  EXPECT_EQ(samples::keep_threshold({5, 1, 9}, 0), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(samples::keep_threshold({5, 1, 9, 3}, 2), 3u);
}

TEST(ContiguousRanges, CoverInOrderAndBalance) {
  std::vector<double> costs;
  for (int i = 0; i < 37; ++i) costs.push_back(1 + i % 5);
  const double total = std::accumulate(costs.begin(), costs.end(), 0.0);
  for (int ranks : {1, 2, 3, 8, 37, 50}) {
    const auto b = parallel::contiguous_ranges(costs, ranks);
    ASSERT_EQ(b.size(), static_cast<size_t>(ranks) + 1);
    EXPECT_EQ(b.front(), 0u);
    EXPECT_EQ(b.back(), costs.size());
    EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
    for (int r = 0; r < ranks; ++r) {
      double load = 0;
      for (size_t u = b[static_cast<size_t>(r)]; u < b[static_cast<size_t>(r) + 1]; ++u) load += costs[u];
      EXPECT_LE(load, total / ranks + 5.0) << ranks << " ranks, rank " << r;  // within one unit of the share
    }
  }
  EXPECT_EQ(parallel::contiguous_ranges({}, 3), (std::vector<size_t>{0, 0, 0, 0}));
}

TEST(Rasterize, Wgs84PolygonsOntoAUtmGrid) {
  TempDir tmp;
  const std::string path = (tmp.path / "parcels.gpkg").string();
  write_wgs84_parcels(path, {{5, 3, 15, 12, "Winter wheat", 101}, {20, 0, 40, 30, "maize", 102}}, true);
  geo::LabelSourceOptions options;
  options.class_field = "crop";
  geo::ParcelVector vector(path, options);
  EXPECT_EQ(vector.check_classes(), 0);
  const geo::Grid grid = utm_grid();
  const auto labels = vector.rasterize(grid, {0, 0, grid.width, grid.height});
  const int wheat = crop_class_id("Winter wheat"), maize = crop_class_id("Maize");
  for (int y = 0; y < grid.height; ++y)
    for (int x = 0; x < grid.width; ++x) {
      const size_t i = static_cast<size_t>(y) * grid.width + x;
      if (x >= 5 && x < 15 && y >= 3 && y < 12) {
        EXPECT_EQ(labels.label[i], wheat) << x << "," << y;
        EXPECT_EQ(labels.parcel[i], 101);
      } else if (x >= 20) {
        EXPECT_EQ(labels.label[i], maize) << x << "," << y;
        EXPECT_EQ(labels.parcel[i], 102);
      } else {
        EXPECT_EQ(labels.label[i], kNoCropLabel) << x << "," << y;
        EXPECT_EQ(labels.parcel[i], geo::kNoParcel);
      }
    }
  // A window gives the same pixels as the whole grid.
  const geo::Window w{3, 2, 19, 17};
  const auto part = vector.rasterize(grid, w);
  const auto expected = sub_labels(labels, w);
  EXPECT_EQ(part.label, expected.label);
  EXPECT_EQ(part.parcel, expected.parcel);
  // A grid elsewhere (another UTM zone, far away) gets no parcel.
  geo::Grid far{geo::wkt_from_epsg(32632), {600000, 10, 0, 5100000, 0, -10}, 20, 20};
  const auto none = vector.rasterize(far, {0, 0, 20, 20});
  EXPECT_TRUE(std::all_of(none.label.begin(), none.label.end(), [](auto v) { return v == kNoCropLabel; }));
}

TEST(Rasterize, FidWhenNoParcelFieldAndClearErrors) {
  TempDir tmp;
  const std::string path = (tmp.path / "parcels.gpkg").string();
  write_wgs84_parcels(path, {{0, 0, 10, 10, "Rye", 0}, {10, 0, 20, 10, "Soy", 0}}, false, "class_name");
  geo::LabelSourceOptions options;
  options.class_field = "class_name";
  geo::ParcelVector vector(path, options);
  const auto labels = vector.rasterize(utm_grid(), {0, 0, 40, 30});
  EXPECT_EQ(labels.parcel[5 * 40 + 5], 1);    // GeoPackage FIDs start at 1
  EXPECT_EQ(labels.parcel[5 * 40 + 15], 2);
  EXPECT_EQ(labels.label[5 * 40 + 15], crop_class_id("Soy"));

  // The class field is missing: the message names the file, the field and the fields there are.
  try {
    geo::ParcelVector wrong(path, geo::LabelSourceOptions{});
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("class_id"), std::string::npos) << m;
    EXPECT_NE(m.find("class_name"), std::string::npos) << m;
  }
  // A named parcel field that is absent is an error; the default one falls back to the FID.
  options.parcel_field = "lpis_id";
  options.parcel_field_required = true;
  EXPECT_THROW(geo::ParcelVector(path, options), InputError);
  options.parcel_field_required = false;
  options.layer = "nope";
  try {
    geo::ParcelVector wrong(path, options);
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("layers: fields"), std::string::npos) << e.what();
  }

  // An unknown class name: named with the file and the feature.
  const std::string bad = (tmp.path / "bad.gpkg").string();
  write_wgs84_parcels(bad, {{0, 0, 10, 10, "Rye", 0}, {10, 0, 20, 10, "Bananas", 0}}, false);
  geo::LabelSourceOptions bad_options;
  bad_options.class_field = "crop";
  geo::ParcelVector bad_vector(bad, bad_options);
  try {
    bad_vector.check_classes();
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("Bananas"), std::string::npos) << m;
    EXPECT_NE(m.find(bad), std::string::npos) << m;
  }
  EXPECT_THROW(bad_vector.rasterize(utm_grid(), {0, 0, 40, 30}), InputError);
}

TEST(LabelRasters, SameGridReadAsIsOtherGridWarpedNearest) {
  TempDir tmp;
  const geo::Grid grid = utm_grid();
  // Class raster: class = (x / 4) % 16, no label in row 0; parcel raster: one id per 4-column strip, 0 = none.
  std::vector<std::uint8_t> cls(static_cast<size_t>(grid.width) * grid.height);
  std::vector<std::uint32_t> parcels(cls.size());
  for (int y = 0; y < grid.height; ++y)
    for (int x = 0; x < grid.width; ++x) {
      const size_t i = static_cast<size_t>(y) * grid.width + x;
      cls[i] = y == 0 ? kNoCropLabel : static_cast<std::uint8_t>((x / 4) % 16);
      parcels[i] = y == 0 ? 0 : static_cast<std::uint32_t>(1000 + x / 4);
    }
  geo::WriteOptions o;
  o.driver = "GTiff";
  o.has_nodata = true;
  o.nodata = kNoCropLabel;
  geo::write_raster((tmp.path / "33UVP_class.tif").string(), grid, geo::PixelType::UInt8, {{cls.data(), "class"}}, o);
  o.nodata = 0;
  geo::write_raster((tmp.path / "33UVP_parcel.tif").string(), grid, geo::PixelType::UInt32,
                    {{parcels.data(), "parcel"}}, o);
  geo::LabelRasters folder(tmp.path.string());
  EXPECT_TRUE(folder.class_path("32TQT").empty());
  const auto none = folder.read("32TQT", grid, {0, 0, 8, 8});
  EXPECT_TRUE(std::all_of(none.label.begin(), none.label.end(), [](auto v) { return v == kNoCropLabel; }));
  const geo::Window w{2, 0, 30, 20};
  const auto same = folder.read("33UVP", grid, w);
  for (int y = 0; y < w.height; ++y)
    for (int x = 0; x < w.width; ++x) {
      const size_t i = static_cast<size_t>(y) * w.width + x, g = static_cast<size_t>(w.y0 + y) * grid.width + w.x0 + x;
      EXPECT_EQ(same.label[i], cls[g]);
      EXPECT_EQ(same.parcel[i], y == 0 ? geo::kNoParcel : static_cast<std::int64_t>(parcels[g]));
    }
  // A tile grid shifted by 2 px and extending 5 px past the raster: values move with the ground, outside is empty.
  geo::Grid shifted = grid;
  shifted.geotransform[0] += 20;
  shifted.width += 3;
  const auto warped = folder.read("33UVP", shifted, {0, 0, shifted.width, shifted.height});
  for (int y = 1; y < shifted.height; ++y)
    for (int x = 0; x < shifted.width; ++x) {
      const size_t i = static_cast<size_t>(y) * shifted.width + x;
      if (x + 2 < grid.width) {
        EXPECT_EQ(warped.label[i], cls[static_cast<size_t>(y) * grid.width + x + 2]) << x << "," << y;
        EXPECT_EQ(warped.parcel[i], parcels[static_cast<size_t>(y) * grid.width + x + 2]) << x << "," << y;
      } else {
        EXPECT_EQ(warped.label[i], kNoCropLabel) << x << "," << y;
        EXPECT_EQ(warped.parcel[i], geo::kNoParcel) << x << "," << y;
      }
    }
  // Through the dispatcher: a folder opens as label rasters, a missing path is a clear error.
  EXPECT_NE(dynamic_cast<geo::LabelRasters*>(geo::open_label_source(tmp.path.string(), {}).get()), nullptr);
  EXPECT_THROW(geo::open_label_source((tmp.path / "missing.gpkg").string(), {}), InputError);
}
