#pragma once
// Charts for reports, as PNG.
#include <cstdint>
#include <string>
#include <vector>

namespace s2crop::viz {

// Confusion matrix as a labelled heat map: rows = map class, columns = reference class (the Olofsson convention
// of s2crop assess); each cell shows its count and is shaded by its share of the row, so the diagonal reads as
// user's accuracy. `counts` is row-major [map][reference] over `names.size()` classes; classes with an empty row
// and column are left out. Written atomically; throws OutputError.
void write_confusion_png(const std::string& path, const std::vector<std::int64_t>& counts,
                         const std::vector<std::string>& names, const std::string& title = "");

// Compact count for a narrow cell: 987, 12.3k, 4.56M.
std::string compact_count(std::int64_t count);

}  // namespace s2crop::viz
