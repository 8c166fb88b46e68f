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

// The items with `separator` between them ("a, b").
std::string join_items(const std::vector<std::string>& items, const std::string& separator = ", ");

// Writes `text` to `path` through a temporary name and a rename, so a reader never sees half a file. Throws
// OutputError naming the path.
void write_text_atomically(const std::string& path, const std::string& text);

}  // namespace s2crop
