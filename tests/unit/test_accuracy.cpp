// Accuracy measures: hand-checkable matrices, published worked examples (Congalton 1991 for kappa, Olofsson et al.
// 2014 for the area-adjusted estimates), the edge cases, and the JSON/Markdown reports.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <unistd.h>

#include "s2crop/assess/accuracy.hpp"
#include "s2crop/assess/report.hpp"
#include "s2crop/common/errors.hpp"

using namespace s2crop;
using assess::ConfusionMatrix;

namespace {
// Rows = map, columns = reference.
ConfusionMatrix matrix_of(const std::vector<std::vector<std::int64_t>>& rows) {
  ConfusionMatrix m(static_cast<int>(rows.size()));
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i].size(); ++j) m.add(static_cast<int>(i), static_cast<int>(j), rows[i][j]);
  return m;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

TEST(ConfusionMatrix, CountsPairsRowsMapColumnsReference) {
  const std::uint8_t map[] = {0, 0, 1, 2, 255, 1, 2};
  const std::uint8_t ref[] = {0, 1, 1, 255, 0, 1, 0};
  ConfusionMatrix m(3);
  m.add_pairs(map, ref, 7);
  EXPECT_EQ(m.total(), 5);  // pairs with a 255 on either side are skipped
  EXPECT_EQ(m.at(0, 0), 1);
  EXPECT_EQ(m.at(0, 1), 1);  // mapped 0, reference 1
  EXPECT_EQ(m.at(1, 1), 2);
  EXPECT_EQ(m.at(2, 0), 1);
  EXPECT_EQ(m.map_total(0), 2);
  EXPECT_EQ(m.reference_total(1), 3);
  EXPECT_EQ(m.agreement(), 3);
}

TEST(ConfusionMatrix, LabelOutsideTheClassesIsAnErrorNamingIt) {
  const std::uint8_t map[] = {0, 7};
  const std::uint8_t ref[] = {0, 1};
  ConfusionMatrix m(3);
  try {
    m.add_pairs(map, ref, 2);
    FAIL() << "no error for map label 7";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("map label 7 at position 1"), std::string::npos) << e.what();
  }
}

TEST(Accuracy, HandCheckedTwoClassMatrix) {
  // OA = 35/50; p_e = (25*30 + 25*20)/50^2 = 0.5, kappa = (0.7-0.5)/0.5.
  auto a = assess::accuracy(matrix_of({{20, 5}, {10, 15}}));
  EXPECT_EQ(a.samples, 50);
  EXPECT_NEAR(a.overall, 0.7, 1e-12);
  EXPECT_NEAR(a.kappa, 0.4, 1e-12);
  EXPECT_NEAR(a.per_class[0].users, 20.0 / 25, 1e-12);
  EXPECT_NEAR(a.per_class[0].producers, 20.0 / 30, 1e-12);
  EXPECT_NEAR(a.per_class[0].f1, 2 * 20.0 / (25 + 30), 1e-12);
  EXPECT_NEAR(a.per_class[1].users, 15.0 / 25, 1e-12);
  EXPECT_NEAR(a.per_class[1].producers, 15.0 / 20, 1e-12);
  EXPECT_NEAR(a.macro_f1, (40.0 / 55 + 30.0 / 45) / 2, 1e-12);
  EXPECT_EQ(a.macro_f1_classes, 2);
}

TEST(Accuracy, KappaOfCongalton1991) {
  // Congalton (1991, Remote Sensing of Environment 37:35-46), Table 1: OA 74 %, KHAT 0.65, deciduous producer's
  // accuracy 87 %, user's 57 %.
  auto a = assess::accuracy(matrix_of({{65, 4, 22, 24}, {6, 81, 5, 8}, {0, 11, 85, 19}, {4, 7, 3, 90}}));
  EXPECT_EQ(a.samples, 434);
  EXPECT_NEAR(a.overall, 0.74, 0.005);
  EXPECT_NEAR(a.kappa, 0.65, 0.005);
  EXPECT_NEAR(a.per_class[0].producers, 0.87, 0.005);
  EXPECT_NEAR(a.per_class[0].users, 0.57, 0.005);
}

TEST(Accuracy, KappaIsZeroForAChanceMapAndOneForAPerfectMap) {
  EXPECT_NEAR(assess::accuracy(matrix_of({{10, 10}, {10, 10}})).kappa, 0.0, 1e-12);
  EXPECT_NEAR(assess::accuracy(matrix_of({{7, 0, 0}, {0, 5, 0}, {0, 0, 9}})).kappa, 1.0, 1e-12);
  // Everything in one class on both sides: p_e = 1, kappa undefined.
  EXPECT_TRUE(std::isnan(assess::accuracy(matrix_of({{9, 0}, {0, 0}})).kappa));
}

TEST(Accuracy, MacroF1CountsNeverMappedReferenceClassesAsZeroAndSkipsClassesAbsentFromTheReference) {
  // Class 1 is in the reference but never mapped; class 2 is mapped but never in the reference.
  auto a = assess::accuracy(matrix_of({{8, 2, 0}, {0, 0, 0}, {2, 0, 0}}));
  EXPECT_EQ(a.per_class[1].f1, 0.0);
  EXPECT_TRUE(std::isnan(a.per_class[1].users));
  EXPECT_TRUE(std::isnan(a.per_class[2].producers));
  EXPECT_TRUE(std::isnan(a.per_class[2].f1));
  EXPECT_EQ(a.macro_f1_classes, 2);
  double f1_0 = 2 * 0.8 * 0.8 / 1.6;
  EXPECT_NEAR(a.macro_f1, f1_0 / 2, 1e-12);
}

TEST(AreaAdjusted, WorkedExampleOfOlofsson2014) {
  // Olofsson et al. 2014 (RSE 148:42-57), section 5: deforestation, forest gain, stable forest, stable non-forest;
  // Table 8 sample counts (rows = map), mapped areas in 30 m pixels. Published: p. 53-54, rounded as printed.
  auto m = matrix_of({{66, 0, 5, 4}, {0, 55, 8, 12}, {1, 0, 153, 11}, {2, 1, 9, 313}});
  auto r = assess::area_adjusted(m, {200000, 150000, 3200000, 6450000}, 30.0 * 30.0);
  EXPECT_DOUBLE_EQ(r.total_pixels, 10000000);
  EXPECT_NEAR(r.overall.value, 0.95, 0.005);
  EXPECT_NEAR(r.overall.half_width(), 0.02, 0.005);
  const double ua[] = {0.88, 0.73, 0.93, 0.96}, ua_ci[] = {0.07, 0.10, 0.04, 0.02};
  const double pa[] = {0.75, 0.85, 0.93, 0.96}, pa_ci[] = {0.21, 0.25, 0.03, 0.02};
  const double area_ha[] = {21158, 11686, 285770, 581386}, area_ci_ha[] = {6158, 3756, 15510, 16282};
  for (size_t k = 0; k < 4; ++k) {
    const auto& c = r.per_class[k];
    EXPECT_NEAR(c.users.value, ua[k], 0.005) << k;
    EXPECT_NEAR(c.users.half_width(), ua_ci[k], 0.005) << k;
    EXPECT_NEAR(c.producers.value, pa[k], 0.005) << k;
    EXPECT_NEAR(c.producers.half_width(), pa_ci[k], 0.005) << k;
    EXPECT_NEAR(c.area_hectares.value, area_ha[k], 1.0) << k;
    EXPECT_NEAR(c.area_hectares.half_width(), area_ci_ha[k], 1.0) << k;
    EXPECT_NEAR(c.area_pixels.value, c.area_hectares.value / 0.09, 1e-6) << k;
  }
  // The estimated error matrix: rows sum to the strata weights, everything to 1.
  double all = 0;
  for (size_t i = 0; i < 4; ++i) {
    double row = 0;
    for (size_t j = 0; j < 4; ++j) row += r.proportions[i * 4 + j];
    EXPECT_NEAR(row, r.per_class[i].weight, 1e-12);
    all += row;
  }
  EXPECT_NEAR(all, 1.0, 1e-12);
}

TEST(AreaAdjusted, ProportionalAllocationReproducesTheSampleAccuracy) {
  // When every stratum is sampled in proportion to its area (a census of a map, as in a pixel-by-pixel comparison
  // with full reference), the stratified estimates equal the plain sample ones.
  auto m = matrix_of({{40, 5, 5}, {3, 25, 2}, {2, 3, 15}});
  auto r = assess::area_adjusted(m, {50, 30, 20}, 100.0);
  auto a = assess::accuracy(m);
  EXPECT_NEAR(r.overall.value, a.overall, 1e-12);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_NEAR(r.per_class[k].users.value, a.per_class[k].users, 1e-12);
    EXPECT_NEAR(r.per_class[k].producers.value, a.per_class[k].producers, 1e-12);
    EXPECT_NEAR(r.per_class[k].area_pixels.value, static_cast<double>(a.per_class[k].reference), 1e-9);
  }
}

TEST(AreaAdjusted, UnsampledStratumIsLeftOutAndReported) {
  auto m = matrix_of({{10, 2, 0}, {1, 9, 0}, {0, 0, 0}});
  auto r = assess::area_adjusted(m, {100, 100, 50}, 100.0);
  ASSERT_EQ(r.unsampled_strata.size(), 1u);
  EXPECT_EQ(r.unsampled_strata[0], 2);
  EXPECT_DOUBLE_EQ(r.total_pixels, 200);
  EXPECT_TRUE(std::isnan(r.per_class[2].users.value));
  EXPECT_THROW(assess::area_adjusted(m, {0, 0, 5}, 100.0), Error);
  EXPECT_THROW(assess::area_adjusted(m, {1, 2}, 100.0), Error);
}

TEST(AreaAdjusted, ReferenceClassNeverMappedHasProducersAccuracyZero) {
  auto m = matrix_of({{10, 3}, {0, 0}});
  auto r = assess::area_adjusted(m, {1000, 0}, 100.0);
  EXPECT_EQ(r.per_class[1].producers.value, 0.0);
  EXPECT_NEAR(r.per_class[1].area_pixels.value, 1000.0 * 3 / 13, 1e-9);
}

TEST(AccuracyReport, JsonAndMarkdownCarryTheNumbers) {
  std::string dir = testing::TempDir() + "/s2crop_report_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  assess::AccuracyReport report;
  report.title = "Accuracy of test map";
  report.class_names = {"Maize", "Winter wheat", "Soy"};
  report.matrix = matrix_of({{20, 5, 0}, {10, 15, 0}, {0, 0, 0}});
  report.accuracy = assess::accuracy(report.matrix);
  report.area_adjusted = assess::area_adjusted(report.matrix, {250, 250, 0}, 100.0);
  report.sample_description = "every labelled pixel";
  report.provenance = {{"map", "m.h5"}};
  report.confusion_figure = "confusion.png";
  assess::write_json_report(dir + "/a.json", report);
  assess::write_markdown_report(dir + "/a.md", report);
  std::string json = read_file(dir + "/a.json"), md = read_file(dir + "/a.md");
  EXPECT_NE(json.find("\"overall_accuracy\": 0.7,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"kappa\": 0.4,"), std::string::npos);
  EXPECT_NE(json.find("[20, 5, 0]"), std::string::npos);
  EXPECT_NE(json.find("\"name\": \"Winter wheat\""), std::string::npos);
  // Soy is in neither map nor reference: undefined accuracies are null, not NaN (which JSON cannot carry).
  EXPECT_NE(json.find("\"users_accuracy\": null"), std::string::npos);
  EXPECT_FALSE(std::regex_search(json, std::regex("[\\[ :]-?nan\\b")));
  EXPECT_NE(md.find("| overall accuracy | 0.7000 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| Cohen's kappa | 0.4000 |"), std::string::npos);
  EXPECT_NE(md.find("![Confusion matrix"), std::string::npos);
  EXPECT_NE(md.find("| **Maize** | **20** | 5 | 25 |"), std::string::npos) << md;
  EXPECT_EQ(md.find("Soy"), std::string::npos);  // absent classes stay out of the tables
  EXPECT_NE(md.find("## Area estimates"), std::string::npos);
  // Only the two reports (and the chart the markdown links) are left: no temporary of the staged writes.
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
  std::filesystem::remove_all(dir);
}

TEST(AccuracyReport, UnwritablePathIsAnOutputErrorNamingIt) {
  assess::AccuracyReport report;
  report.class_names = {"a"};
  report.accuracy = assess::accuracy(report.matrix);
  try {
    assess::write_json_report("/nonexistent-dir/x/a.json", report);
    FAIL();
  } catch (const OutputError& e) {
    EXPECT_EQ(e.path(), "/nonexistent-dir/x/a.json");
  }
}
