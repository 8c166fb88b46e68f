#pragma once
#include <string>
#include <vector>

namespace s2crop {

// Splits at every `separator`, keeping empty fields: "a\t\tb\t" gives {"a", "", "b", ""}. The one parser of the
// tab-separated records that ranks exchange (acquisition lists, plans).
std::vector<std::string> split_fields(const std::string& line, char separator = '\t');

// `s` as a JSON string literal, quotes included (", \\ and control characters escaped). The one escaper of every
// JSON file s2crop writes (STAC items, reports, plans, metrics).
std::string json_string(const std::string& s);

// `v` as a JSON number with `digits` significant digits (17: exact for a double); null where it is NaN or infinite
// (JSON has neither).
std::string json_number(double v, int digits = 17);

// The items with `separator` between them ("a, b").
std::string join_items(const std::vector<std::string>& items, const std::string& separator = ", ");

// Strict integer parsing: optional surrounding blanks and sign, digits, nothing else, within int's range. Unlike atoi
// and stoi it neither reads "12abc" as 12 nor "abc" as 0, and it never throws.
bool parse_int(const std::string& text, int& value);

// Writes `text` to `path` through a temporary name and a rename, so a reader never sees half a file. Throws
// OutputError naming the path.
void write_text_atomically(const std::string& path, const std::string& text);

}  // namespace s2crop
