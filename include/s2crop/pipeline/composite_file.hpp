#pragma once
// Reading the composite HDF5 file that `s2crop composite` writes (layout in composite_stage.hpp and DESIGN.md):
// tile grids and season, and blocks of reflectance and clear-observation counts for the later stages.
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/geo/grid.hpp"
#include "s2crop/h5/h5.hpp"

namespace s2crop::pipeline {

inline constexpr const char* kCompositeFormat = "s2crop monthly composites";
inline constexpr std::int64_t kCompositeFormatVersion = 1;

struct CompositeTile {
  std::string name;
  geo::Grid grid;
  int year = 0;                 // calendar year the season starts in
  int season_start_month = 9;   // 1-12
  std::vector<std::string> bands;
  std::vector<std::string> months;  // "YYYY-MM" labels of the 12 months
  int block_size = 512;             // chunk edge: windows on this block grid read whole chunks
};

class CompositeFile {
 public:
  // Serial, read-only open (every rank may open its own handle). Throws InputError naming the file if it is missing,
  // not a composite file, of a newer format version or missing a tile's attributes or datasets.
  explicit CompositeFile(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<CompositeTile>& tiles() const { return tiles_; }
  // Throws InputError naming the file and the tiles it has.
  const CompositeTile& tile(const std::string& name) const;

  // reflectance x 10000 of `window`, [month][band][y][x]; composite::kNoData where a pixel had no clear observation.
  std::vector<std::int16_t> read_reflectance(const CompositeTile& tile, const geo::Window& window) const;
  // One month (0-11) of it: [band][y][x].
  std::vector<std::int16_t> read_reflectance(const CompositeTile& tile, const geo::Window& window, int month) const;
  // Clear observations per month of `window`, [month][y][x].
  std::vector<std::uint8_t> read_clear_count(const CompositeTile& tile, const geo::Window& window) const;

 private:
  std::string path_;
  h5::File file_;
  std::vector<CompositeTile> tiles_;
};

}  // namespace s2crop::pipeline
