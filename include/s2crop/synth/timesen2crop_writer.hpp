#pragma once
// The synthetic region in the TimeSen2Crop layout (see ../shared/data/TIMESEN2CROP_FORMAT.md), so the importer is
// tested on files it did not write itself:
//   <dir>/<tile>/dates.csv               the tile's acquisition dates
//   <dir>/<tile>/<class id>/<n>.csv      one sampled parcel pixel: B02 B03 B04 B05 B06 B07 B8A B11 B12 as
//                                        reflectance x 10000 (20 m bands as seen on the 10 m grid) and its Flag
//   <dir>/pixels.tsv                     tile, class, file, row, col of every CSV (the real data set has no
//                                        coordinates; tests use it to compare with `s2crop composite`)
// Two stages, because each rank renders only some acquisitions: every rank stages the sampled pixels of the
// scenes it renders (one small file per acquisition), then, after all ranks are done, the per-pixel CSVs are
// assembled from the staged dates. The files do not depend on the rank count.
#include <string>
#include <vector>

#include "s2crop/synth/fields.hpp"
#include "s2crop/synth/region.hpp"
#include "s2crop/synth/scene.hpp"

namespace s2crop::synth {

struct TimeSen2CropPixel {
  int class_id = 0;
  int number = 0;    // file <number>.csv in the class folder
  int row = 0, col = 0;  // 10 m grid
};

// Up to `per_class` pixels per class, inside parcels at least 2 px from the parcel's edge (no border mixing),
// spread evenly over the candidates in raster order. Ordered by (class, number).
std::vector<TimeSen2CropPixel> timesen2crop_pixels(const FieldLayout& layout, int per_class);

// TimeSen2Crop Flag of an SCL class: 8, 9, 10 cloud (1); 3 shadow (2); 11 snow (3); 0, 1 (no data) cloud (1);
// otherwise clear (0).
int timesen2crop_flag(int scl_class);

// Stage 1: the pixels' values and flags of acquisition `index_in_tile` (its row in dates.csv).
void stage_timesen2crop_date(const std::string& dir, const TileSpec& tile, std::size_t index_in_tile,
                             const Scene& scene, const std::vector<TimeSen2CropPixel>& pixels);

// Stage 2, after every rank finished stage 1: this rank's share of the (tile, class) folders; rank 0 also writes
// dates.csv of every tile and pixels.tsv. Returns the number of CSV files this rank wrote.
std::int64_t assemble_timesen2crop(const Region& region, int rank, int ranks);

// After stage 2 on all ranks (rank 0): removes the staged dates.
void remove_timesen2crop_staging(const std::string& dir);

}  // namespace s2crop::synth
