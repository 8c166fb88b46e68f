#pragma once
// `s2crop extract`: labelled pixel samples from a composite file and parcel labels (polygons or label rasters),
// written as a training set (training_set.hpp).
//
// A pixel of a selected tile is a candidate when it is labelled, lies at least `border` pixels inside its parcel
// (geo::border_eligible) and has at least `min_clear_months` months with a clear observation. Per class at most
// `per_class` candidates are kept: the ones with the smallest seeded hash of (tile, row, col). That is a uniform
// random sample without replacement, exactly min(per_class, candidates) per class, and it depends only on the seed
// and the pixels, never on the rank count or the block layout.
//
// Patch mode (`patch_size` > 0, `s2crop extract --patches S`): instead of pixels, square S x S windows on a regular
// grid of each tile (stride `patch_stride`, only windows fully inside the tile) are written as a patch set
// (patch_set.hpp) with their reflectance, clear flags and three label layers; a window is kept when at least
// `min_labelled` of its pixels are labelled (0 keeps every window: unlabelled patches for self-supervised
// pre-training). `per_class`, `border`, `min_clear_months` and `seed` do not apply. Parallel scheme: the units are
// (tile, block row) bands of windows (the windows whose top row lies in one block row of the composite), split into
// contiguous ranges over the ranks, so each rank's kept windows are a contiguous slice of the global order (tile
// order of the composite file, row-major window order). Pass 1 reads the labels and decides which windows to keep;
// pass 2 reads the composite once per (band, block column) cell (the block and the overhang of its windows), cuts
// the kept windows and writes them collectively into the one file in rounds of bounded memory.
//
// Parallel scheme (pixel mode): the (tile, block) units on the composite's block grid are split into contiguous ranges over the
// ranks (parallel::contiguous_ranges), so the ranks' samples concatenated in rank order are the global order: tile
// order of the composite file, block order, row-major inside a block. Pass 1 finds each rank's candidates and
// keeps per class its `per_class` smallest hashes; rank 0 merges them into one hash threshold per class. Pass 2
// finds the candidates again (labels are re-read rather than held: a national tile has tens of millions), keeps
// those at or below their class threshold and reads their reflectance. Every rank reads the composite file
// serially (independent reads of whole chunks), so no rank waits on another until the collective write.
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/geo/parcel_labels.hpp"
#include "s2crop/parallel/mpi.hpp"

namespace s2crop::samples {

struct ExtractSettings {
  std::string composites;           // composite HDF5 file from `s2crop composite`
  std::string labels;               // parcel vector file, class raster, or folder of <tile>_class.tif rasters
  std::string output;               // training-set HDF5 file
  std::vector<std::string> tiles;   // only these tiles (empty: every tile of the composite file)
  std::int64_t per_class = 2000;    // cap per class; 0: keep every candidate
  int border = 1;                   // pixels a sample must lie inside its parcel (Chebyshev); 0: no exclusion
  int min_clear_months = 1;         // months with at least one clear observation
  std::uint64_t seed = 42;
  geo::LabelSourceOptions label_options;
  int patch_size = 0;               // > 0: patch mode (see above), the window edge in pixels (8-1024)
  int patch_stride = 0;             // patch mode: window step in pixels (0: patch_size, windows do not overlap)
  double min_labelled = 0.05;       // patch mode: keep a window when at least this fraction of it is labelled
  bool overwrite = false;
  std::string config_text;          // effective configuration, stored in the output
};

// Collective over mpi.world(). Throws ConfigError/AgreedError (every rank knows) for bad inputs found up front.
void run_extract(const ExtractSettings& settings, const parallel::MpiContext& mpi);

// The label layers of patch_set.hpp for `inner` ([3][inner.height][inner.width] into `out`) from labels read over
// `labels.window`, which must hold `inner` grown by one pixel and clipped to the tile (grow_window): a neighbour
// outside `labels.window` lies beyond the tile edge and makes no boundary. Two labelled neighbours belong to the
// same parcel when they have the same parcel id and class (the class alone where parcel ids are unknown).
void patch_label_layers(const geo::ParcelLabels& labels, const geo::Window& inner, std::uint8_t* out);

// The seeded hash that ranks the candidates of a class: uniform over 64 bits, a function of its arguments only.
std::uint64_t sample_hash(std::uint64_t seed, const std::string& tile, int row, int col);

// The `cap` smallest hashes offered (one class on one rank): what rank 0 needs to find the global threshold.
class SmallestHashes {
 public:
  explicit SmallestHashes(std::size_t cap) : cap_(cap) {}
  void offer(std::uint64_t hash);
  std::vector<std::uint64_t> sorted() const;  // ascending, at most `cap`

 private:
  std::size_t cap_;
  std::vector<std::uint64_t> heap_;  // max-heap: the largest kept hash on top
};

// The largest hash to keep so that the `cap` smallest of `hashes` are kept: the cap-th smallest. `hashes` is the
// union of the ranks' SmallestHashes lists, which holds the global `cap` smallest (and fewer than `cap` only when
// the class has fewer candidates). UINT64_MAX (keep all) when there are fewer than `cap` hashes or cap is 0.
std::uint64_t keep_threshold(std::vector<std::uint64_t> hashes, std::size_t cap);

}  // namespace s2crop::samples
