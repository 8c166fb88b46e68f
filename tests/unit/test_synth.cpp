// The synthetic Sentinel-2 region: determinism, rank independence, file contracts (STAC, SAFE, GeoPackage, labels),
// radiometric offset, cloud/SCL consistency and crop phenology.
#include <cpl_json.h>
#include <gdal_priv.h>
#include <gtest/gtest.h>
#include <ogr_spatialref.h>
#include <ogrsf_frmts.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <unistd.h>
#include <cmath>
#include <sstream>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/synth/generator.hpp"
#include "s2crop/synth/phenology.hpp"
#include "s2crop/synth/region.hpp"
#include "s2crop/synth/scene.hpp"
#include "s2crop/synth/writers.hpp"

namespace fs = std::filesystem;
using namespace s2crop;
using namespace s2crop::synth;

namespace {

std::string temp_dir(const std::string& name) {
  std::string d = testing::TempDir() + "/s2crop_synth_" + name + "_" + std::to_string(::getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::uint16_t> read_u16(const std::string& path) {
  geo::RasterReader r(path);
  std::vector<std::uint16_t> v(static_cast<size_t>(r.grid().width) * r.grid().height);
  r.read(1, {0, 0, r.grid().width, r.grid().height}, v.data());
  return v;
}
std::vector<std::uint8_t> read_u8(const std::string& path) {
  geo::RasterReader r(path);
  std::vector<std::uint8_t> v(static_cast<size_t>(r.grid().width) * r.grid().height);
  r.read(1, {0, 0, r.grid().width, r.grid().height}, v.data());
  return v;
}

// Every regular file under `root`, relative path -> content.
std::map<std::string, std::string> tree(const std::string& root, const std::string& under) {
  std::map<std::string, std::string> out;
  for (auto& e : fs::recursive_directory_iterator(root + "/" + under))
    if (e.is_regular_file()) out[fs::relative(e.path(), root).string()] = slurp(e.path().string());
  return out;
}

SynthConfig tiny(const std::string& out) {
  SynthConfig c;
  c.out_dir = out;
  c.tiles = {"33UVP"};
  c.size = 60;
  c.start = sentinel2::Date{2022, 1, 15};
  c.days = 20;
  c.revisit = 5;
  c.gap_fraction = 0;
  c.cloud_cover = 0.4;
  return c;
}

}  // namespace

TEST(CropClasses, SixteenTimeSen2CropClassesInOrder) {
  const auto& c = crop_classes();
  ASSERT_EQ(c.size(), 16u);
  const char* names[] = {"Legumes", "Grassland", "Maize", "Potato", "Sunflower", "Soy", "Winter barley",
                         "Winter caraway", "Rye", "Rapeseed", "Beet", "Spring cereals", "Winter wheat",
                         "Winter triticale", "Permanent plantation", "Other crops"};
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(c[static_cast<size_t>(i)].id, i);
    EXPECT_EQ(c[static_cast<size_t>(i)].name, names[i]);
  }
  EXPECT_EQ(crop_class_id("winter_wheat"), 12);
  EXPECT_EQ(crop_class_id("Tomato"), -1);
  EXPECT_THROW(crop_class(16), ConfigError);
}

TEST(SynthRegion, TilesSitAtTheirMgrsSquares) {
  TileSpec uvp = make_tile("33UVP", 0, 1098, 42);
  EXPECT_EQ(uvp.epsg, 32633);
  EXPECT_DOUBLE_EQ(uvp.grid10.geotransform[0], 399960.0);
  EXPECT_DOUBLE_EQ(uvp.grid10.geotransform[3], 5400000.0);
  EXPECT_EQ(uvp.grid20.width, 549);
  TileSpec qt = make_tile("32TQT", 1, 1098, 42);
  EXPECT_EQ(qt.epsg, 32632);
  EXPECT_DOUBLE_EQ(qt.grid10.geotransform[0], 699960.0);
  TileSpec um = make_tile("33TUM", 2, 1098, 42);
  for (const TileSpec* t : {&uvp, &qt, &um}) {
    EXPECT_EQ(std::fmod(t->grid10.geotransform[0], 60.0), 0.0) << t->name;
    EXPECT_EQ(std::fmod(t->grid10.geotransform[3], 60.0), 0.0) << t->name;
    auto ring = t->footprint_lonlat();
    EXPECT_NEAR(ring[0][1], 47.5, 1.5) << t->name;  // Austria
    EXPECT_NEAR(ring[0][0], 13.0, 2.0) << t->name;
  }
  int f = 0;
  EXPECT_TRUE(uvp.grid10.is_aligned_coarser(uvp.grid20, f));
  EXPECT_EQ(f, 2);
}

TEST(SynthRegion, SubsetAtCentresEveryTilesWindowOnThePoint) {
  // 32TQT (zone 32) and its zone-33 neighbour 33TUN overlap across the zone border around 12.72 E, 47.33 N.
  const std::array<double, 2> point = {12.72, 47.33};
  for (const char* name : {"32TQT", "33TUN"}) {
    TileSpec plain = make_tile(name, 0, 300, 42);
    TileSpec sub = make_tile(name, 0, 300, 42, point);
    OGRSpatialReference wgs, utm;
    wgs.importFromEPSG(4326);
    utm.importFromEPSG(sub.epsg);
    wgs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    utm.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&wgs, &utm));
    double x = point[0], y = point[1];
    ASSERT_TRUE(ct->Transform(1, &x, &y));
    const auto& g = sub.grid10.geotransform;
    // Centred within half a 60 m step, on the 60 m lattice, inside the tile's 109.8 km extent; the rest unchanged.
    EXPECT_LE(std::abs(g[0] + 1500 - x), 30.0) << name;
    EXPECT_LE(std::abs(g[3] - 1500 - y), 30.0) << name;
    EXPECT_EQ(std::fmod(g[0], 60.0), 0.0) << name;
    EXPECT_EQ(std::fmod(g[3], 60.0), 0.0) << name;
    const auto& p = plain.grid10.geotransform;
    EXPECT_GE(g[0], p[0]);
    EXPECT_LE(g[0] + 3000, p[0] + 109800);
    EXPECT_LE(g[3], p[3]);
    EXPECT_GE(g[3] - 3000, p[3] - 109800);
    EXPECT_EQ(sub.grid10.width, 300);
    EXPECT_EQ(sub.grid20.geotransform[0], g[0]);
    EXPECT_EQ(sub.grid20.width, 150);
    EXPECT_EQ(sub.seed, plain.seed);
  }
  EXPECT_DOUBLE_EQ(make_tile("32TQT", 0, 300, 42, point).grid10.geotransform[0], 779580.0);
  EXPECT_DOUBLE_EQ(make_tile("33TUN", 0, 300, 42, point).grid10.geotransform[0], 326220.0);
  // Near a tile's edge the window is clamped inside the tile: 32TQT's west edge is at x 699960 (about 11.635 E).
  TileSpec west = make_tile("32TQT", 0, 600, 42, std::array<double, 2>{11.66, 47.3});
  EXPECT_DOUBLE_EQ(west.grid10.geotransform[0], 699960.0);
  // A point outside a tile is a ConfigError naming the tile; the default placement is unchanged.
  try {
    make_tile("32TQT", 0, 300, 42, std::array<double, 2>{15.0, 47.33});
    FAIL() << "no error for a point outside the tile";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("32TQT"), std::string::npos) << e.what();
  }
  EXPECT_DOUBLE_EQ(make_tile("32TQT", 1, 1098, 42).grid10.geotransform[0], 699960.0);
  const std::array<double, 2> want = {12.72, 47.33};
  EXPECT_EQ(parse_lon_lat(" 12.72 , 47.33", "subset-at"), want);
  EXPECT_THROW(parse_lon_lat("12.72", "subset-at"), ConfigError);
  EXPECT_THROW(parse_lon_lat("12.72,47.33,3", "subset-at"), ConfigError);
  EXPECT_THROW(parse_lon_lat("200,47", "subset-at"), ConfigError);
  // Through the region plan, as `synth --subset-at` uses it.
  SynthConfig c;
  c.out_dir = "/nonexistent";
  c.tiles = {"32TQT", "33TUN"};
  c.size = 300;
  c.subset_at = point;
  Region r = Region::plan(c);
  EXPECT_DOUBLE_EQ(r.tiles[1].grid10.geotransform[0], 326220.0);
}

TEST(SynthRegion, AcquisitionPlan) {
  SynthConfig c;
  c.out_dir = "/nonexistent";
  Region r = Region::plan(c);
  ASSERT_EQ(r.tiles.size(), 3u);
  std::map<int, int> per_tile;
  for (auto& a : r.acquisitions) {
    ++per_tile[a.tile];
    long k = (a.date.days_since_epoch() - c.start.days_since_epoch());
    EXPECT_EQ(k % 5, 0);
    EXPECT_EQ(a.platform, (k / 5) % 2 == 0 ? 'A' : 'B');
    const sentinel2::Date switch_date{2022, 1, 25};
    EXPECT_EQ(a.boa_offset(), a.date < switch_date ? 0 : -1000);
  }
  for (auto& [t, n] : per_tile) {
    EXPECT_LT(n, 73) << "some acquisitions are dropped";
    EXPECT_GT(n, 55);
  }
  Acquisition first;
  first.date = c.start;
  EXPECT_EQ(first.stac_id(r.tiles[0]), "S2A_32TQT_20210901_0_L2A");
  EXPECT_EQ(first.safe_name(r.tiles[0]), "S2A_MSIL2A_20210901T102031_N0301_R065_T32TQT_20210901T120000.SAFE");
  // Plans do not depend on the other tiles of the list.
  c.tiles = {"33UVP"};
  Region r1 = Region::plan(c);
  std::vector<std::string> a, b;
  for (auto& x : r.acquisitions)
    if (x.tile == 2) a.push_back(x.date.iso());
  for (auto& x : r1.acquisitions) b.push_back(x.date.iso());
  EXPECT_EQ(a, b);
}

TEST(SynthRegion, BadOptionsAreConfigErrors) {
  SynthConfig c;
  c.out_dir = "/tmp/x";
  c.size = 100;
  EXPECT_THROW(c.validate(), ConfigError);
  EXPECT_THROW(parse_tile_list("33UVP,99XXX"), ConfigError);
  EXPECT_THROW(parse_tile_list("33UIP"), ConfigError);
  const std::vector<std::string> want = {"33UVP", "32TQT"};
  EXPECT_EQ(parse_tile_list(" 33uvp , 32TQT"), want);
  EXPECT_THROW(parse_layout("zarr"), ConfigError);
}

TEST(SynthPhenology, CropCalendars) {
  FieldParams p;  // no shift, no previous crop
  auto green = [&](int cls, int month, int day) {
    return crop_canopy(cls, season_day(sentinel2::Date{month >= 9 ? 2021 : 2022, month, day}), p).green;
  };
  // Winter cereals: green in autumn and spring, harvested in July.
  for (int c : {6, 8, 12, 13}) {
    EXPECT_GT(green(c, 11, 20), 0.15) << c;
    EXPECT_GT(green(c, 4, 25), 0.6) << c;
    EXPECT_LT(green(c, 8, 10), 0.15) << c;
  }
  // Maize: late.
  EXPECT_LT(green(2, 4, 25), 0.1);
  EXPECT_GT(green(2, 8, 1), 0.8);
  // Rapeseed flowers yellow in late April/May.
  EXPECT_GT(crop_canopy(9, season_day(sentinel2::Date{2022, 4, 28}), p).yellow, 0.3);
  // Grassland cuts: a sudden drop, then regrowth.
  p.cuts = 2;
  p.cut_day = {260, 330, 1e9, 1e9};
  double before = crop_canopy(1, 258, p).green, after = crop_canopy(1, 262, p).green,
         later = crop_canopy(1, 295, p).green;
  EXPECT_LT(after, 0.6 * before);
  EXPECT_GT(later, 0.85 * before);
}

TEST(SynthScene, OffsetShiftsDnByThousandFrom20220125) {
  TileSpec tile = make_tile("33UVP", 0, 600, 7);
  FieldLayout layout = make_field_layout(600, tile.seed);
  auto mean_road_b02 = [&](sentinel2::Date d) {
    Acquisition a;
    a.date = d;
    a.seed = 99;  // same noise both times
    Scene s = render_scene(tile, layout, a);
    double sum = 0;
    long n = 0;
    for (size_t i = 0; i < layout.unit.size(); ++i)
      if (layout.unit[i] <= 2 && layout.unit[i] != 1 && layout.partner[i] < 0) sum += s.dn[0][i], ++n;  // road, built
    EXPECT_GT(n, 50);
    return sum / n;
  };
  double before = mean_road_b02({2022, 1, 20}), after = mean_road_b02({2022, 1, 30});
  EXPECT_NEAR(after - before, 1000.0, 5.0);
}

TEST(SynthGenerate, ReproducibleAndIndependentOfRankCount) {
  std::string a = temp_dir("rep_a"), b = temp_dir("rep_b"), c = temp_dir("rep_c");
  generate(Region::plan(tiny(a)), 0, 1);
  generate(Region::plan(tiny(b)), 0, 1);
  generate(Region::plan(tiny(c)), 1, 3);  // the ranks of a 3-rank run, in any order
  generate(Region::plan(tiny(c)), 2, 3);
  generate(Region::plan(tiny(c)), 0, 3);
  auto ta = tree(a, "stac"), tb = tree(b, "stac"), tc = tree(c, "stac");
  ASSERT_EQ(ta.size(), 4u * 12u);  // 4 dates x (10 bands + SCL + item)
  EXPECT_TRUE(ta == tb) << "two runs with the same seed differ";
  EXPECT_TRUE(ta == tc) << "a 3-rank run differs from a 1-rank run";
  EXPECT_EQ(slurp(a + "/labels/33UVP_class.tif"), slurp(c + "/labels/33UVP_class.tif"));
  EXPECT_EQ(slurp(a + "/region.json"), slurp(b + "/region.json"));
  SynthConfig other = tiny(temp_dir("rep_d"));
  other.seed = 43;
  generate(Region::plan(other), 0, 1);
  EXPECT_NE(slurp(a + "/stac/33UVP/2022/1/S2A_33UVP_20220115_0_L2A/B04.tif"),
            slurp(other.out_dir + "/stac/33UVP/2022/1/S2A_33UVP_20220115_0_L2A/B04.tif"));
  for (auto& d : {a, b, c, other.out_dir}) fs::remove_all(d);
}

TEST(SynthGenerate, SafeLayoutAndMetadata) {
  std::string out = temp_dir("safe");
  SynthConfig c = tiny(out);
  c.layout = Layout::Both;
  generate(Region::plan(c), 0, 1);
  std::string before = out + "/safe/S2A_MSIL2A_20220115T102031_N0301_R065_T33UVP_20220115T120000.SAFE";
  std::string after = out + "/safe/S2B_MSIL2A_20220130T102031_N0500_R065_T33UVP_20220130T120000.SAFE";
  ASSERT_TRUE(fs::exists(before + "/MTD_MSIL2A.xml"));
  ASSERT_TRUE(fs::exists(after + "/MTD_MSIL2A.xml"));
  std::string xb = slurp(before + "/MTD_MSIL2A.xml"), xa = slurp(after + "/MTD_MSIL2A.xml");
  EXPECT_NE(xb.find("<PROCESSING_BASELINE>03.01</PROCESSING_BASELINE>"), std::string::npos);
  EXPECT_NE(xa.find("<PROCESSING_BASELINE>05.00</PROCESSING_BASELINE>"), std::string::npos);
  EXPECT_NE(xa.find("<BOA_QUANTIFICATION_VALUE unit=\"none\">10000</BOA_QUANTIFICATION_VALUE>"), std::string::npos);
  EXPECT_NE(xa.find("<BOA_ADD_OFFSET band_id=\"12\">-1000</BOA_ADD_OFFSET>"), std::string::npos);
  EXPECT_NE(xb.find("<BOA_ADD_OFFSET band_id=\"0\">0</BOA_ADD_OFFSET>"), std::string::npos);
  EXPECT_NE(xa.find("<PRODUCT_URI>S2B_MSIL2A_20220130T102031_N0500_R065_T33UVP_20220130T120000.SAFE</PRODUCT_URI>"),
            std::string::npos);
  // GDAL parses it as XML with the real nesting.
  CPLXMLNode* root = CPLParseXMLString(xa.c_str());
  ASSERT_NE(root, nullptr);
  const char* q = CPLGetXMLValue(root, "=n1:Level-2A_User_Product.n1:General_Info.Product_Image_Characteristics."
                                       "QUANTIFICATION_VALUES_LIST.BOA_QUANTIFICATION_VALUE", nullptr);
  ASSERT_NE(q, nullptr);
  EXPECT_STREQ(q, "10000");
  CPLDestroyXMLNode(root);
  std::string img = after + "/GRANULE/L2A_T33UVP_A000000_20220130T102031/IMG_DATA/";
  geo::RasterReader b02(img + "R10m/T33UVP_20220130T102031_B02_10m.tif");
  geo::RasterReader scl(img + "R20m/T33UVP_20220130T102031_SCL_20m.tif");
  EXPECT_EQ(b02.grid().width, 60);
  EXPECT_EQ(scl.grid().width, 30);
  // Same pixels as the STAC COG of that date.
  EXPECT_EQ(read_u16(img + "R10m/T33UVP_20220130T102031_B02_10m.tif"),
            read_u16(out + "/stac/33UVP/2022/1/S2B_33UVP_20220130_0_L2A/B02.tif"));
  fs::remove_all(out);
}

// One realistic small region shared by the content tests.
class SynthRegionFiles : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(temp_dir("region"));
    SynthConfig c;
    c.out_dir = *dir_;
    c.tiles = {"33UVP", "32TQT"};
    c.size = 180;
    c.revisit = 10;
    region_ = new Region(Region::plan(c));
    generate(*region_, 0, 1);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete region_;
  }
  static std::string* dir_;
  static Region* region_;
};
std::string* SynthRegionFiles::dir_ = nullptr;
Region* SynthRegionFiles::region_ = nullptr;

TEST_F(SynthRegionFiles, StacItemsParseAndTheirHrefsExist) {
  int items = 0;
  for (const Acquisition& a : region_->acquisitions) {
    const TileSpec& t = region_->tiles[static_cast<size_t>(a.tile)];
    std::string dir = stac_item_dir(*dir_, t, a);
    CPLJSONDocument doc;
    ASSERT_TRUE(doc.Load(dir + "/" + a.stac_id(t) + ".json")) << dir;
    CPLJSONObject root = doc.GetRoot();
    EXPECT_EQ(root.GetString("type"), "Feature");
    EXPECT_EQ(root.GetString("id"), a.stac_id(t));
    EXPECT_EQ(root.GetArray("bbox").Size(), 4);
    CPLJSONObject p = root.GetObj("properties");
    EXPECT_EQ(p.GetString("datetime"), a.date.iso() + "T10:20:31Z");
    EXPECT_EQ(p.GetInteger("proj:epsg"), t.epsg);
    EXPECT_EQ(p.GetInteger("mgrs:utm_zone"), t.zone);
    EXPECT_EQ(p.GetString("mgrs:grid_square"), t.grid_square);
    EXPECT_FALSE(p.GetBool("earthsearch:boa_offset_applied", true));
    bool new_baseline = !(a.date < sentinel2::Date{2022, 1, 25});
    EXPECT_EQ(p.GetString("s2:processing_baseline"), new_baseline ? "05.00" : "03.01");
    double cc = p.GetDouble("eo:cloud_cover", -1);
    EXPECT_GE(cc, 0);
    EXPECT_LE(cc, 100);
    CPLJSONObject assets = root.GetObj("assets");
    for (const char* key : {"blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "swir16",
                            "swir22", "scl"}) {
      CPLJSONObject asset = assets.GetObj(key);
      ASSERT_TRUE(asset.IsValid()) << key;
      std::string href = asset.GetString("href");
      ASSERT_EQ(href.substr(0, 2), "./");
      EXPECT_TRUE(fs::exists(dir + "/" + href.substr(2))) << href;
      if (std::string(key) != "scl") {
        CPLJSONObject rb = asset.GetArray("raster:bands")[0];
        EXPECT_DOUBLE_EQ(rb.GetDouble("scale"), 0.0001);
        EXPECT_DOUBLE_EQ(rb.GetDouble("offset"), new_baseline ? -0.1 : 0.0);
        EXPECT_EQ(rb.GetInteger("nodata", -1), 0);
      }
    }
    ++items;
  }
  EXPECT_GT(items, 50);
}

TEST_F(SynthRegionFiles, CogsAreTiledWithTheRightGrids) {
  const Acquisition& a = region_->acquisitions[3];
  const TileSpec& t = region_->tiles[static_cast<size_t>(a.tile)];
  std::string dir = stac_item_dir(*dir_, t, a);
  geo::RasterReader b04(dir + "/B04.tif"), b11(dir + "/B11.tif"), scl(dir + "/SCL.tif");
  EXPECT_TRUE(b04.grid().same_as(t.grid10));
  EXPECT_TRUE(b11.grid().same_as(t.grid20));
  EXPECT_TRUE(scl.grid().same_as(t.grid20));
  double nd = -1;
  EXPECT_TRUE(b04.nodata(1, nd));
  EXPECT_EQ(nd, 0);
  GDALDataset* ds = static_cast<GDALDataset*>(GDALOpen((dir + "/B04.tif").c_str(), GA_ReadOnly));
  ASSERT_NE(ds, nullptr);
  EXPECT_STREQ(ds->GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE"), "COG");
  EXPECT_STREQ(ds->GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE"), "DEFLATE");
  EXPECT_EQ(ds->GetRasterBand(1)->GetRasterDataType(), GDT_UInt16);
  GDALClose(ds);
}

TEST_F(SynthRegionFiles, SclIsConsistentWithReflectanceAndNoData) {
  long bright = 0, bright_cloud = 0, cloudy_dates = 0, clear_dates = 0, shadow = 0, cirrus = 0;
  for (const Acquisition& a : region_->acquisitions) {
    const TileSpec& t = region_->tiles[static_cast<size_t>(a.tile)];
    std::string dir = stac_item_dir(*dir_, t, a);
    auto b02 = read_u16(dir + "/B02.tif");
    auto b11 = read_u16(dir + "/B11.tif");
    auto scl = read_u8(dir + "/SCL.tif");
    int n20 = t.grid20.width, n10 = t.grid10.width;
    long cloud = 0;
    for (int y = 0; y < n20; ++y)
      for (int x = 0; x < n20; ++x) {
        size_t i = static_cast<size_t>(y) * n20 + x;
        std::uint8_t c = scl[i];
        // No data exactly where SCL says so, and real data strictly > 0.
        ASSERT_EQ(c == 0, b11[i] == 0) << a.stac_id(t) << " x=" << x << " y=" << y;
        if (c == 0) continue;
        double sum = 0;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) {
            std::uint16_t v = b02[static_cast<size_t>(2 * y + dy) * n10 + 2 * x + dx];
            ASSERT_GT(v, 0);
            sum += v;
          }
        double refl = (sum / 4 + a.boa_offset()) / 10000.0;
        if (refl > 0.3) {
          ++bright;
          bright_cloud += (c == 8 || c == 9);
        }
        cloud += (c == 8 || c == 9);
        shadow += c == 3;
        cirrus += c == 10;
      }
    double frac = static_cast<double>(cloud) / (n20 * n20);
    cloudy_dates += frac > 0.9;
    clear_dates += frac < 0.05;
  }
  EXPECT_GT(bright, 1000);
  EXPECT_GT(static_cast<double>(bright_cloud) / bright, 0.97) << "cloud-bright pixels not flagged as cloud";
  EXPECT_GT(cloudy_dates, 0) << "no nearly fully cloudy date";
  EXPECT_GT(clear_dates, 5) << "too few clear dates";
  EXPECT_GT(shadow, 0);
  EXPECT_GT(cirrus, 0);
}

TEST_F(SynthRegionFiles, PhenologyVisibleInNdviAndOffsetInDn) {
  // Mean NDVI of clear parcel-interior pixels per class and month, from the files as a user reads them.
  std::map<std::pair<int, int>, std::pair<double, long>> ndvi;  // (class, month) -> sum, count
  std::map<bool, std::pair<double, long>> water_dn;             // after switch? -> B02 DN of clear water/dark pixels
  for (const Acquisition& a : region_->acquisitions) {
    const TileSpec& t = region_->tiles[static_cast<size_t>(a.tile)];
    std::string dir = stac_item_dir(*dir_, t, a);
    auto cls = read_u8(*dir_ + "/labels/" + t.name + "_class.tif");
    auto b04 = read_u16(dir + "/B04.tif");
    auto b08 = read_u16(dir + "/B08.tif");
    auto scl = read_u8(dir + "/SCL.tif");
    int n10 = t.grid10.width, n20 = t.grid20.width;
    for (int y = 1; y < n10 - 1; ++y)
      for (int x = 1; x < n10 - 1; ++x) {
        size_t i = static_cast<size_t>(y) * n10 + x;
        std::uint8_t s = scl[static_cast<size_t>(y / 2) * n20 + x / 2];
        if (s != 4 && s != 5) continue;
        if (cls[i] == 255 || cls[i - 1] != cls[i] || cls[i + 1] != cls[i] || cls[i - n10] != cls[i] ||
            cls[i + n10] != cls[i])
          continue;
        double red = b04[i] + a.boa_offset(), nir = b08[i] + a.boa_offset();
        auto& e = ndvi[{cls[i], a.date.month}];
        e.first += (nir - red) / (nir + red);
        ++e.second;
      }
  }
  auto mean = [&](int c, int m) {
    auto& e = ndvi[{c, m}];
    EXPECT_GT(e.second, 20) << "class " << c << " month " << m << " has too few clear pixels";
    return e.first / std::max(1L, e.second);
  };
  EXPECT_GT(mean(12, 4), mean(12, 8) + 0.2) << "winter wheat: April greener than August";
  EXPECT_GT(mean(2, 8), mean(2, 4) + 0.3) << "maize: August greener than April";
  EXPECT_GT(mean(1, 6), 0.5) << "grassland green in June";
}

TEST_F(SynthRegionFiles, DnCarryTheOffsetAcrossTheBaselineChange) {
  // The same surface seen before and after 2022-01-25: reflectance continuous, DN jumps by +1000.
  auto stats = [&](sentinel2::Date from, sentinel2::Date to, double& dn, double& refl) {
    double s = 0;
    long n = 0;
    int offset = 0;
    for (const Acquisition& a : region_->acquisitions) {
      if (a.tile != 0 || a.date < from || to < a.date) continue;
      const TileSpec& t = region_->tiles[0];
      std::string dir = stac_item_dir(*dir_, t, a);
      auto cls = read_u8(*dir_ + "/labels/" + t.name + "_class.tif");
      auto b12 = read_u16(dir + "/B12.tif");
      auto scl = read_u8(dir + "/SCL.tif");
      for (size_t i = 0; i < scl.size(); ++i) {
        int x = static_cast<int>(i) % t.grid20.width, y = static_cast<int>(i) / t.grid20.width;
        if (scl[i] != 5 || cls[static_cast<size_t>(2 * y) * t.grid10.width + 2 * x] != 12) continue;  // bare wheat soil
        s += b12[i];
        ++n;
      }
      offset = a.boa_offset();
    }
    EXPECT_GT(n, 10);
    dn = s / std::max(1L, n);
    refl = (dn + offset) / 10000.0;
  };
  double dn_before, r_before, dn_after, r_after;
  stats({2021, 12, 1}, {2022, 1, 24}, dn_before, r_before);
  stats({2022, 1, 25}, {2022, 3, 10}, dn_after, r_after);
  EXPECT_NEAR(dn_after - dn_before, 1000, 250);
  EXPECT_NEAR(r_after, r_before, 0.025);
}

TEST_F(SynthRegionFiles, ParcelsGeoPackageAndLabels) {
  GDALDataset* ds = static_cast<GDALDataset*>(
      GDALOpenEx((*dir_ + "/parcels.gpkg").c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY, nullptr, nullptr, nullptr));
  ASSERT_NE(ds, nullptr);
  EXPECT_EQ(ds->GetLayerCount(), 2);
  for (const TileSpec& t : region_->tiles) {
    OGRLayer* layer = ds->GetLayerByName(t.name.c_str());
    ASSERT_NE(layer, nullptr) << t.name;
    OGRFeatureDefn* def = layer->GetLayerDefn();
    ASSERT_GE(def->GetFieldIndex("class_id"), 0);
    ASSERT_GE(def->GetFieldIndex("class_name"), 0);
    ASSERT_GE(def->GetFieldIndex("parcel_id"), 0);
    auto* srs = layer->GetSpatialRef();
    ASSERT_NE(srs, nullptr);
    EXPECT_EQ(std::string(srs->GetAuthorityCode(nullptr)), std::to_string(t.epsg));
    auto cls = read_u8(*dir_ + "/labels/" + t.name + "_class.tif");
    geo::RasterReader pr(*dir_ + "/labels/" + t.name + "_parcel.tif");
    std::vector<float> pid(cls.size());
    pr.read(1, {0, 0, t.grid10.width, t.grid10.height}, pid.data());
    long features = 0;
    std::set<int> classes;
    layer->ResetReading();
    while (OGRFeature* f = layer->GetNextFeature()) {
      int c = f->GetFieldAsInteger("class_id");
      EXPECT_EQ(std::string(f->GetFieldAsString("class_name")), crop_class(c).name);
      classes.insert(c);
      // The polygon's centre pixel carries its parcel id and class in the label rasters.
      OGREnvelope env;
      f->GetGeometryRef()->getEnvelope(&env);
      const auto& g = t.grid10.geotransform;
      int px = static_cast<int>(((env.MinX + env.MaxX) / 2 - g[0]) / g[1]);
      int py = static_cast<int>(((env.MinY + env.MaxY) / 2 - g[3]) / g[5]);
      size_t i = static_cast<size_t>(py) * t.grid10.width + px;
      EXPECT_EQ(cls[i], c);
      EXPECT_EQ(static_cast<int>(pid[i]), f->GetFieldAsInteger("parcel_id"));
      ++features;
      OGRFeature::DestroyFeature(f);
    }
    EXPECT_GT(features, 15) << t.name;
    EXPECT_GT(classes.size(), 5u) << t.name;
  }
  GDALClose(ds);
}
