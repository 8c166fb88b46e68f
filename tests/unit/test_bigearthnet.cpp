// The pure parts of import-bigearthnet: the BigEarthNet-19 table, label flags, tile names, metadata parsing, finding
// patch folders, season months; and geo::read_replicated (shared with the Sentinel-2 reader) at any window offset.
// The MPI driver (run_import) runs on the real patches in tests/integration/test_import_bigearthnet.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "s2crop/common/errors.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/samples/bigearthnet_import.hpp"

namespace fs = std::filesystem;
using namespace s2crop;
using namespace s2crop::samples::bigearthnet;
using sentinel2::Date;

namespace {

std::string fresh_dir(const std::string& name) {
  const std::string d =
      fs::path(testing::TempDir() + "/s2crop_ben_" + name + "_" + std::to_string(::getpid())).lexically_normal().string();
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string label_json(const std::string& labels, const std::string& date = "2017-06-13 10:10:31",
                       const std::string& source = "S2A_MSIL1C_20170613T101031_N0205_R022_T33UUP_20170613T101608.SAFE") {
  return "{\"labels\": [" + labels + "], \"coordinates\": {\"ulx\": 404400, \"uly\": 5342400, \"lrx\": 405600, "
         "\"lry\": 5341200}, \"projection\": \"\", \"tile_source\": \"" + source + "\", \"acquisition_date\": \"" +
         date + "\"}";
}

}  // namespace

TEST(BigEarthNet, NineteenClassTableIsTheOfficialOne) {
  ASSERT_EQ(clc43_labels().size(), 43u);
  ASSERT_EQ(classes19().size(), 19u);
  EXPECT_EQ(std::set<std::string>(clc43_labels().begin(), clc43_labels().end()).size(), 43u);
  // 32 labels in exactly one class, 11 in none.
  std::set<std::string> none;
  std::vector<int> members(19, 0);
  for (const auto& l : clc43_labels()) {
    const int k = class19_of(l);
    ASSERT_GE(k, -1) << l;
    if (k < 0) none.insert(l);
    else ++members[static_cast<size_t>(k)];
  }
  EXPECT_EQ(none, (std::set<std::string>{"Road and rail networks and associated land", "Port areas", "Airports",
                                         "Mineral extraction sites", "Dump sites", "Construction sites",
                                         "Green urban areas", "Sport and leisure facilities", "Bare rock",
                                         "Burnt areas", "Intertidal flats"}));
  for (int m : members) EXPECT_GE(m, 1);
  auto cls = [](const std::string& l) { return classes19().at(static_cast<size_t>(class19_of(l))); };
  EXPECT_EQ(cls("Non-irrigated arable land"), "Arable land");
  EXPECT_EQ(cls("Permanently irrigated land"), "Arable land");
  EXPECT_EQ(cls("Rice fields"), "Arable land");
  EXPECT_EQ(cls("Annual crops associated with permanent crops"), "Permanent crops");
  EXPECT_EQ(cls("Olive groves"), "Permanent crops");
  EXPECT_EQ(cls("Peatbogs"), "Inland wetlands");
  EXPECT_EQ(cls("Inland marshes"), "Inland wetlands");
  EXPECT_EQ(cls("Water courses"), "Inland waters");
  EXPECT_EQ(cls("Sea and ocean"), "Marine waters");
  EXPECT_EQ(cls("Sparsely vegetated areas"), "Natural grassland and sparsely vegetated areas");
  EXPECT_EQ(cls("Sclerophyllous vegetation"), "Moors, heathland and sclerophyllous vegetation");
  EXPECT_EQ(cls("Transitional woodland/shrub"), "Transitional woodland, shrub");
  EXPECT_EQ(cls("Salines"), "Coastal wetlands");
  EXPECT_EQ(classes19().front(), "Urban fabric");
  EXPECT_EQ(classes19().back(), "Marine waters");
  EXPECT_EQ(class19_of("Winter wheat"), -2);
  EXPECT_EQ(class19_of("pastures"), -2);  // the names are exact
}

TEST(BigEarthNet, LabelFlagsPerNomenclature) {
  const std::vector<std::string> labels{"Coniferous forest", "Peatbogs", "Water bodies", "Bare rock"};
  auto f19 = label_flags(labels, 19, "x.json");
  ASSERT_EQ(f19.size(), 19u);
  std::vector<std::string> on;
  for (size_t k = 0; k < 19; ++k)
    if (f19[k]) on.push_back(classes19()[k]);
  EXPECT_EQ(on, (std::vector<std::string>{"Coniferous forest", "Inland wetlands", "Inland waters"}));
  auto f43 = label_flags(labels, 43, "x.json");
  ASSERT_EQ(f43.size(), 43u);
  EXPECT_EQ(std::count(f43.begin(), f43.end(), 1), 4);
  EXPECT_EQ(f43[30], 1);  // Bare rock
  EXPECT_EQ(label_flags({}, 19, "x.json"), std::vector<std::uint8_t>(19, 0));
  try {
    label_flags({"Pastures", "Glaciers and perpetual snow"}, 19, "/d/p_labels_metadata.json");
    FAIL() << "unknown label accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/d/p_labels_metadata.json: unknown label 'Glaciers and perpetual snow'"),
              std::string::npos) << e.what();
  }
  EXPECT_THROW(layer_names(20), ConfigError);
}

TEST(BigEarthNet, TileOfProductName) {
  EXPECT_EQ(tile_of_product("S2A_MSIL1C_20170613T101031_N0205_R022_T33UUP_20170613T101608.SAFE"), "33UUP");
  EXPECT_EQ(tile_of_product("S2B_MSIL1C_20170924T93020_N0205_R136_T35VPK_20170924T093132.SAFE"), "35VPK");
  EXPECT_EQ(tile_of_product("L2A_T29SND_A012345_20171221T112501"), "29SND");
  EXPECT_EQ(tile_of_product("S2A_MSIL2A_20170613T101031_N0205_R022_T33UUP"), "33UUP");
  EXPECT_EQ(tile_of_product("S2A_MSIL1C_20170613T101031_N0205_R022_20170613T101608.SAFE"), "");  // no tile field
  EXPECT_EQ(tile_of_product("S2A_MSIL1C_20170613_T33UUPX_"), "");
  EXPECT_EQ(tile_of_product(""), "");
}

TEST(BigEarthNet, SeasonMonths) {
  EXPECT_EQ(season_month_index(Date{2017, 9, 24}, 9), 0);
  EXPECT_EQ(season_month_index(Date{2017, 6, 13}, 9), 9);
  EXPECT_EQ(season_month_index(Date{2018, 2, 4}, 9), 5);
  EXPECT_EQ(season_month_index(Date{2018, 2, 4}, 1), 1);
  EXPECT_EQ(season_start_of(Date{2017, 6, 13}, 9), (Date{2016, 9, 1}));
  EXPECT_EQ(season_start_of(Date{2017, 9, 1}, 9), (Date{2017, 9, 1}));
  EXPECT_EQ(season_start_of(Date{2017, 12, 31}, 1), (Date{2017, 1, 1}));
}

TEST(BigEarthNet, PatchMetadata) {
  const std::string d = fresh_dir("meta");
  write(d + "/P_1/P_1_labels_metadata.json", label_json("\"Pastures\", \"Mixed forest\""));
  PatchInfo p = read_patch_info("P_1", d + "/P_1");
  EXPECT_EQ(p.labels, (std::vector<std::string>{"Pastures", "Mixed forest"}));
  EXPECT_EQ(p.tile, "33UUP");
  EXPECT_EQ(p.date, (Date{2017, 6, 13}));
  EXPECT_EQ(p.band_path("B8A"), d + "/P_1/P_1_B8A.tif");

  auto expect_error = [&](const std::string& text, const std::string& problem) {
    write(d + "/Q/Q_labels_metadata.json", text);
    try {
      read_patch_info("Q", d + "/Q");
      FAIL() << "accepted: " << text;
    } catch (const InputError& e) {
      EXPECT_EQ(e.path(), d + "/Q/Q_labels_metadata.json");
      EXPECT_NE(std::string(e.what()).find(problem), std::string::npos) << e.what();
    }
  };
  expect_error("{\"labels\": [\"Pastures\"", "not JSON");
  expect_error("{\"tile_source\": \"x_T33UUP_y\"}", "no 'labels' array");
  expect_error(label_json("3"), "'labels' entry 0 is not a string");
  expect_error(label_json("\"Pastures\"", "2017-13-01 10:00:00"), "'acquisition_date' ('2017-13-01 10:00:00')");
  expect_error(label_json("\"Pastures\"", "2017-06-13", "S2A_MSIL1C_20170613T101031.SAFE"), "names no MGRS tile");
  fs::remove_all(d);
}

TEST(BigEarthNet, FindPatchFoldersSortedWhateverTheListing) {
  const std::string d = fresh_dir("find");
  // Created out of order, at two depths, with unrelated files and folders around.
  for (const char* name : {"S2B_c_2_1", "S2A_b_9_9", "S2A_b_10_1"})
    write(d + "/in/" + name + "/" + name + "_labels_metadata.json", label_json("\"Pastures\""));
  write(d + "/in/deeper/S2A_a_1_1/S2A_a_1_1_labels_metadata.json", label_json("\"Pastures\""));
  write(d + "/in/README.txt", "x");
  fs::create_directories(d + "/in/empty");
  auto found = find_patch_folders({d + "/in"});
  std::vector<std::string> names;
  for (const auto& f : found) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"S2A_a_1_1", "S2A_b_10_1", "S2A_b_9_9", "S2B_c_2_1"}));
  EXPECT_EQ(found[0].dir, d + "/in/deeper/S2A_a_1_1");
  // One patch folder as input; the same folder reached twice counts once.
  EXPECT_EQ(find_patch_folders({d + "/in/S2A_b_9_9"}).size(), 1u);
  EXPECT_EQ(find_patch_folders({d + "/in", d + "/in/deeper"}).size(), 4u);
  EXPECT_TRUE(find_patch_folders({d + "/in/empty"}).empty());
  // The same patch name in two places, two label files in one folder, a missing input: errors naming the path.
  write(d + "/other/S2A_b_9_9/S2A_b_9_9_labels_metadata.json", label_json("\"Pastures\""));
  try {
    find_patch_folders({d + "/in", d + "/other"});
    FAIL() << "duplicate patch accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("patch S2A_b_9_9 is also in"), std::string::npos) << e.what();
  }
  write(d + "/two/X/A_labels_metadata.json", label_json("\"Pastures\""));
  write(d + "/two/X/B_labels_metadata.json", label_json("\"Pastures\""));
  try {
    find_patch_folders({d + "/two"});
    FAIL() << "two label files in one folder accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.path(), d + "/two/X");
    EXPECT_NE(std::string(e.what()).find("holds two BigEarthNet label files"), std::string::npos) << e.what();
  }
  EXPECT_THROW(find_patch_folders({d + "/nowhere"}), InputError);
  fs::remove_all(d);
}

TEST(GeoRaster, ReadReplicatedAtAnyWindowOffset) {
  geo::init_gdal();
  const std::string d = fresh_dir("replicate");
  // A 20 m raster of 5 x 4 px with distinct values under a 10 m grid of 10 x 8 px; and a 60 m one (factor 6).
  for (int f : {2, 6}) {
    geo::Grid coarse;
    coarse.crs_wkt = geo::wkt_from_epsg(32633);
    coarse.geotransform = {404400, 10.0 * f, 0, 5342400, 0, -10.0 * f};
    coarse.width = 5;
    coarse.height = 4;
    std::vector<std::uint16_t> v(20);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint16_t>(100 + i);
    geo::WriteOptions o;
    o.driver = "GTiff";
    o.block_size = 16;
    const std::string path = d + "/c" + std::to_string(f) + ".tif";
    geo::write_raster(path, coarse, geo::PixelType::UInt16, {{v.data(), ""}}, o);
    geo::RasterReader r(path);
    std::vector<std::uint16_t> scratch;
    for (geo::Window w : {geo::Window{0, 0, 5 * f, 4 * f}, geo::Window{1, 3, 7, 4}, geo::Window{f - 1, 1, 3, 2 * f},
                          geo::Window{2, 0, 5, 3}, geo::Window{1, 0, 8, 2}}) {
      std::vector<std::uint16_t> out(static_cast<size_t>(w.pixels()));
      geo::read_replicated(r, 1, f, w, scratch, out.data());
      for (int y = 0; y < w.height; ++y)
        for (int x = 0; x < w.width; ++x)
          ASSERT_EQ(out[static_cast<size_t>(y * w.width + x)], v[static_cast<size_t>((w.y0 + y) / f * 5 + (w.x0 + x) / f)])
              << "factor " << f << " window " << w.x0 << "," << w.y0 << " pixel " << x << "," << y;
    }
  }
  fs::remove_all(d);
}
