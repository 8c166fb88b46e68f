#include "s2crop/samples/timesen2crop.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <regex>

#include "s2crop/common/errors.hpp"

namespace s2crop::samples::timesen2crop {

using sentinel2::Date;

namespace {

// Whole file into memory: sample files are ~1-3 kB, and one read beats a stream per line on a million of them.
std::string slurp(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw InputError(path, std::string("cannot open: ") + std::strerror(errno));
  std::string text;
  char buf[8192];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw InputError(path, "read error");
  return text;
}

// Line iterator over a text buffer that tolerates CRLF endings and a UTF-8 byte-order mark (files saved on
// Windows), and counts physical lines for error messages.
class Lines {
 public:
  explicit Lines(const std::string& text) : text_(text) {
    if (text_.compare(0, 3, "\xEF\xBB\xBF") == 0) pos_ = 3;
  }
  bool next(std::string_view& line) {
    if (pos_ >= text_.size()) return false;
    std::size_t end = text_.find('\n', pos_);
    if (end == std::string::npos) end = text_.size();
    line = std::string_view(text_).substr(pos_, end - pos_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos_ = end + 1;
    ++number_;
    return true;
  }
  int number() const { return number_; }

 private:
  const std::string& text_;
  std::size_t pos_ = 0;
  int number_ = 0;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool blank(std::string_view s) { return trim(s).empty(); }

std::string at_line(int line) { return "line " + std::to_string(line) + ": "; }

std::string shorten(std::string_view s) {
  return s.size() > 60 ? std::string(s.substr(0, 60)) + "..." : std::string(s);
}

bool parse_int(std::string_view s, std::int64_t& v) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

const std::vector<std::string>& band_names() {
  static const std::vector<std::string> names = {"B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12"};
  return names;
}

const std::vector<std::string>& csv_columns() {
  static const std::vector<std::string> cols = {"B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "Flag"};
  return cols;
}

bool is_tile_folder_name(const std::string& name) {
  // Broader than MGRS proper (I and O are not latitude bands): users keep their own regions in this layout.
  static const std::regex pattern(R"(^(\d{4}_)?\d{1,2}[C-X][A-Z]{2}$)");
  return std::regex_match(name, pattern);
}

std::vector<Date> parse_dates(const std::string& text, const std::string& path) {
  Lines lines(text);
  std::string_view line;
  if (!lines.next(line) || trim(line) != "acquisition_date")
    throw InputError(path, at_line(1) + "expected the header 'acquisition_date' (a TimeSen2Crop dates.csv), found '" +
                               shorten(line) + "'");
  std::vector<Date> dates;
  while (lines.next(line)) {
    std::string_view s = trim(line);
    if (s.empty()) continue;
    bool digits = s.size() == 8 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    Date d;
    if (digits) {
      d.year = std::stoi(std::string(s.substr(0, 4)));
      d.month = std::stoi(std::string(s.substr(4, 2)));
      d.day = std::stoi(std::string(s.substr(6, 2)));
    }
    if (!digits || !d.valid())
      throw InputError(path, at_line(lines.number()) + "'" + shorten(s) + "' is not a date YYYYMMDD");
    dates.push_back(d);
  }
  if (dates.empty()) throw InputError(path, "lists no acquisition date");
  return dates;
}

std::vector<Date> read_dates(const std::string& path) { return parse_dates(slurp(path), path); }

PixelSeries parse_pixel_csv(const std::string& text, const std::string& path, std::size_t expected_rows) {
  const auto& columns = csv_columns();
  Lines lines(text);
  std::string_view line;
  if (!lines.next(line)) throw InputError(path, "empty file (expected the header B1,...,B9,Flag)");
  {
    std::size_t start = 0, col = 0;
    bool ok = true;
    std::string_view header = trim(line);
    for (; col < columns.size() && ok; ++col) {
      std::size_t end = header.find(',', start);
      std::string_view field = trim(header.substr(start, end == std::string_view::npos ? end : end - start));
      ok = field == columns[col] && ((col + 1 == columns.size()) == (end == std::string_view::npos));
      start = end + 1;
    }
    if (!ok)
      throw InputError(path, at_line(1) + "expected the header B1,B2,B3,B4,B5,B6,B7,B8,B9,Flag, found '" +
                                 shorten(header) + "'");
  }
  PixelSeries s;
  s.values.reserve(expected_rows * kBands);
  s.flags.reserve(expected_rows);
  while (lines.next(line)) {
    if (blank(line)) continue;
    std::size_t start = 0;
    int col = 0;
    while (true) {
      std::size_t end = line.find(',', start);
      std::string_view field = line.substr(start, end == std::string_view::npos ? end : end - start);
      if (col >= kBands + 1)
        throw InputError(path, at_line(lines.number()) + "more than 10 columns (B1..B9, Flag)");
      std::int64_t v = 0;
      if (!parse_int(field, v))
        throw InputError(path, at_line(lines.number()) + "column " + columns[static_cast<std::size_t>(col)] + ": '" +
                                   shorten(trim(field)) + "' is not an integer");
      if (col < kBands) {
        if (v < -32768 || v > 65535)
          throw InputError(path, at_line(lines.number()) + "column " + columns[static_cast<std::size_t>(col)] +
                                     ": " + std::to_string(v) + " is outside -32768..65535");
        s.values.push_back(static_cast<std::int32_t>(v));
      } else {
        if (v < 0 || v >= kFlags)
          throw InputError(path, at_line(lines.number()) + "Flag " + std::to_string(v) +
                                     " is not 0 (clear), 1 (cloud), 2 (shadow) or 3 (snow)");
        s.flags.push_back(static_cast<std::uint8_t>(v));
      }
      ++col;
      if (end == std::string_view::npos) break;
      start = end + 1;
    }
    if (col != kBands + 1)
      throw InputError(path, at_line(lines.number()) + std::to_string(col) +
                                 " columns, expected 10 (B1..B9, Flag)");
  }
  if (s.rows() != expected_rows)
    throw InputError(path, "line " + std::to_string(lines.number()) + ": " + std::to_string(s.rows()) +
                               " data rows, but the tile's dates.csv lists " + std::to_string(expected_rows) +
                               " dates (one row per date)");
  return s;
}

PixelSeries read_pixel_csv(const std::string& path, std::size_t expected_rows) {
  return parse_pixel_csv(slurp(path), path, expected_rows);
}

TileCalendar make_calendar(const std::vector<Date>& dates, int season_month, sentinel2::OffsetMode offset_mode) {
  if (season_month < 1 || season_month > 12) throw ConfigError("--season-month must be 1-12");
  TileCalendar c;
  c.season_month = season_month;
  c.rows_by_month.assign(composite::kMonths, {});
  if (dates.empty()) return c;
  const Date first = *std::min_element(dates.begin(), dates.end());
  c.season_year = first.month >= season_month ? first.year : first.year - 1;
  const int start = c.season_year * 12 + season_month - 1;
  for (std::size_t r = 0; r < dates.size(); ++r) {
    const Date& d = dates[r];
    int m = d.year * 12 + d.month - 1 - start;
    if (m < 0 || m >= composite::kMonths) {
      m = -1;
      ++c.rows_outside;
    } else {
      c.rows_by_month[static_cast<std::size_t>(m)].push_back(r);
    }
    c.month_of_row.push_back(m);
    int offset = 0;
    switch (offset_mode) {
      case sentinel2::OffsetMode::Auto: offset = sentinel2::offset_by_date(d); break;
      case sentinel2::OffsetMode::Zero: offset = 0; break;
      case sentinel2::OffsetMode::Baseline04: offset = sentinel2::kBaseline04Offset; break;
    }
    c.offset_of_row.push_back(offset);
  }
  return c;
}

std::array<bool, kFlags> parse_valid_flags(const std::vector<int>& flags) {
  std::array<bool, kFlags> valid{};
  if (flags.empty()) throw ConfigError("--valid-flags needs at least one flag (0 clear, 1 cloud, 2 shadow, 3 snow)");
  for (int f : flags) {
    if (f < 0 || f >= kFlags)
      throw ConfigError("--valid-flags: " + std::to_string(f) + " is not a TimeSen2Crop flag (0 clear, 1 cloud, "
                        "2 shadow, 3 snow)");
    valid[static_cast<std::size_t>(f)] = true;
  }
  return valid;
}

bool composite_series(const PixelSeries& series, const TileCalendar& calendar, const CompositeRule& rule,
                      std::int16_t* out, std::uint8_t* clear_months) {
  constexpr int kMonths = composite::kMonths;
  std::uint8_t count[kMonths] = {};
  // Scratch in the kernel's layout [n_obs][n_bands][n_pixels = 1]; a month rarely has more than ~15 rows.
  std::vector<std::int16_t> obs;
  std::vector<std::uint8_t> valid;
  bool any = false;
  for (int m = 0; m < kMonths; ++m) {
    std::int16_t* month_out = out + static_cast<std::size_t>(m) * kBands;
    const auto& rows = calendar.rows_by_month[static_cast<std::size_t>(m)];
    obs.resize(rows.size() * kBands);
    valid.resize(rows.size());
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const std::size_t r = rows[k];
      const std::int32_t* v = series.values.data() + r * kBands;
      const int offset = calendar.offset_of_row[r];
      // Same arithmetic as composite::apply_offset (0 = no data, clamp to +-32767), on signed values because an
      // exported series may already carry its offset.
      bool ok = rule.valid_flag[series.flags[r]];
      for (int b = 0; b < kBands; ++b) {
        ok = ok && v[b] != 0;
        const std::int32_t x = std::clamp(v[b] + offset, -32767, 32767);
        obs[k * kBands + static_cast<std::size_t>(b)] = static_cast<std::int16_t>(x);
      }
      valid[k] = ok ? 1 : 0;
    }
    if (rows.empty()) {
      std::fill(month_out, month_out + kBands, composite::kNoData);
      count[m] = 0;
    } else {
      composite::composite_month(obs.data(), valid.data(), rows.size(), kBands, 1, rule.method, month_out, &count[m]);
    }
    any = any || count[m] != 0;
  }
  if (!any) return false;
  if (clear_months)
    for (int m = 0; m < kMonths; ++m) clear_months[m] = count[m] > 0 ? 1 : 0;
  composite::fill_gaps(out, count, kMonths, kBands, 1);
  return true;
}

}  // namespace s2crop::samples::timesen2crop
