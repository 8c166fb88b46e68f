#pragma once
// `s2crop composite`: acquisitions -> monthly composites in one parallel HDF5 file.
//
// A stage of the block-stage engine (block_stage.hpp: lock, fingerprints, resume, parts). Lifecycle (every step
// collective over MPI_COMM_WORLD):
//   plan      rank 0 discovers acquisitions; all ranks inspect their files in parallel; rank 0 fixes each tile's
//             grid, rejects (or with skip, drops) bad acquisitions, and broadcasts the plan.
//   compute   (tile, block) units not yet done are balanced over the ranks; each unit is composited in memory,
//             compressed into the output's chunks, and written by rank 0 into <output>.partial.h5, its index saved
//             as <output>.parts/<tile>/<block>.part (chunked_output.hpp), so a SIGKILL at any moment loses at most
//             the units in flight.
//   export    COGs and quicklooks from the finished file, then rank 0 renames it to <output> and removes the parts.
// A rerun of the same command after a kill resumes at the first missing unit; the result does not depend on the
// rank count or on where the run was interrupted.
#include <string>
#include <vector>

#include "s2crop/composite/kernels.hpp"
#include "s2crop/parallel/mpi.hpp"
#include "s2crop/sentinel2/acquisition.hpp"

namespace s2crop::pipeline {

struct CompositeSettings {
  std::vector<std::string> inputs;
  std::string output;          // HDF5 file
  std::string cog_dir;         // optional: one COG per tile and month
  std::string quicklook_dir;   // optional: one PNG per tile (RGB | NDVI of quicklook_month)
  std::vector<std::string> bands = sentinel2::default_crop_bands();
  composite::Method method = composite::Method::Median;
  std::string season_start = "auto";  // "YYYY-MM" or "auto"
  int season_month = 9;               // with "auto": the season starts in this month, on or before the first date
  std::string quicklook_month;        // "YYYY-MM"; empty: the 11th month of the season (July for a Sep start)
  int block_size = 0;  // 0: auto (kDefaultCompositeBlock, or aligned to JPEG 2000 tiles)
  std::vector<int> valid_scl = sentinel2::scl::default_valid();
  int dilation = 2;
  sentinel2::OffsetMode offset_mode = sentinel2::OffsetMode::Auto;
  std::vector<std::string> tiles;     // only these tiles (empty: all found)
  bool skip_bad = false;              // --on-error skip
  bool overwrite = false;
  bool list_only = false;             // print the plan (acquisitions as TSV) on stdout and stop
  bool allow_unmasked = false;        // composite acquisitions without SCL/MASK (else an error)
  int deflate = 1;
  std::string config_text;            // the effective configuration, stored in the output
};

// Runs the whole stage. Returns normally on success; throws s2crop errors (AgreedError when all ranks know).
void run_composite(const CompositeSettings& settings, const parallel::MpiContext& mpi);

}  // namespace s2crop::pipeline
