#pragma once
// The Sentinel-2 L2A band table, SCL classes, dates and the radiometric offset rule (see DOMAIN.md).
#include <cstdint>
#include <string>
#include <vector>

namespace s2crop::sentinel2 {

struct BandSpec {
  std::string name;         // "B02", "B8A"
  int centre_nm;
  int resolution_m;         // native resolution in L2A products
  std::string common_name;  // "blue"
  std::string stac_key;     // Earth Search v1 asset key, "blue"
  int safe_band_id;         // band_id in MTD_MSIL2A.xml's BOA_ADD_OFFSET list (B1=0 ... B8A=8 ... B12=12)
};

const std::vector<BandSpec>& all_bands();           // B01..B12 without B10 (absent from L2A)
const BandSpec& band(const std::string& name);      // throws ConfigError for an unknown name
bool is_band(const std::string& name);
// The 10 bands used for crop mapping: B02 B03 B04 B05 B06 B07 B08 B8A B11 B12.
std::vector<std::string> default_crop_bands();
// Parses "B02,B03,..." (also accepts "B2", "b8a"); throws ConfigError naming the bad entry.
std::vector<std::string> parse_band_list(const std::string& text);

constexpr int kQuantification = 10000;  // reflectance = (DN + offset) / 10000
constexpr int kBaseline04Offset = -1000;

// Scene classification (SCL) classes of Sen2Cor.
namespace scl {
enum Class : std::uint8_t {
  NoData = 0, Saturated = 1, DarkArea = 2, CloudShadow = 3, Vegetation = 4, NotVegetated = 5, Water = 6,
  Unclassified = 7, CloudMedium = 8, CloudHigh = 9, ThinCirrus = 10, Snow = 11
};
// Default valid set for composites: {4, 5, 6, 7}.
std::vector<int> default_valid();
// Classes that trigger dilation (clouds, their shadows, cirrus).
bool is_cloud_or_shadow(int c);
}  // namespace scl

struct Date {
  int year = 0, month = 0, day = 0;
  static Date parse(const std::string& text);  // "2021-09-05", "20210905", "2021-09-05T10:10:31Z"
  std::string iso() const;                      // "2021-09-05"
  std::string compact() const;                  // "20210905"
  long days_since_epoch() const;                // for ordering and differences
  static Date from_days(long days);
  bool valid() const;
  friend bool operator<(const Date& a, const Date& b) { return a.days_since_epoch() < b.days_since_epoch(); }
  friend bool operator==(const Date& a, const Date& b) {
    return a.year == b.year && a.month == b.month && a.day == b.day;
  }
  friend bool operator!=(const Date& a, const Date& b) { return !(a == b); }
};

// Offset (DN units) of a product by the date rule: -1000 from 2022-01-25 (processing baseline 04.00), else 0.
int offset_by_date(const Date& date);
// Offset by processing baseline "04.00"/"N0400"-style text: -1000 if >= 4.00, else 0; returns false if unparsable.
bool offset_by_baseline(const std::string& baseline, int& offset);

}  // namespace s2crop::sentinel2
