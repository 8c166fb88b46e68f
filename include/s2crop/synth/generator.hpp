#pragma once
// Generating the whole synthetic region, split over `ranks` workers: work unit i (a tile's acquisition, tile-major
// in date order) belongs to rank i % ranks. Results do not depend on the split. No MPI in here: the CLI passes its
// rank and size, tests call it with (0, 1).
#include <cstdint>
#include <functional>

#include "s2crop/synth/region.hpp"

namespace s2crop::synth {

struct GenerateStats {
  std::int64_t acquisitions = 0;  // rendered by this rank
  std::int64_t files = 0;         // raster files written by this rank
};

// Writes this rank's acquisitions; rank 0 also writes parcels.gpkg, labels/ and region.json. With a TimeSen2Crop
// folder configured, the sampled pixels of each acquisition are staged for assemble_timesen2crop.
// `progress(done)` is called after each acquisition of this rank.
GenerateStats generate(const Region& region, int rank, int ranks,
                       const std::function<void(std::int64_t)>& progress = {});

}  // namespace s2crop::synth
