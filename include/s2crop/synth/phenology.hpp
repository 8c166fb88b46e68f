#pragma once
// Class-specific crop calendars: fractions of green vegetation, dry vegetation (senescent canopy, stubble) and
// flowers over the agronomic year (September to August), and the spectral mix of those end-members with soil.
#include <array>

#include "s2crop/sentinel2/bands.hpp"
#include "s2crop/synth/fields.hpp"

namespace s2crop::synth {

// The bands synth writes, in this order: B02 B03 B04 B05 B06 B07 B08 B8A B11 B12.
constexpr int kSynthBands = 10;
using Spectrum = std::array<float, kSynthBands>;
const std::array<const char*, kSynthBands>& synth_band_names();
bool synth_band_is_10m(int index);  // B02 B03 B04 B08

// Days since the most recent 1 September (0..365): the TimeSen2Crop agronomic year.
double season_day(const sentinel2::Date& date);

struct Canopy {
  double green = 0;   // fraction of green vegetation
  double dry = 0;     // senescent canopy / stubble / hay
  double yellow = 0;  // yellow flowers (rapeseed, sunflower)
  double white = 0;   // white flowers (caraway, potato, legumes)
};

// Canopy of a parcel of class `class_id` on season day `t` (field timing shift applied inside).
Canopy crop_canopy(int class_id, double t, const FieldParams& params);
// Canopy of a non-crop unit (forest, margin grass); roads, built-up and water have none.
Canopy landscape_canopy(UnitType type, double t);

// End-member spectra (surface reflectance).
const Spectrum& soil_spectrum();
const Spectrum& dry_vegetation_spectrum();
const Spectrum& yellow_flower_spectrum();
const Spectrum& white_flower_spectrum();
const Spectrum& water_spectrum();
const Spectrum& road_spectrum();
const Spectrum& built_spectrum();
const Spectrum& cloud_spectrum();
const Spectrum& cirrus_spectrum();
// Green vegetation of a class (class-specific leaf structure / pigment / water differences); -1 = generic.
Spectrum green_spectrum(int class_id);

// Mix of the end-members: soil takes the rest of the fractions. `soil_factor` scales soil brightness
// (field soil type times date moisture).
Spectrum mix(const Canopy& c, const Spectrum& green, double soil_factor);

}  // namespace s2crop::synth
