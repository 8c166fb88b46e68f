// Class-map outputs for people and GIS tools: the COG with colour table and category names, the quicklook with
// legend, and the confusion-matrix chart - each written, then reopened with GDAL and checked pixel by pixel.
#include <gtest/gtest.h>
#include <gdal_priv.h>

#include <filesystem>
#include <memory>
#include <unistd.h>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/geo/class_raster.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/viz/charts.hpp"
#include "s2crop/viz/class_map.hpp"
#include "s2crop/viz/draw.hpp"

namespace fs = std::filesystem;
using namespace s2crop;

namespace {
std::string temp_dir(const std::string& name) {
  std::string d = testing::TempDir() + "/s2crop_classout_" + name + "_" + std::to_string(::getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

struct Png {
  int width = 0, height = 0;
  std::vector<std::uint8_t> r, g, b;
  std::array<int, 3> at(int x, int y) const {
    size_t i = static_cast<size_t>(y) * width + x;
    return {r[i], g[i], b[i]};
  }
};

Png read_png(const std::string& path) {
  geo::init_gdal();
  std::unique_ptr<GDALDataset> ds(static_cast<GDALDataset*>(GDALOpen(path.c_str(), GA_ReadOnly)));
  EXPECT_TRUE(ds) << path;
  Png p;
  if (!ds) return p;
  EXPECT_EQ(std::string(ds->GetDriver()->GetDescription()), "PNG");
  EXPECT_EQ(ds->GetRasterCount(), 3);
  p.width = ds->GetRasterXSize();
  p.height = ds->GetRasterYSize();
  for (auto [band, out] : {std::pair{1, &p.r}, {2, &p.g}, {3, &p.b}}) {
    out->resize(static_cast<size_t>(p.width) * p.height);
    EXPECT_EQ(ds->GetRasterBand(band)->RasterIO(GF_Read, 0, 0, p.width, p.height, out->data(), p.width, p.height,
                                                GDT_Byte, 0, 0, nullptr),
              CE_None);
  }
  return p;
}
}  // namespace

TEST(ClassCog, ColourTableCategoryNamesNodataAndPixelsSurviveARoundTrip) {
  std::string dir = temp_dir("cog");
  geo::Grid grid{geo::wkt_from_epsg(32633), {500000, 10, 0, 5300000, 0, -10}, 700, 600};
  std::vector<std::uint8_t> classes(static_cast<size_t>(grid.width) * grid.height);
  for (int y = 0; y < grid.height; ++y)
    for (int x = 0; x < grid.width; ++x)
      classes[static_cast<size_t>(y) * grid.width + x] = x < 10 ? 255 : static_cast<std::uint8_t>((x / 50 + y / 50) % 3);
  std::vector<std::string> names = {"Maize", "Winter wheat", "Grassland"};
  std::vector<std::array<std::uint8_t, 3>> colours = {{255, 152, 0}, {198, 142, 23}, {76, 175, 80}};
  std::string path = dir + "/map.tif";
  geo::write_class_cog(path, grid, classes.data(), names, colours);
  EXPECT_FALSE(fs::exists(path + ".tmp.tif"));

  std::unique_ptr<GDALDataset> ds(static_cast<GDALDataset*>(GDALOpen(path.c_str(), GA_ReadOnly)));
  ASSERT_TRUE(ds);
  GDALRasterBand* band = ds->GetRasterBand(1);
  EXPECT_EQ(band->GetRasterDataType(), GDT_Byte);
  EXPECT_EQ(std::string(ds->GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") ? ds->GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") : ""), "COG");
  int has_nodata = 0;
  EXPECT_EQ(band->GetNoDataValue(&has_nodata), 255.0);
  EXPECT_TRUE(has_nodata);
  GDALColorTable* table = band->GetColorTable();
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(band->GetColorInterpretation(), GCI_PaletteIndex);
  for (size_t k = 0; k < colours.size(); ++k) {
    const GDALColorEntry* e = table->GetColorEntry(static_cast<int>(k));
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->c1, colours[k][0]);
    EXPECT_EQ(e->c2, colours[k][1]);
    EXPECT_EQ(e->c3, colours[k][2]);
    EXPECT_EQ(e->c4, 255);
  }
  ASSERT_NE(table->GetColorEntry(255), nullptr);
  EXPECT_EQ(table->GetColorEntry(255)->c4, 0);  // no data is transparent
  char** cats = band->GetCategoryNames();
  ASSERT_NE(cats, nullptr);
  ASSERT_GE(CSLCount(cats), 256);
  for (size_t k = 0; k < names.size(); ++k) EXPECT_EQ(std::string(cats[k]), names[k]);
  EXPECT_EQ(std::string(cats[255]), "no data");
  EXPECT_GE(band->GetOverviewCount(), 1);

  std::vector<std::uint8_t> back(classes.size());
  ASSERT_EQ(band->RasterIO(GF_Read, 0, 0, grid.width, grid.height, back.data(), grid.width, grid.height, GDT_Byte, 0,
                           0, nullptr),
            CE_None);
  EXPECT_EQ(back, classes);
  double gt[6];
  ds->GetGeoTransform(gt);
  EXPECT_EQ(gt[0], 500000);
  EXPECT_EQ(gt[3], 5300000);
  ds.reset();
  fs::remove_all(dir);
}

TEST(ClassCog, MismatchedNamesAndColoursAreAnOutputError) {
  geo::Grid grid{geo::wkt_from_epsg(32633), {500000, 10, 0, 5300000, 0, -10}, 4, 4};
  std::vector<std::uint8_t> classes(16, 0);
  EXPECT_THROW(geo::write_class_cog("/tmp/never.tif", grid, classes.data(), {"a", "b"}, {{1, 2, 3}}), OutputError);
  EXPECT_FALSE(fs::exists("/tmp/never.tif"));
}

TEST(ClassQuicklook, DownsampledByMajorityWithLegendOfPresentClassesAndGreyNodata) {
  std::string dir = temp_dir("ql");
  const int W = 3000, H = 1500;
  // Left third Maize (2), middle third Winter wheat (12) with a sprinkle of Soy (5) that must lose every vote,
  // right third no data.
  std::vector<std::uint8_t> classes(static_cast<size_t>(W) * H);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      classes[static_cast<size_t>(y) * W + x] = x < 1000 ? 2 : x < 2000 ? ((x + y) % 5 == 0 ? 5 : 12) : 255;
  std::string path = dir + "/q.png";
  viz::write_class_quicklook(path, classes.data(), W, H, viz::crop_legend(), 255, 1000);
  Png p = read_png(path);
  // factor 3: the map part is 1000 x 500, the legend panel to its right.
  EXPECT_GT(p.width, 1000);
  EXPECT_EQ(p.height, 500);
  const CropClass& maize = crop_class(2);
  const CropClass& wheat = crop_class(12);
  EXPECT_EQ(p.at(100, 250), (std::array<int, 3>{maize.r, maize.g, maize.b}));
  for (int x = 334; x < 666; x += 7)
    EXPECT_EQ(p.at(x, 123), (std::array<int, 3>{wheat.r, wheat.g, wheat.b})) << x;
  EXPECT_EQ(p.at(900, 400), (std::array<int, 3>{64, 64, 64}));
  // The legend shows a swatch for each class present (Soy included: it is in the map) and for no data.
  auto count_colour = [&](std::array<int, 3> c) {
    int n = 0;
    for (int y = 0; y < p.height; ++y)
      for (int x = 1000; x < p.width; ++x) n += p.at(x, y) == c;
    return n;
  };
  const CropClass& soy = crop_class(5);
  EXPECT_GT(count_colour({maize.r, maize.g, maize.b}), 50);
  EXPECT_GT(count_colour({soy.r, soy.g, soy.b}), 50);
  EXPECT_GT(count_colour({64, 64, 64}), 50);
  const CropClass& beet = crop_class(10);
  EXPECT_EQ(count_colour({beet.r, beet.g, beet.b}), 0);
  fs::remove_all(dir);
}

TEST(ClassLegend, CropClassesKeepTheirColoursOtherClassesGetDistinctGreys) {
  const auto legend = viz::class_legend({"Maize", "winter_wheat", "background", "field"});
  ASSERT_EQ(legend.names.size(), 4u);
  ASSERT_EQ(legend.colours.size(), 4u);
  const CropClass& maize = crop_class(crop_class_id("Maize"));
  EXPECT_EQ(legend.colours[0], (std::array<std::uint8_t, 3>{maize.r, maize.g, maize.b}));
  const CropClass& wheat = crop_class(crop_class_id("Winter wheat"));
  EXPECT_EQ(legend.colours[1], (std::array<std::uint8_t, 3>{wheat.r, wheat.g, wheat.b}));
  for (size_t i : {size_t{2}, size_t{3}}) {
    EXPECT_EQ(legend.colours[i][0], legend.colours[i][1]);
    EXPECT_EQ(legend.colours[i][1], legend.colours[i][2]);
  }
  EXPECT_NE(legend.colours[2], legend.colours[3]);
}

TEST(ConfusionChart, ShadesByRowShareAndLeavesOutEmptyClasses) {
  std::string dir = temp_dir("cm");
  std::string path = dir + "/c.png";
  // 3 classes, the middle one empty: the chart shows a 2 x 2 grid.
  viz::write_confusion_png(path, {90, 0, 10, 0, 0, 0, 30, 0, 70}, {"Maize", "Empty", "Rye"}, "test");
  Png two = read_png(path);
  viz::write_confusion_png(path, {90, 5, 10, 1, 1, 1, 30, 0, 70}, {"Maize", "Empty", "Rye"}, "test");
  Png three = read_png(path);
  EXPECT_GT(three.height, two.height);  // one more grid row (the width may be set by the captions)
  // Darkest cell: the 90 % one (top-left of the grid); the lightest of the four: 10 %. Find both by brightness.
  int darkest = 255 * 3;
  for (int y = 0; y < two.height; ++y)
    for (int x = 0; x < two.width; ++x) {
      auto c = two.at(x, y);
      if (c[2] > c[0] + 40) darkest = std::min(darkest, c[0] + c[1] + c[2]);  // blue-ish shade only
    }
  EXPECT_LT(darkest, 300);  // a 90 % cell is dark blue (white sums to 765)
  EXPECT_THROW(viz::write_confusion_png(path, {1, 2, 3}, {"a", "b"}), OutputError);
  fs::remove_all(dir);
}

TEST(ConfusionChart, CompactCounts) {
  EXPECT_EQ(viz::compact_count(987), "987");
  EXPECT_EQ(viz::compact_count(12345), "12.3k");
  EXPECT_EQ(viz::compact_count(4560000), "4.56M");
}

TEST(BitmapText, DrawsInsideItsBoxOnly) {
  viz::Image img(100, 40);
  viz::draw_text(img, 10, 10, "Wheat 42", {255, 0, 0}, 2);
  int inside = 0, outside = 0;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      bool lit = img.rgb[(static_cast<size_t>(y) * img.width + x) * 3] == 255;
      bool in_box = x >= 10 && x < 10 + viz::text_width("Wheat 42", 2) && y >= 10 && y < 10 + 2 * viz::kGlyphHeight;
      (in_box ? inside : outside) += lit;
    }
  EXPECT_GT(inside, 100);
  EXPECT_EQ(outside, 0);
}
