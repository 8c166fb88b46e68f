#include "s2crop/sentinel2/bands.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <regex>
#include <sstream>

#include "s2crop/common/errors.hpp"

namespace s2crop::sentinel2 {

const std::vector<BandSpec>& all_bands() {
  static const std::vector<BandSpec> table = {
      {"B01", 443, 60, "coastal", "coastal", 0},     {"B02", 490, 10, "blue", "blue", 1},
      {"B03", 560, 10, "green", "green", 2},         {"B04", 665, 10, "red", "red", 3},
      {"B05", 705, 20, "rededge1", "rededge1", 4},   {"B06", 740, 20, "rededge2", "rededge2", 5},
      {"B07", 783, 20, "rededge3", "rededge3", 6},   {"B08", 842, 10, "nir", "nir", 7},
      {"B8A", 865, 20, "nir08", "nir08", 8},         {"B09", 945, 60, "nir09", "nir09", 9},
      {"B11", 1610, 20, "swir16", "swir16", 11},     {"B12", 2190, 20, "swir22", "swir22", 12},
  };
  return table;
}

static std::string normalise(std::string n) {
  for (auto& c : n) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (n.size() == 2 && n[0] == 'B' && std::isdigit(static_cast<unsigned char>(n[1]))) n = "B0" + n.substr(1);
  return n;
}

bool is_band(const std::string& name) {
  std::string n = normalise(name);
  for (auto& b : all_bands())
    if (b.name == n) return true;
  return false;
}

const BandSpec& band(const std::string& name) {
  std::string n = normalise(name);
  for (auto& b : all_bands())
    if (b.name == n) return b;
  throw ConfigError("unknown Sentinel-2 band '" + name + "' (L2A bands: B01-B09, B8A, B11, B12)");
}

std::vector<std::string> default_crop_bands() {
  return {"B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"};
}

std::vector<std::string> parse_band_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(std::remove_if(item.begin(), item.end(), [](unsigned char c) { return std::isspace(c); }), item.end());
    if (item.empty()) continue;
    const std::string& n = band(item).name;
    if (std::find(out.begin(), out.end(), n) != out.end()) throw ConfigError("band " + n + " listed twice");
    out.push_back(n);
  }
  if (out.empty()) throw ConfigError("empty band list");
  return out;
}

namespace scl {
std::vector<int> default_valid() { return {Vegetation, NotVegetated, Water, Unclassified}; }
bool is_cloud_or_shadow(int c) { return c == CloudShadow || c == CloudMedium || c == CloudHigh || c == ThinCirrus; }
}  // namespace scl

Date Date::parse(const std::string& text) {
  static const std::regex iso(R"(^(\d{4})-(\d{2})-(\d{2}))");
  static const std::regex compact(R"(^(\d{4})(\d{2})(\d{2}))");
  std::smatch m;
  Date d;
  if (std::regex_search(text, m, iso) || std::regex_search(text, m, compact)) {
    d.year = std::stoi(m[1]);
    d.month = std::stoi(m[2]);
    d.day = std::stoi(m[3]);
  }
  if (!d.valid()) throw ConfigError("not a date: '" + text + "' (expected YYYY-MM-DD or YYYYMMDD)");
  return d;
}

bool Date::valid() const {
  if (year < 1900 || year > 2200 || month < 1 || month > 12 || day < 1) return false;
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  int max_day = mdays[month - 1] + (month == 2 && leap ? 1 : 0);
  return day <= max_day;
}

std::string Date::iso() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", year, month, day);
  return buf;
}
std::string Date::compact() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d%02d%02d", year, month, day);
  return buf;
}

// Howard Hinnant's days_from_civil.
long Date::days_since_epoch() const {
  int y = year - (month <= 2);
  long era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = static_cast<unsigned>(y - era * 400);
  unsigned doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long>(doe) - 719468;
}

Date Date::from_days(long z) {
  z += 719468;
  long era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = static_cast<unsigned>(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long y = static_cast<long>(yoe) + era * 400;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  unsigned d = doy - (153 * mp + 2) / 5 + 1;
  unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return Date{static_cast<int>(y + (m <= 2)), static_cast<int>(m), static_cast<int>(d)};
}

int offset_by_date(const Date& date) {
  return date.days_since_epoch() >= Date{2022, 1, 25}.days_since_epoch() ? kBaseline04Offset : 0;
}

bool offset_by_baseline(const std::string& baseline, int& offset) {
  static const std::regex dotted(R"((\d{1,2})\.(\d{2}))");
  static const std::regex nform(R"(^N?(\d{2})(\d{2})$)");
  std::smatch m;
  int major = -1;
  if (std::regex_search(baseline, m, dotted) || std::regex_match(baseline, m, nform)) major = std::stoi(m[1]);
  if (major < 0 || major >= 90) return false;  // N9999 marks reprocessed/unknown baselines: not informative
  offset = major >= 4 ? kBaseline04Offset : 0;
  return true;
}

}  // namespace s2crop::sentinel2
