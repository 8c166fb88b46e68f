// Band table, dates, the radiometric offset rule and discovery of the product layouts, on small real files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/sentinel2/acquisition.hpp"
#include "s2crop/sentinel2/bands.hpp"
#include "s2crop/sentinel2/reader.hpp"

namespace fs = std::filesystem;
using namespace s2crop;
using namespace s2crop::sentinel2;

TEST(Sentinel2Bands, TableMatchesDomainFacts) {
  EXPECT_EQ(band("B8A").resolution_m, 20);
  EXPECT_EQ(band("B08").resolution_m, 10);
  EXPECT_EQ(band("b4").name, "B04");
  EXPECT_EQ(band("B11").stac_key, "swir16");
  EXPECT_EQ(band("B8A").safe_band_id, 8);
  EXPECT_EQ(band("B12").safe_band_id, 12);
  EXPECT_EQ(default_crop_bands().size(), 10u);
  EXPECT_THROW(band("B10"), ConfigError);  // not in L2A
  EXPECT_THROW(parse_band_list("B02,B02"), ConfigError);
  EXPECT_EQ(parse_band_list(" b2, B8A ,B11"), (std::vector<std::string>{"B02", "B8A", "B11"}));
}

TEST(Sentinel2Dates, ParseOrderAndRoundTrip) {
  EXPECT_EQ(Date::parse("2022-01-25T10:20:31Z").iso(), "2022-01-25");
  EXPECT_EQ(Date::parse("20180505").iso(), "2018-05-05");
  EXPECT_THROW(Date::parse("2021-02-30"), ConfigError);
  EXPECT_THROW(Date::parse("yesterday"), ConfigError);
  for (long d = -1000; d < 40000; d += 37) EXPECT_EQ(Date::from_days(d).days_since_epoch(), d);
  EXPECT_EQ((Date{2020, 3, 1}.days_since_epoch() - Date{2020, 2, 28}.days_since_epoch()), 2);  // leap year
  EXPECT_TRUE(Date::parse("2021-12-31") < Date::parse("2022-01-01"));
}

TEST(Sentinel2Offset, DateRuleAndBaseline) {
  EXPECT_EQ(offset_by_date(Date{2022, 1, 24}), 0);
  EXPECT_EQ(offset_by_date(Date{2022, 1, 25}), -1000);
  int o = 7;
  EXPECT_TRUE(offset_by_baseline("04.00", o));
  EXPECT_EQ(o, -1000);
  EXPECT_TRUE(offset_by_baseline("N0301", o));
  EXPECT_EQ(o, 0);
  EXPECT_TRUE(offset_by_baseline("05.09", o));
  EXPECT_EQ(o, -1000);
  EXPECT_FALSE(offset_by_baseline("N9999", o));  // reprocessing placeholder: says nothing
  EXPECT_FALSE(offset_by_baseline("", o));
}

namespace {

// A tiny product on a 12 x 12 px 10 m grid (6 x 6 at 20 m).
geo::Grid grid(double res, int size, double x0 = 399960, double y0 = 5400000) {
  geo::Grid g;
  g.crs_wkt = geo::wkt_from_epsg(32633);
  g.geotransform = {x0, res, 0, y0, 0, -res};
  g.width = g.height = size;
  return g;
}

void write_u16(const std::string& path, const geo::Grid& g, std::uint16_t value) {
  fs::create_directories(fs::path(path).parent_path());
  std::vector<std::uint16_t> v(static_cast<size_t>(g.width) * g.height, value);
  geo::WriteOptions o;
  o.driver = "GTiff";
  o.block_size = 16;
  geo::write_raster(path, g, geo::PixelType::UInt16, {{v.data(), ""}}, o);
}

void write_u8(const std::string& path, const geo::Grid& g, std::uint8_t value) {
  fs::create_directories(fs::path(path).parent_path());
  std::vector<std::uint8_t> v(static_cast<size_t>(g.width) * g.height, value);
  geo::WriteOptions o;
  o.driver = "GTiff";
  o.block_size = 16;
  geo::write_raster(path, g, geo::PixelType::UInt8, {{v.data(), ""}}, o);
}

std::string tmpdir(const std::string& name) {
  std::string d = testing::TempDir() + "/s2crop_s2_" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A SAFE product with the real folder structure and MTD_MSIL2A.xml elements.
std::string make_safe(const std::string& root, const std::string& date, int offset, const std::string& baseline) {
  std::string name = "S2A_MSIL2A_" + date + "T101031_N" + baseline + "_R022_T33UVP_" + date + "T120005.SAFE";
  std::string safe = root + "/" + name;
  std::string img = safe + "/GRANULE/L2A_T33UVP_A015000_" + date + "T101031/IMG_DATA";
  for (auto& b : all_bands()) {
    if (b.resolution_m == 60) continue;
    std::string res = b.resolution_m == 10 ? "10" : "20";
    write_u16(img + "/R" + res + "m/T33UVP_" + date + "T101031_" + b.name + "_" + res + "m.tif",
              grid(b.resolution_m, b.resolution_m == 10 ? 12 : 6), static_cast<std::uint16_t>(2000 - offset));
  }
  // Real products also carry 20 m versions of the 10 m bands: discovery must pick the native one.
  write_u16(img + "/R20m/T33UVP_" + date + "T101031_B04_20m.tif", grid(20, 6), 1);
  write_u8(img + "/R20m/T33UVP_" + date + "T101031_SCL_20m.tif", grid(20, 6), 4);
  std::ofstream x(safe + "/MTD_MSIL2A.xml");
  x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
       "<n1:Level-2A_User_Product xmlns:n1=\"https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd\">\n"
       "<n1:General_Info><Product_Info><PRODUCT_START_TIME>"
    << date.substr(0, 4) << "-" << date.substr(4, 2) << "-" << date.substr(6, 2)
    << "T10:10:31.024Z</PRODUCT_START_TIME><PROCESSING_BASELINE>" << baseline.substr(0, 2) << "."
    << baseline.substr(2) << "</PROCESSING_BASELINE><PRODUCT_URI>" << name
    << "</PRODUCT_URI></Product_Info><Product_Image_Characteristics><QUANTIFICATION_VALUES_LIST>"
       "<BOA_QUANTIFICATION_VALUE unit=\"none\">10000</BOA_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>";
  if (offset != 0 || baseline >= "0400") {
    x << "<BOA_ADD_OFFSET_VALUES_LIST>";
    for (int i = 0; i < 13; ++i) x << "<BOA_ADD_OFFSET band_id=\"" << i << "\">" << offset << "</BOA_ADD_OFFSET>";
    x << "</BOA_ADD_OFFSET_VALUES_LIST>";
  }
  x << "</Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>\n";
  return safe;
}

}  // namespace

TEST(Sentinel2Discovery, SafeProductsOffsetsAndNativeResolution) {
  std::string root = tmpdir("safe");
  make_safe(root, "20220301", -1000, "0400");
  make_safe(root, "20211101", 0, "0301");
  std::vector<Skipped> skipped;
  auto acqs = discover({root}, DiscoveryOptions{}, false, skipped);
  ASSERT_EQ(acqs.size(), 2u);
  EXPECT_EQ(acqs[0].date.iso(), "2021-11-01");  // sorted by date
  EXPECT_EQ(acqs[0].tile, "33UVP");
  EXPECT_EQ(acqs[0].bands.at("B04").offset, 0);
  EXPECT_EQ(acqs[1].bands.at("B04").offset, -1000);
  EXPECT_NE(acqs[1].bands.at("B04").path.find("R10m"), std::string::npos) << "B04 must come from R10m";
  EXPECT_NE(acqs[1].bands.at("B8A").path.find("R20m"), std::string::npos);
  EXPECT_EQ(acqs[1].mask_kind, MaskKind::Scl);
  EXPECT_EQ(acqs[1].bands.size(), 10u);
  // Both products give the same reflectance: the offset cancels what the DN carries.
  for (auto& a : acqs) {
    geo::Grid g = inspect(a, default_crop_bands());
    EXPECT_EQ(g.width, 12);
    geo::RasterCache cache;
    AcquisitionReader reader(a, g, default_crop_bands(), cache);
    std::vector<std::int16_t> refl(10 * 4);
    std::vector<std::uint8_t> valid(4);
    ReadScratch scratch;
    EXPECT_TRUE(reader.read({2, 2, 2, 2}, MaskOptions::from(scl::default_valid(), 1), cache, scratch, refl.data(),
                            valid.data()));
    for (auto v : refl) EXPECT_EQ(v, 2000);
    for (auto v : valid) EXPECT_EQ(v, 1);
  }
}

TEST(Sentinel2Discovery, ForcedOffsetAndFilters) {
  std::string root = tmpdir("forced");
  make_safe(root, "20220301", -1000, "0400");
  DiscoveryOptions opt;
  opt.offset_mode = OffsetMode::Zero;
  std::vector<Skipped> skipped;
  auto acqs = discover({root}, opt, false, skipped);
  ASSERT_EQ(acqs.size(), 1u);
  EXPECT_EQ(acqs[0].bands.at("B02").offset, 0);
  opt.tiles = {"32TQT"};
  EXPECT_TRUE(discover({root}, opt, false, skipped).empty());
}

TEST(Sentinel2Discovery, BandFolderWithValidityMaskAndMissingBand) {
  std::string root = tmpdir("folder");
  std::string dir = root + "/36/M/XB/2019/20190810/S2A_MSIL2A_20190810T074621_N9999R135T36MXB_36MXB";
  for (std::string b : {"B02", "B03", "B04", "B08"})
    write_u16(dir + "/S2A_L2A_20190810T074621_N9999R135T36MXB_36MXB_" + b + ".tif", grid(10, 12), 500);
  for (std::string b : {"B05", "B06", "B07", "B11", "B12"})
    write_u16(dir + "/S2A_L2A_20190810T074621_N9999R135T36MXB_36MXB_" + b + ".tif", grid(20, 6), 700);
  write_u8(dir + "/S2A_L2A_20190810T074621_N9999R135T36MXB_36MXB_MASK.tif", grid(20, 6), 1);
  DiscoveryOptions opt;
  opt.bands = parse_band_list("B02,B03,B04,B05,B06,B07,B08,B11,B12");
  std::vector<Skipped> skipped;
  auto acqs = discover({root}, opt, false, skipped);
  ASSERT_EQ(acqs.size(), 1u);
  EXPECT_EQ(acqs[0].tile, "36MXB");
  EXPECT_EQ(acqs[0].date.iso(), "2019-08-10");
  EXPECT_EQ(acqs[0].mask_kind, MaskKind::Valid);
  EXPECT_EQ(acqs[0].bands.at("B05").offset, 0);  // 2019: date rule, N9999 says nothing
  // The default band set needs B8A, which these files lack: a clear error naming the folder, or a skip.
  try {
    discover({root}, DiscoveryOptions{}, false, skipped);
    FAIL() << "missing B8A not reported";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("band B8A is missing"), std::string::npos) << e.what();
    EXPECT_EQ(e.path(), dir);
  }
  EXPECT_TRUE(discover({root}, DiscoveryOptions{}, true, skipped).empty());
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_EQ(skipped[0].what, dir);
}

TEST(Sentinel2Discovery, SerialiseRoundTrip) {
  std::string root = tmpdir("serial");
  make_safe(root, "20220301", -1000, "0400");
  std::vector<Skipped> skipped;
  auto acqs = discover({root}, DiscoveryOptions{}, false, skipped);
  auto back = deserialise(serialise(acqs));
  ASSERT_EQ(back.size(), acqs.size());
  EXPECT_EQ(back[0].id, acqs[0].id);
  EXPECT_EQ(back[0].date, acqs[0].date);
  EXPECT_EQ(back[0].bands.at("B11").path, acqs[0].bands.at("B11").path);
  EXPECT_EQ(back[0].bands.at("B11").offset, -1000);
  EXPECT_EQ(back[0].mask.path, acqs[0].mask.path);
}

TEST(Sentinel2Reader, MisalignedBandIsRejected) {
  std::string root = tmpdir("misaligned");
  std::string safe = make_safe(root, "20220301", -1000, "0400");
  // Shift one 20 m band by 10 m: it no longer shares the 10 m grid's corner.
  for (auto& e : fs::recursive_directory_iterator(safe))
    if (e.path().filename().string().find("_B05_20m") != std::string::npos)
      write_u16(e.path().string(), grid(20, 6, 399970), 1000);
  std::vector<Skipped> skipped;
  auto acqs = discover({root}, DiscoveryOptions{}, false, skipped);
  ASSERT_EQ(acqs.size(), 1u);
  try {
    inspect(acqs[0], default_crop_bands());
    FAIL() << "misaligned band accepted";
  } catch (const InputError& e) {
    EXPECT_NE(e.path().find("_B05_20m"), std::string::npos) << e.what();
  }
}

TEST(Sentinel2Discovery, LooseFolderTakesInnermostDateAndNativeResolution) {
  // A run folder with its own date above the acquisition folder, and a flattened IMG_DATA with two resolutions.
  std::string root = tmpdir("innermost");
  std::string dir = root + "/run_20240101/T32TQT/20220330";
  for (std::string b : {"B02", "B03", "B04", "B08"}) write_u16(dir + "/" + b + "_10m.tif", grid(10, 12), 1500);
  for (std::string b : {"B05", "B06", "B07", "B8A", "B11", "B12"}) {
    write_u16(dir + "/" + b + "_20m.tif", grid(20, 6), 1500);
    write_u16(dir + "/" + b + "_60m.tif", grid(60, 2), 1);
  }
  write_u8(dir + "/SCL_20m.tif", grid(20, 6), 4);
  write_u8(dir + "/SCL_60m.tif", grid(60, 2), 9);
  // A STAC collection with collection-level assets is not an acquisition and must not stop discovery.
  std::ofstream(root + "/collection.json")
      << R"({"type": "Collection", "id": "s2", "assets": {"thumbnail": {"href": "./t.png"}}})";
  std::vector<Skipped> skipped;
  auto acqs = discover({root}, DiscoveryOptions{}, false, skipped);
  ASSERT_EQ(acqs.size(), 1u);
  EXPECT_EQ(acqs[0].date.iso(), "2022-03-30");
  EXPECT_EQ(acqs[0].tile, "32TQT");
  EXPECT_EQ(acqs[0].bands.at("B8A").offset, -1000);  // date rule with the right date
  EXPECT_NE(acqs[0].bands.at("B05").path.find("_20m"), std::string::npos);
  EXPECT_NE(acqs[0].mask.path.find("SCL_20m"), std::string::npos);
}

// ---- plausible mistakes that must be refused, not composited (issue 13)

TEST(Sentinel2Identity, TileNamesAndObservations) {
  EXPECT_TRUE(is_mgrs_tile("33UVP"));
  EXPECT_TRUE(is_mgrs_tile("01CAA"));
  EXPECT_FALSE(is_mgrs_tile("33uvp"));
  EXPECT_FALSE(is_mgrs_tile("61UVP"));
  EXPECT_FALSE(is_mgrs_tile("33UV/P"));
  EXPECT_FALSE(is_mgrs_tile("../../../X"));
  EXPECT_TRUE(is_safe_tile_name("Barbellino"));
  EXPECT_TRUE(is_safe_tile_name("2019_33UVP"));
  EXPECT_FALSE(is_safe_tile_name(".."));
  EXPECT_FALSE(is_safe_tile_name("a/b"));
  EXPECT_FALSE(is_safe_tile_name(""));
  EXPECT_FALSE(is_safe_tile_name(std::string(65, 'a')));

  Acquisition a, b;
  a.tile = b.tile = "33UVP";
  a.date = b.date = Date::parse("2021-05-11");
  EXPECT_TRUE(same_observation(a, b));  // nothing more known: same tile and day
  a.spacecraft = 'A';
  b.spacecraft = 'A';
  a.sensing_start = "20210511T100031";
  EXPECT_TRUE(same_observation(a, b));  // b does not know its sensing time
  b.sensing_start = "20210511T100031";
  a.relative_orbit = 122;
  b.relative_orbit = 122;
  EXPECT_TRUE(same_observation(a, b));  // a reprocessing: same datatake
  b.relative_orbit = 79;                // the next orbit over the same tile (high latitudes)
  EXPECT_FALSE(same_observation(a, b));
  b.relative_orbit = 122;
  b.spacecraft = 'B';
  EXPECT_FALSE(same_observation(a, b));
  b.spacecraft = 'A';
  b.date = Date::parse("2021-05-12");
  EXPECT_FALSE(same_observation(a, b));
}

TEST(Sentinel2Discovery, TheSameObservationTwiceIsRefusedOrSkipped) {
  std::string root = tmpdir("twice");
  std::string safe = make_safe(root + "/a", "20220301", -1000, "0400");
  // A reprocessing of the same datatake: another baseline and processing time, same sensing start and orbit.
  std::string again = make_safe(root + "/b", "20220301", -1000, "0500");
  ASSERT_NE(fs::path(safe).filename(), fs::path(again).filename());
  std::vector<Skipped> skipped;
  try {
    discover({root + "/a", root + "/b"}, DiscoveryOptions{}, false, skipped);
    FAIL() << "the same observation twice was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("same observation"), std::string::npos) << e.what();
  }
  auto kept = discover({root + "/a", root + "/b"}, DiscoveryOptions{}, true, skipped);
  EXPECT_EQ(kept.size(), 1u);
  ASSERT_EQ(skipped.size(), 1u);
  // The same product reached twice (one folder given twice) is one product, not an error.
  skipped.clear();
  EXPECT_EQ(discover({root + "/a", safe}, DiscoveryOptions{}, false, skipped).size(), 1u);
}

TEST(Sentinel2Discovery, NonNumericBoaOffsetIsAnError) {
  std::string root = tmpdir("boa");
  std::string safe = make_safe(root, "20220301", -1000, "0400");
  std::string mtd = safe + "/MTD_MSIL2A.xml";
  std::ifstream in(mtd);
  std::string xml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  const std::string needle = "<BOA_ADD_OFFSET band_id=\"1\">-1000</BOA_ADD_OFFSET>";
  ASSERT_NE(xml.find(needle), std::string::npos);
  xml.replace(xml.find(needle), needle.size(), "<BOA_ADD_OFFSET band_id=\"1\">-1OOO</BOA_ADD_OFFSET>");
  std::ofstream(mtd) << xml;
  std::vector<Skipped> skipped;
  try {
    discover({root}, DiscoveryOptions{}, false, skipped);
    FAIL() << "a non-numeric BOA_ADD_OFFSET was read (atoi would give -1)";
  } catch (const InputError& e) {
    EXPECT_EQ(e.path(), mtd);
    EXPECT_NE(std::string(e.what()).find("expected an integer"), std::string::npos) << e.what();
  }
}

TEST(Sentinel2Discovery, AcquisitionWithoutCloudMaskNeedsOptIn) {
  std::string root = tmpdir("nomask");
  std::string dir = root + "/36/M/XB/2019/20190810/S2A_MSIL2A_20190810T074621_N9999R135T36MXB_36MXB";
  for (auto& b : all_bands())
    if (b.resolution_m != 60)
      write_u16(dir + "/S2A_L2A_20190810T074621_N9999R135T36MXB_36MXB_" + b.name + ".tif",
                grid(b.resolution_m, b.resolution_m == 10 ? 12 : 6), 500);
  std::vector<Skipped> skipped;
  try {
    discover({root}, DiscoveryOptions{}, false, skipped);
    FAIL() << "an acquisition without SCL or MASK was composited unmasked without a word";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no cloud mask"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--allow-unmasked"), std::string::npos) << e.what();
  }
  DiscoveryOptions opt;
  opt.allow_unmasked = true;
  auto acqs = discover({root}, opt, false, skipped);
  ASSERT_EQ(acqs.size(), 1u);
  EXPECT_EQ(acqs[0].mask_kind, MaskKind::None);
  EXPECT_EQ(acqs[0].spacecraft, 'A');
  EXPECT_EQ(acqs[0].relative_orbit, 135);
}

TEST(Sentinel2Reader, FloatingPointReflectanceIsRefused) {
  std::string root = tmpdir("float");
  std::string safe = make_safe(root, "20220301", -1000, "0400");
  std::vector<Skipped> skipped;
  auto acqs = discover({root}, DiscoveryOptions{}, false, skipped);
  ASSERT_EQ(acqs.size(), 1u);
  // Replace B03 by Float32 reflectance 0..1, as some processors deliver it.
  const std::string b03 = acqs[0].bands.at("B03").path;
  std::vector<float> v(144, 0.12f);
  geo::WriteOptions o;
  o.driver = "GTiff";
  fs::remove(b03);
  geo::write_raster(b03, grid(10, 12), geo::PixelType::Float32, {{v.data(), ""}}, o);
  try {
    inspect(acqs[0], default_crop_bands());
    FAIL() << "Float32 reflectance accepted (it would be read as DN 0)";
  } catch (const InputError& e) {
    EXPECT_EQ(e.path(), b03);
    EXPECT_NE(std::string(e.what()).find("Float32"), std::string::npos) << e.what();
  }
}

// ---- the one-file parsers behind discovery (fuzzed by fuzz/fuzz_stac_item and fuzz/fuzz_mtd) ----

namespace {
const char* kItem = R"({"type": "Feature", "id": "S2B_33UVP_20220905_0_L2A",
  "properties": {"datetime": "2022-09-05T10:20:31Z", "s2:mgrs_tile": "33UVP"},
  "assets": {"red": {"href": "./B04.tif", "raster:bands": [{"scale": 0.0001, "offset": -0.1}]},
             "nir": {"href": "B08.tif"}, "scl": {"href": "SCL.tif"}}})";

std::string mtd_with_offset(const std::string& offset) {
  return "<?xml version=\"1.0\"?><n1:Level-2A_User_Product xmlns:n1=\"https://psd-14.sentinel2.eo.esa.int/PSD/"
         "User_Product_Level-2A.xsd\"><n1:General_Info><Product_Info><PRODUCT_START_TIME>2022-03-30T10:10:31Z"
         "</PRODUCT_START_TIME><PRODUCT_URI>S2A_MSIL2A_20220330T101031_N0400_R022_T32TQT_20220330T140005.SAFE"
         "</PRODUCT_URI><PROCESSING_BASELINE>04.00</PROCESSING_BASELINE></Product_Info>"
         "<Product_Image_Characteristics><BOA_ADD_OFFSET_VALUES_LIST><BOA_ADD_OFFSET band_id=\"3\">" +
         offset + "</BOA_ADD_OFFSET></BOA_ADD_OFFSET_VALUES_LIST></Product_Image_Characteristics></n1:General_Info>"
                  "</n1:Level-2A_User_Product>\n";
}
}  // namespace

TEST(Sentinel2Parsers, StacItemHrefsAreRelativeToItsFolder) {
  Acquisition a;
  ASSERT_TRUE(parse_stac_item(kItem, "/data/x/item.json", OffsetMode::Auto, a));
  EXPECT_EQ(a.tile, "33UVP");
  EXPECT_EQ(a.bands.at("B04").path, "/data/x/B04.tif");
  EXPECT_EQ(a.bands.at("B04").offset, -1000);  // -0.1 / 0.0001
  EXPECT_EQ(a.mask.path, "/data/x/SCL.tif");
  // An item named without a folder (`composite --input item.json`): its folder is ".", not the file system root.
  Acquisition b;
  ASSERT_TRUE(parse_stac_item(kItem, "item.json", OffsetMode::Auto, b));
  EXPECT_EQ(b.bands.at("B04").path, "./B04.tif");
  EXPECT_EQ(b.bands.at("B08").path, "./B08.tif");
  EXPECT_EQ(b.mask.path, "./SCL.tif");
  Acquisition c;
  EXPECT_FALSE(parse_stac_item(R"({"type": "Collection", "assets": {}})", "c.json", OffsetMode::Auto, c));
  EXPECT_THROW(parse_stac_item("{\"type\": ", "d.json", OffsetMode::Auto, c), InputError);
}

TEST(Sentinel2Parsers, StacOffsetMustBeAnOffsetInDn) {
  // offset / scale far outside int: std::lround's result was unspecified and the int conversion garbage.
  std::string item = kItem;
  item.replace(item.find("0.0001"), 6, "1e-300");
  Acquisition a;
  try {
    parse_stac_item(item, "/data/x/item.json", OffsetMode::Auto, a);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("raster:bands offset"), std::string::npos) << e.what();
    EXPECT_EQ(e.path(), "/data/x/item.json");
  }
}

TEST(Sentinel2Parsers, MtdMetadataAndIntegerOffsets) {
  auto m = parse_mtd(mtd_with_offset("-1000"), "/p/X.SAFE/MTD_MSIL2A.xml");
  EXPECT_EQ(m.id, "S2A_MSIL2A_20220330T101031_N0400_R022_T32TQT_20220330T140005");
  EXPECT_EQ(m.tile, "32TQT");
  EXPECT_EQ(m.date.iso(), "2022-03-30");
  EXPECT_EQ(m.processing_baseline, "04.00");
  ASSERT_EQ(m.boa_add_offset.size(), 1u);
  EXPECT_EQ(m.boa_add_offset.at(3), -1000);
  EXPECT_EQ(parse_mtd(mtd_with_offset(" -1000 "), "m.xml").boa_add_offset.at(3), -1000);
  // atoi read "abc" as 0 (and "-1000.5" as -1000) silently, and overflowed on long digit strings.
  for (std::string bad : {"abc", "-1000.5", "99999999999", "-40000"})
    EXPECT_THROW(parse_mtd(mtd_with_offset(bad), "m.xml"), InputError) << bad;
  EXPECT_THROW(parse_mtd("<Level-2A_User_Product><unclosed>", "m.xml"), InputError);
  EXPECT_THROW(parse_mtd("<Level-1C_User_Product/>", "m.xml"), InputError);
}

// Found by fuzz/fuzz_stac_item: a tab or newline in an id or href split the record rank 0 broadcasts, and the
// receiving ranks failed with std::invalid_argument from std::stoi (or read shifted fields).
TEST(Sentinel2Discovery, SerialiseKeepsTabsNewlinesAndBackslashes) {
  Acquisition a;
  a.id = "id\twith\ttabs";
  a.tile = "33UVP";
  a.source = "/data/new\nline\\dir/item.json";
  a.date = Date{2021, 9, 5};
  a.offset_origin = "date rule";
  a.mask_kind = MaskKind::Scl;
  a.mask = BandSource{"/d/S\rCL\\t.tif", 1, 0};
  a.bands["B04"] = BandSource{"/d/B\t04.tif\\", 2, -1000};
  auto back = deserialise(serialise({a}));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].id, a.id);
  EXPECT_EQ(back[0].source, a.source);
  EXPECT_EQ(back[0].mask.path, a.mask.path);
  EXPECT_EQ(back[0].bands.at("B04").path, a.bands.at("B04").path);
  EXPECT_EQ(back[0].bands.at("B04").band, 2);
  EXPECT_EQ(back[0].bands.at("B04").offset, -1000);
  EXPECT_THROW(deserialise("A\tid\t33UVP\tsrc\t2021-09-05\to\tx\tm\t1\n"), Error);  // not std::invalid_argument
}
