#pragma once
// The TimeSen2Crop on-disk format (see ../shared/data/TIMESEN2CROP_FORMAT.md and DOMAIN.md) and the reduction of
// one irregular pixel series to 12 monthly composites. No MPI here: the import driver
// (samples/timesen2crop_import.hpp) distributes these functions over the ranks.
//
//   <root>/.../<tile>/dates.csv            "acquisition_date", then YYYYMMDD per line (duplicates allowed)
//   <root>/.../<tile>/<class id>/<n>.csv   "B1,B2,B3,B4,B5,B6,B7,B8,B9,Flag", one row per line of dates.csv
// Tile folders are found by name anywhere under the root (the zip's top folder varies).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/composite/kernels.hpp"
#include "s2crop/sentinel2/acquisition.hpp"
#include "s2crop/sentinel2/bands.hpp"

namespace s2crop::samples::timesen2crop {

constexpr int kBands = 9;
constexpr int kFlags = 4;  // 0 clear, 1 cloud, 2 shadow, 3 snow
enum Flag : int { Clear = 0, Cloud = 1, Shadow = 2, Snow = 3 };

// The Sentinel-2 bands behind the generic columns B1..B9: B02 B03 B04 B05 B06 B07 B8A B11 B12 (no B08).
const std::vector<std::string>& band_names();
// The header line of a sample CSV, split: B1 ... B9, Flag.
const std::vector<std::string>& csv_columns();

// MGRS tile folder name, optionally with a year prefix: "33UVP", "2019_33UVP" (^(\d{4}_)?\d{1,2}[C-X][A-Z]{2}$).
bool is_tile_folder_name(const std::string& name);

// dates.csv of a tile, in file order. Throws InputError naming the file and line.
std::vector<sentinel2::Date> read_dates(const std::string& path);
std::vector<sentinel2::Date> parse_dates(const std::string& text, const std::string& path);

// One pixel's series as stored: values are reflectance x 10000 before any --boa-offset.
struct PixelSeries {
  std::vector<std::int32_t> values;  // [row][kBands]
  std::vector<std::uint8_t> flags;   // [row]
  std::size_t rows() const { return flags.size(); }
};

// Parses a sample CSV that must have `expected_rows` data rows (the tile's date count). Throws InputError whose
// message names the file and the line: bad header, wrong column count, non-integer value, value outside
// -32768..65535, Flag outside 0..3, wrong row count.
PixelSeries read_pixel_csv(const std::string& path, std::size_t expected_rows);
PixelSeries parse_pixel_csv(const std::string& text, const std::string& path, std::size_t expected_rows);

// How a tile's rows map to the season: month index per row (-1 outside the 12 months) and the offset per row.
struct TileCalendar {
  int season_year = 0, season_month = 9;  // first month of the 12
  std::vector<int> month_of_row;
  std::vector<int> offset_of_row;
  std::vector<std::vector<std::size_t>> rows_by_month;  // [12] row indices
  std::size_t rows_outside = 0;
};

// The season starts in `season_month` of the year that puts its start on or before the tile's earliest date
// (2019_33UVP: Sep 2018 - Aug 2019). Offsets: Auto = the date rule (-1000 from 2022-01-25), Zero, Baseline04.
TileCalendar make_calendar(const std::vector<sentinel2::Date>& dates, int season_month,
                           sentinel2::OffsetMode offset_mode);

struct CompositeRule {
  composite::Method method = composite::Method::Median;
  std::array<bool, kFlags> valid_flag{{true, false, false, false}};  // which Flag values count as clear
};
// "0" or "0,3" -> the valid-flag table; throws ConfigError for a flag outside 0..3.
std::array<bool, kFlags> parse_valid_flags(const std::vector<int>& flags);

// 12 monthly composites [month][kBands] of one pixel with composite::composite_month and composite::fill_gaps
// (the code path of `s2crop composite`). An observation is clear when its Flag is valid and no band is 0 (L2A no
// data, as composite::apply_offset treats DN 0). Returns false (out untouched beyond scratch) when no observation
// of the season is clear: such a pixel has no series.
// `clear_months` (optional, [12]) receives 1 for each month with at least one clear observation (0: gap-filled).
bool composite_series(const PixelSeries& series, const TileCalendar& calendar, const CompositeRule& rule,
                      std::int16_t* out, std::uint8_t* clear_months = nullptr);

}  // namespace s2crop::samples::timesen2crop
