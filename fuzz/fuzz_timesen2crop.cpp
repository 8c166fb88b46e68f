// libFuzzer target: the TimeSen2Crop files of one tile and one pixel as `import-timesen2crop` reads them:
// dates.csv (timesen2crop::parse_dates) and a sample CSV (parse_pixel_csv, B1..B9,Flag with one row per date),
// then the season calendar and the monthly composite of the series. The input is dates.csv, a NUL byte, and the
// sample CSV (no NUL: the whole input is dates.csv and the sample CSV is empty). Expected failures are
// s2crop::Error; anything else escaping is a finding.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "s2crop/common/errors.hpp"
#include "s2crop/samples/timesen2crop.hpp"

using namespace s2crop;
using namespace s2crop::samples::timesen2crop;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const char* begin = reinterpret_cast<const char*>(data);
  const char* nul = static_cast<const char*>(std::memchr(begin, 0, size));
  const std::string dates_text(begin, nul ? nul : begin + size);
  const std::string sample_text = nul ? std::string(nul + 1, begin + size) : std::string();
  std::vector<sentinel2::Date> dates;
  try {
    dates = parse_dates(dates_text, "/data/TimeSen2Crop/33UVP/dates.csv");
  } catch (const Error&) {
  }
  PixelSeries series;
  try {
    // A tile without valid dates still checks the sample parser (its row count then cannot match).
    series = parse_pixel_csv(sample_text, "/data/TimeSen2Crop/33UVP/1/1.csv", dates.size());
  } catch (const Error&) {
    return 0;
  }
  if (dates.empty()) return 0;  // a header-only sample CSV matches the 0 rows asked for: nothing to composite
  if (series.rows() != dates.size() || series.values.size() != dates.size() * kBands) std::abort();
  // The import's settings: September season start, median of clear observations; then also every flag clear.
  const int season_month = 1 + static_cast<int>(size % 12);
  for (auto mode : {sentinel2::OffsetMode::Auto, sentinel2::OffsetMode::Zero}) {
    try {
      TileCalendar calendar = make_calendar(dates, season_month, mode);
      CompositeRule rule;
      if (mode == sentinel2::OffsetMode::Zero) {
        rule.method = composite::Method::Mean;
        rule.valid_flag = parse_valid_flags({0, 1, 2, 3});
      }
      std::int16_t out[composite::kMonths * kBands];
      std::uint8_t clear[composite::kMonths];
      composite_series(series, calendar, rule, out, clear);
    } catch (const Error&) {
    }
  }
  return 0;
}
