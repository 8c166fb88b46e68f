// TimeSen2Crop format and per-pixel compositing, on fixtures written here in the real layout (not by synth).
// The MPI driver (run_import) is exercised by tests/integration/test_import_timesen2crop.sh under mpirun.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/samples/timesen2crop.hpp"
#include "s2crop/samples/timesen2crop_import.hpp"

namespace fs = std::filesystem;
using namespace s2crop;
using namespace s2crop::samples::timesen2crop;
using sentinel2::Date;

namespace {

std::string fresh_dir(const std::string& name) {
  std::string d = testing::TempDir() + "/s2crop_ts2c_" + name + "_" + std::to_string(::getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

const char* kHeader = "B1,B2,B3,B4,B5,B6,B7,B8,B9,Flag\n";

// A CSV row with every band = value (band b gets value + b, so a band mix-up would show).
std::string row(int value, int flag) {
  std::ostringstream o;
  for (int b = 0; b < kBands; ++b) o << (value == 0 ? 0 : value + b) << ',';
  o << flag << '\n';
  return o.str();
}

std::vector<Date> dates(const std::vector<std::string>& compact) {
  std::vector<Date> out;
  for (auto& c : compact) out.push_back(Date::parse(c));
  return out;
}

// Message of the InputError thrown by `f`, or "" if none.
template <typename F>
std::string input_error(F f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// Composites `csv_rows` (one per date) and returns [month][band].
std::vector<std::int16_t> composite_of(const std::vector<std::string>& compact_dates, const std::string& csv_rows,
                                    CompositeRule rule = {}, bool* kept = nullptr) {
  auto d = dates(compact_dates);
  PixelSeries s = parse_pixel_csv(kHeader + csv_rows, "mem.csv", d.size());
  TileCalendar c = make_calendar(d, 9, sentinel2::OffsetMode::Auto);
  std::vector<std::int16_t> out(12 * kBands, 0);
  bool ok = composite_series(s, c, rule, out.data());
  if (kept) *kept = ok;
  return out;
}

}  // namespace

TEST(TimeSen2Crop, ColumnsAreTheRealSentinel2Bands) {
  EXPECT_EQ(band_names(), (std::vector<std::string>{"B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12"}));
  EXPECT_EQ(csv_columns().size(), 10u);
  EXPECT_EQ(csv_columns()[6], "B7");  // B7 is B8A: NDVI of TimeSen2Crop uses B8A, there is no B08
  EXPECT_EQ(csv_columns().back(), "Flag");
}

TEST(TimeSen2Crop, TileFolderNames) {
  for (std::string ok : {"33UVP", "2019_33UVP", "32TNT", "1CDE"}) EXPECT_TRUE(is_tile_folder_name(ok)) << ok;
  for (std::string bad : {"TimeSen2Crop", "Dataset", "33uvp", "2019-33UVP", "19_33UVP", "33UV", "333UVP", "33AVP",
                          "33UVP_", "0", "15"})
    EXPECT_FALSE(is_tile_folder_name(bad)) << bad;
}

TEST(TimeSen2Crop, DatesWithCrlfBomAndDuplicates) {
  auto d = parse_dates("\xEF\xBB\xBF" "acquisition_date\r\n20181008\r\n20181008\r\n20190131\r\n\r\n", "x/dates.csv");
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0], d[1]);
  EXPECT_EQ(d[2].iso(), "2019-01-31");
}

TEST(TimeSen2Crop, MalformedDatesNameFileAndLine) {
  std::string m = input_error([] { parse_dates("acquisition_date\n20181008\n2018-10-09\n", "T/dates.csv"); });
  EXPECT_NE(m.find("T/dates.csv"), std::string::npos) << m;
  EXPECT_NE(m.find("line 3"), std::string::npos) << m;
  m = input_error([] { parse_dates("date\n20181008\n", "T/dates.csv"); });
  EXPECT_NE(m.find("line 1"), std::string::npos) << m;
  EXPECT_NE(m.find("acquisition_date"), std::string::npos) << m;
  m = input_error([] { parse_dates("acquisition_date\n20181332\n", "T/dates.csv"); });
  EXPECT_NE(m.find("line 2"), std::string::npos) << m;
  EXPECT_NE(input_error([] { parse_dates("acquisition_date\n", "T/dates.csv"); }), "");
}

TEST(TimeSen2Crop, ParsesRowsInFileOrder) {
  PixelSeries s = parse_pixel_csv(std::string(kHeader) + row(100, 0) + "-5,2,3,4,5,6,7,8,65535,3\r\n", "p.csv", 2);
  ASSERT_EQ(s.rows(), 2u);
  EXPECT_EQ(s.values[0], 100);
  EXPECT_EQ(s.values[8], 108);
  EXPECT_EQ(s.values[9], -5);
  EXPECT_EQ(s.values[17], 65535);
  EXPECT_EQ(s.flags[0], 0);
  EXPECT_EQ(s.flags[1], 3);
}

TEST(TimeSen2Crop, MalformedRowsNameFileAndLine) {
  const std::string path = "root/33UVP/2/7.csv";
  struct Case {
    std::string text, line, what;
  };
  std::vector<Case> cases = {
      {std::string(kHeader) + row(1, 0) + "1,2,3,4,5,6,7,8,0\n", "line 3", "columns"},
      {std::string(kHeader) + row(1, 0) + "1,2,3,4,5,6,7,8,9,0,1\n", "line 3", "more than 10"},
      {std::string(kHeader) + "1,2,x3,4,5,6,7,8,9,0\n" + row(1, 0), "line 2", "not an integer"},
      {std::string(kHeader) + "1,2,3,4,5,6,7,8,9.5,0\n" + row(1, 0), "line 2", "not an integer"},
      {std::string(kHeader) + row(1, 0) + "1,2,3,4,5,6,7,8,9,4\n", "line 3", "Flag 4"},
      {std::string(kHeader) + row(1, 0) + "1,2,3,4,5,6,7,8,99999,0\n", "line 3", "outside"},
      {"B1,B2,B3,B4,B5,B6,B7,B8,B9\n" + row(1, 0) + row(1, 0), "line 1", "header"},
      {std::string(kHeader) + row(1, 0), "line 2", "1 data rows"},
      {std::string(kHeader) + row(1, 0) + row(1, 0) + row(1, 0), "line 4", "3 data rows"},
  };
  for (const auto& c : cases) {
    std::string m = input_error([&] { parse_pixel_csv(c.text, path, 2); });
    EXPECT_NE(m.find(path), std::string::npos) << c.text << " -> " << m;
    EXPECT_NE(m.find(c.line), std::string::npos) << c.text << " -> " << m;
    EXPECT_NE(m.find(c.what), std::string::npos) << c.text << " -> " << m;
  }
}

TEST(TimeSen2Crop, SeasonStartsOnOrBeforeTheFirstDate) {
  // 2019_33UVP: the agronomic year Sep 2018 - Aug 2019.
  auto c = make_calendar(dates({"20181008", "20190131", "20190416", "20190625", "20190824", "20190901"}), 9,
                         sentinel2::OffsetMode::Auto);
  EXPECT_EQ(c.season_year, 2018);
  EXPECT_EQ(c.month_of_row, (std::vector<int>{1, 4, 7, 9, 11, -1}));
  EXPECT_EQ(c.rows_outside, 1u);
  EXPECT_EQ(c.rows_by_month[4], (std::vector<std::size_t>{1}));
  // A first date in the season month itself starts the season that year; the earliest date counts, not the first row.
  EXPECT_EQ(make_calendar(dates({"20180910", "20170901"}), 9, sentinel2::OffsetMode::Auto).season_year, 2017);
  EXPECT_EQ(make_calendar(dates({"20180305"}), 1, sentinel2::OffsetMode::Auto).season_year, 2018);
  EXPECT_EQ(make_calendar(dates({"20180305"}), 1, sentinel2::OffsetMode::Auto).month_of_row[0], 2);
}

TEST(TimeSen2Crop, OffsetByDateRuleOrForced) {
  auto d = dates({"20210915", "20220124", "20220125"});
  EXPECT_EQ(make_calendar(d, 9, sentinel2::OffsetMode::Auto).offset_of_row, (std::vector<int>{0, 0, -1000}));
  EXPECT_EQ(make_calendar(d, 9, sentinel2::OffsetMode::Zero).offset_of_row, (std::vector<int>{0, 0, 0}));
  EXPECT_EQ(make_calendar(d, 9, sentinel2::OffsetMode::Baseline04).offset_of_row,
            (std::vector<int>{-1000, -1000, -1000}));
  // Applied to the values: 1500 on 2022-01-25 is reflectance 0.05.
  auto out = composite_of({"20220125"}, row(1500, 0));
  EXPECT_EQ(out[4 * kBands + 0], 500);
}

TEST(TimeSen2Crop, DuplicateDatesBothFeedTheMedian) {
  // Oct 2018 has three observations, two on the same date: median(100, 300, 1000) = 300. Averaging the duplicates
  // first (as one loader does) would give median(200, 1000) = 600.
  auto out = composite_of({"20181005", "20181005", "20181020"}, row(100, 0) + row(300, 0) + row(1000, 0));
  EXPECT_EQ(out[1 * kBands + 0], 300);
  EXPECT_EQ(out[1 * kBands + 8], 308);
}

TEST(TimeSen2Crop, FlagsMaskObservations) {
  // A bright cloudy value must not enter November's median: median(500, 600) = 550 (rounded half up).
  const std::string rows = row(500, 0) + row(600, 0) + row(9000, 1) + row(8000, 2) + row(700, 3);
  const std::vector<std::string> d = {"20181101", "20181110", "20181115", "20181120", "20181125"};
  EXPECT_EQ(composite_of(d, rows)[2 * kBands], 550);
  CompositeRule snow_ok;
  snow_ok.valid_flag = parse_valid_flags({0, 3});
  EXPECT_EQ(composite_of(d, rows, snow_ok)[2 * kBands], 600);  // median(500, 600, 700)
  CompositeRule mean;
  mean.method = composite::Method::Mean;
  EXPECT_EQ(composite_of(d, rows, mean)[2 * kBands], 550);
  EXPECT_THROW(parse_valid_flags({0, 4}), ConfigError);
  // A zero band is L2A no data: the whole observation is masked, as in `s2crop composite`.
  EXPECT_EQ(composite_of({"20181101", "20181110"}, row(500, 0) + "0,601,602,603,604,605,606,607,608,0\n")[2 * kBands], 500);
}

TEST(TimeSen2Crop, EmptyMonthsAreGapFilled) {
  // Clear in Sep (100) and Dec (400); Oct has only a cloudy observation, Nov none; nothing after December.
  auto out = composite_of({"20180905", "20181010", "20181205"}, row(100, 0) + row(5000, 1) + row(400, 0));
  EXPECT_EQ(out[0 * kBands], 100);
  EXPECT_EQ(out[1 * kBands], 200);
  EXPECT_EQ(out[2 * kBands], 300);
  for (int m = 3; m < 12; ++m) EXPECT_EQ(out[static_cast<std::size_t>(m) * kBands], 400) << m;
}

TEST(TimeSen2Crop, AllCloudyPixelIsDropped) {
  bool kept = true;
  composite_of({"20181005", "20190405", "20190901"}, row(100, 1) + row(200, 2) + row(300, 0), {}, &kept);
  EXPECT_FALSE(kept);  // the only clear observation lies outside the season
  composite_of({"20181005", "20190405"}, row(100, 1) + row(200, 0), {}, &kept);
  EXPECT_TRUE(kept);
}

TEST(TimeSen2Crop, ScansTheRealLayout) {
  const std::string root = fresh_dir("scan");
  // Top folder name as in one loader ("Dataset/"), a 2019_-prefixed tile and different date counts per tile.
  const std::string a = root + "/Dataset/33UVP", b = root + "/Dataset/2019_33UVP";
  write(a + "/dates.csv", "acquisition_date\n20170905\n20171010\n20180110\n");
  write(b + "/dates.csv", "acquisition_date\n20181008\n20190131\n");
  for (int n : {10, 2, 0, 1}) write(a + "/3/" + std::to_string(n) + ".csv", kHeader + row(1, 0) + row(2, 0) + row(3, 0));
  write(a + "/12/0.csv", kHeader + row(1, 0) + row(2, 0) + row(3, 0));
  write(a + "/12/notes.txt", "not a sample");
  write(b + "/0/0.csv", kHeader + row(1, 0) + row(2, 0));
  fs::create_directories(b + "/previews");  // not a class folder: ignored with a warning
  write(root + "/README.txt", "TimeSen2Crop");
  std::vector<std::string> warnings;
  Inventory inv = scan_tree(root, warnings);
  ASSERT_EQ(inv.tiles.size(), 2u);
  EXPECT_EQ(inv.tiles[0].name, "2019_33UVP");
  EXPECT_EQ(inv.tiles[1].name, "33UVP");
  EXPECT_EQ(inv.tiles[0].dates.size(), 2u);
  EXPECT_EQ(inv.tiles[1].dates.size(), 3u);
  std::vector<std::string> order;
  for (auto& f : inv.files)
    order.push_back(inv.tiles[f.tile].name + "/" + std::to_string(f.class_id) + "/" + fs::path(f.path).filename().string());
  EXPECT_EQ(order, (std::vector<std::string>{"2019_33UVP/0/0.csv", "33UVP/3/0.csv", "33UVP/3/1.csv", "33UVP/3/2.csv",
                                              "33UVP/3/10.csv", "33UVP/12/0.csv"}));
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("previews"), std::string::npos);
  EXPECT_NE(warnings[1].find("not .csv"), std::string::npos);
  // The inventory survives the broadcast text.
  Inventory back = deserialise(serialise(inv));
  ASSERT_EQ(back.files.size(), inv.files.size());
  for (std::size_t i = 0; i < inv.files.size(); ++i) {
    EXPECT_EQ(back.files[i].path, inv.files[i].path);
    EXPECT_EQ(back.files[i].class_id, inv.files[i].class_id);
    EXPECT_EQ(back.files[i].tile, inv.files[i].tile);
  }
  EXPECT_EQ(back.tiles[1].dates, inv.tiles[1].dates);
  fs::remove_all(root);
}

TEST(TimeSen2Crop, ScanErrorsNameThePath) {
  const std::string root = fresh_dir("scan_bad");
  EXPECT_NE(input_error([&] { std::vector<std::string> w; scan_tree(root + "/missing", w); }).find("not found"),
            std::string::npos);
  write(root + "/data/readme.txt", "x");
  std::string m = input_error([&] { std::vector<std::string> w; scan_tree(root, w); });
  EXPECT_NE(m.find("not a TimeSen2Crop tree"), std::string::npos) << m;
  fs::create_directories(root + "/data/32TNT/0");
  m = input_error([&] { std::vector<std::string> w; scan_tree(root, w); });
  EXPECT_NE(m.find("32TNT/dates.csv"), std::string::npos) << m;
  write(root + "/data/32TNT/dates.csv", "acquisition_date\n20171005\n");
  fs::create_directories(root + "/data/32TNT/16");
  m = input_error([&] { std::vector<std::string> w; scan_tree(root, w); });
  EXPECT_NE(m.find("32TNT/16"), std::string::npos) << m;
  EXPECT_NE(m.find("0..15"), std::string::npos) << m;
  fs::remove_all(root);
}
