#pragma once
#include <string>
#include <vector>

namespace s2crop {

// Splits at every `separator`, keeping empty fields: "a\t\tb\t" gives {"a", "", "b", ""}. The one parser of the
// tab-separated records that ranks exchange (acquisition lists, plans).
std::vector<std::string> split_fields(const std::string& line, char separator = '\t');

}  // namespace s2crop
