#pragma once
// `s2crop import-timesen2crop`: a TimeSen2Crop tree -> one training set (samples/training_set.hpp).
//
// Lifecycle (collective over MPI_COMM_WORLD):
//   scan      rank 0 finds the tile folders, reads their dates.csv and lists the sample files in a fixed order
//             (tile name, class id, file stem numeric then lexical) and broadcasts that inventory;
//   parse     each rank parses and composites a contiguous, balanced range of the files; every few hundred files
//             the ranks exchange progress and, with --on-error fail, whether one found a bad file (so all stop);
//   agree     bad files are gathered on rank 0: fail -> every rank throws AgreedError naming the file and line
//             (of several bad files, the first in the global order among those the ranks reached before they
//             stopped); skip -> they are logged and listed in the output attributes `skipped` (the first
//             kSkippedListed) and `skipped_count`; pixels without a clear observation are counted in
//             `dropped_no_clear_observation`;
//   write     write_training_set in the global file order (so the output does not depend on the rank count) to
//             OUT.importing.h5; rank 0 adds the attributes above and renames it to OUT, so OUT is always whole.
#include <string>
#include <vector>

#include "s2crop/parallel/mpi.hpp"
#include "s2crop/samples/timesen2crop.hpp"

namespace s2crop::samples::timesen2crop {

struct ImportSettings {
  std::string root;
  std::string output;
  CompositeRule rule;
  int season_month = 9;
  sentinel2::OffsetMode offset_mode = sentinel2::OffsetMode::Auto;
  bool skip_bad = false;
  bool overwrite = false;
  std::string config_text;  // effective configuration, stored in the output
};

// What rank 0 found under the root (also what is broadcast).
struct Inventory {
  struct Tile {
    std::string name;  // folder name: "33UVP", "2019_33UVP"
    std::string dir;
    std::vector<sentinel2::Date> dates;
  };
  struct File {
    std::uint16_t tile = 0;  // index into tiles
    std::uint8_t class_id = 0;
    std::string path;
  };
  std::vector<Tile> tiles;   // sorted by name
  std::vector<File> files;   // the global sample order
};

// Serial scan of a TimeSen2Crop tree. Throws InputError naming the path: root missing, no tile folder at all, a tile
// found twice, dates.csv missing or malformed, a class folder id outside 0..15. Non-numeric folders inside a tile
// are reported through `warnings`.
Inventory scan_tree(const std::string& root, std::vector<std::string>& warnings);
std::string serialise(const Inventory& inventory);
Inventory deserialise(const std::string& text);

// Number of the output attribute `skipped` entries kept in full; more are summarised in one final entry.
constexpr std::size_t kSkippedListed = 1000;

void run_import(const ImportSettings& settings, const parallel::MpiContext& mpi);

}  // namespace s2crop::samples::timesen2crop
