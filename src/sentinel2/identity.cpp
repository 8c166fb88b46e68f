// What identifies an acquisition and its tile, apart from reading any product (GDAL-free: the option parsers and the
// model-stages-only build use it).
#include <regex>
#include <string>

#include "s2crop/common/errors.hpp"
#include "s2crop/sentinel2/acquisition.hpp"

namespace s2crop::sentinel2 {

namespace {
const std::regex kTileRe(R"((?:^|[_T/-])(\d{2}[C-HJ-NP-X][A-Z]{2})(?=[_./]|$))");
const std::regex kDateRe(R"((?:^|[^0-9])((?:19|20)\d{2})(0[1-9]|1[0-2])([0-3]\d)(?:[^0-9]|$))");
}  // namespace

bool find_tile(const std::string& text, std::string& tile) {
  std::smatch m;
  std::string s = text;
  if (std::regex_search(s, m, kTileRe)) {
    tile = m[1];
    return true;
  }
  return false;
}

bool find_date(const std::string& text, Date& date) {
  std::smatch m;
  if (std::regex_search(text, m, kDateRe)) {
    Date d{std::stoi(m[1]), std::stoi(m[2]), std::stoi(m[3])};
    if (d.valid()) {
      date = d;
      return true;
    }
  }
  return false;
}

OffsetMode parse_offset_mode(const std::string& text) {
  if (text == "auto") return OffsetMode::Auto;
  if (text == "0" || text == "none") return OffsetMode::Zero;
  if (text == "-1000") return OffsetMode::Baseline04;
  throw ConfigError("--boa-offset must be auto, 0 or -1000 (got '" + text + "')");
}

bool is_safe_tile_name(const std::string& name) {
  static const std::regex re(R"(^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$)");
  return std::regex_match(name, re);
}

bool is_mgrs_tile(const std::string& name) {
  static const std::regex re(R"(^(0[1-9]|[1-5][0-9]|60)[C-HJ-NP-X][A-HJ-NP-Z][A-HJ-NP-V]$)");
  return std::regex_match(name, re);
}

bool same_observation(const Acquisition& a, const Acquisition& b) {
  if (a.tile != b.tile || !(a.date == b.date)) return false;
  if (a.spacecraft && b.spacecraft && a.spacecraft != b.spacecraft) return false;
  if (a.relative_orbit && b.relative_orbit && a.relative_orbit != b.relative_orbit) return false;
  if (!a.sensing_start.empty() && !b.sensing_start.empty() && a.sensing_start != b.sensing_start) return false;
  return true;
}

}  // namespace s2crop::sentinel2
