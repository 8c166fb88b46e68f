#pragma once
// The composite stage's pieces, shared by its sources: the plan (composite_plan.cpp: discovery, season, grids,
// fingerprints), the exports (composite_export.cpp: COGs, quicklooks) and the stage itself (composite_stage.cpp:
// compute, output and exports on the block-stage engine).
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/composite/kernels.hpp"
#include "s2crop/geo/grid.hpp"
#include "s2crop/parallel/mpi.hpp"
#include "s2crop/pipeline/block_stage.hpp"
#include "s2crop/pipeline/composite_file.hpp"
#include "s2crop/pipeline/composite_stage.hpp"
#include "s2crop/sentinel2/acquisition.hpp"

namespace s2crop::pipeline::composite_detail {

using composite::kMonths;
using sentinel2::Acquisition;
using sentinel2::Date;

struct TilePlan {
  std::string name;
  geo::Grid grid;
  std::vector<Acquisition> acquisitions;        // sorted by date
  std::vector<std::vector<size_t>> by_month;    // month -> indices into acquisitions
  std::vector<geo::Window> blocks;
};

struct Plan {
  int season_year = 0, season_month = 0;
  std::vector<TilePlan> tiles;
  std::vector<sentinel2::Skipped> skipped;
  int block_size = 0;              // the run's block edge: --block-size, or chosen from the inputs (auto)
  int jpeg2000_footprint = 0;      // edge on the 10 m grid the inputs' JPEG 2000 tiles align to; 0: none
  std::string fingerprint;         // identifies everything a block's result depends on (part files)
  std::string output_fingerprint;  // ... plus the output and export options (the finished file)
};

// "YYYY-MM" of month `index` (0-11) of the season starting year-month.
std::string month_label(int year, int month, int index);
// The season month (0-11) of a date; outside the season: < 0 or >= 12.
int month_index(const Plan& p, const Date& d);

// Collective: rank 0 discovers the acquisitions and chooses the season (refusing what would be silently wrong:
// several seasons under auto, tiles without data in the season), every rank inspects its share of the files, rank 0
// fixes each tile's grid and rejects (or with --on-error skip, drops) bad acquisitions; every rank gets the plan.
Plan make_plan(const CompositeSettings& s, const parallel::MpiContext& mpi);
// The block edge of a run: `requested` (--block-size; 0 = auto) or, for auto, the JPEG 2000 tiles' footprint (each
// tile decoded once per acquisition instead of once per block touching it) made at least kDefaultCompositeBlock, or
// kDefaultCompositeBlock without JPEG 2000 inputs. `why` says which, for the log.
int choose_block_size(int requested, int jpeg2000_footprint, std::string& why);
// The plan as TSV on stdout (`composite --list`), for people and scripts (bench/'s NumPy reference reads it).
void print_plan(const Plan& p, const CompositeSettings& s);

// One COG per (tile, month), and one RGB|NDVI quicklook per tile, from the finished parts.
void write_cog(const Plan& p, size_t tile, int month, const CompositeSettings& s, const CompositeFile& composites);
void write_quicklook(const Plan& p, size_t tile, int month, const CompositeSettings& s,
                     const CompositeFile& composites);

}  // namespace s2crop::pipeline::composite_detail
