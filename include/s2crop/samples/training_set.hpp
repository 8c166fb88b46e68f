#pragma once
// Training sets: labelled per-pixel monthly time series in one HDF5 file, whatever produced them
// (`import-timesen2crop`, `extract`). Layout (format "s2crop training set", format_version 1):
//   attrs   format, format_version, s2crop_version, created, config, inputs, source ("timesen2crop" | "extract"),
//           bands [B], class_names [C], tiles [T], months [12] (labels, e.g. "Sep".."Aug"), season_start_month
//   x       int16  [sample][month][band]  reflectance x 10000 (scale_factor 1e-4), gap-filled: no no-data inside
//   y       uint8  [sample]               class index into class_names
//   tile    uint16 [sample]               index into tiles (for spatially disjoint splits)
//   parcel  int64  [sample]               parcel id, -1 where unknown (TimeSen2Crop has none)
//   row/col int32  [sample]               pixel position in the tile grid, -1 where unknown
//   clear   uint8  [sample][month]        optional (written by `extract`; absent in older sets): 1 where the month
//                                         had at least one clear observation, 0 where x was gap-filled. Readers
//                                         treat a set without it as all clear. Needed by `s2crop ndvi train`, whose
//                                         loss may only use observed months. Old readers ignore it, so the format
//                                         version stays 1.
// Every sample has all 12 months of every band. The sample order is deterministic (it never depends on the rank
// count): writers concatenate the ranks' samples in rank order, so each rank must hold a contiguous slice of the
// global order.
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/parallel/mpi.hpp"

namespace s2crop::samples {

inline constexpr const char* kTrainingSetFormat = "s2crop training set";
inline constexpr std::int64_t kTrainingSetVersion = 1;
inline constexpr int kSeasonMonths = 12;

// Metadata shared by all samples of a set.
struct TrainingSetHeader {
  std::vector<std::string> bands;
  std::vector<std::string> class_names;
  std::vector<std::string> tiles;
  std::vector<std::string> months;  // kSeasonMonths labels
  int season_start_month = 9;
  std::string source;               // which command produced it
};

// Samples held in memory (one rank's slice, or a whole file).
struct TrainingSet {
  TrainingSetHeader header;
  std::vector<std::int16_t> x;      // [sample][month][band]
  std::vector<std::uint8_t> y;
  std::vector<std::uint16_t> tile;
  std::vector<std::int64_t> parcel;
  std::vector<std::int32_t> row, col;
  std::vector<std::uint8_t> clear;  // [sample][month] or empty (unknown: every month counts as clear)

  size_t size() const { return y.size(); }
  size_t values_per_sample() const { return static_cast<size_t>(kSeasonMonths) * header.bands.size(); }
  // Appends one sample; `series` holds values_per_sample() values in [month][band] order.
  void add(const std::int16_t* series, std::uint8_t label, std::uint16_t tile_index, std::int64_t parcel_id = -1,
           std::int32_t row_index = -1, std::int32_t col_index = -1, const std::uint8_t* clear_months = nullptr);
  // Throws s2crop::Error if the arrays disagree in length or a label/tile index is out of range.
  void check_consistent(const std::string& what) const;
};

// What a run records about itself in the file.
struct Provenance {
  std::string config;                // effective configuration text
  std::vector<std::string> inputs;
};

// Collective over mpi.world(): every rank passes its slice (possibly empty) with the same header; rank r's samples
// follow rank r-1's. Writes `path`.partial.h5 and renames it, so a failed run leaves no file that looks whole.
// Throws AgreedError if the set is empty on all ranks.
void write_training_set(const std::string& path, const TrainingSet& local, const Provenance& provenance,
                        const parallel::MpiContext& mpi);

// Everything but x: header, labels, tiles, parcels, positions of all samples (small: a few bytes per sample).
// Serial read; validates the layout and throws InputError naming the file and the problem.
TrainingSet read_training_set_labels(const std::string& path);

// x of samples [begin, end), [sample][month][band]. Serial read of one hyperslab: each rank reads only its shard.
std::vector<std::int16_t> read_training_set_x(const std::string& path, size_t begin, size_t end);

// clear flags of samples [begin, end), [sample][month] (1 = observed month); all ones when the file has none.
std::vector<std::uint8_t> read_training_set_clear(const std::string& path, size_t begin, size_t end);

// The whole file (labels and x).
TrainingSet read_training_set(const std::string& path);

// Season month labels starting at `first_month` (1-12): {"Sep", "Oct", ...}.
std::vector<std::string> season_month_labels(int first_month);

}  // namespace s2crop::samples
