#pragma once
// The landscape of a tile: roads, field margins, forest, villages, lakes and agricultural parcels (recursive
// rectangular subdivision), each parcel with a crop class and its own field parameters (timing, vigour, soil).
#include <array>
#include <cstdint>
#include <vector>

namespace s2crop::synth {

enum class UnitType : std::uint8_t { Road, Margin, Built, Forest, Water, Parcel };

// Per-field variation of the class phenology and spectra.
struct FieldParams {
  double shift_days = 0;     // timing shift of the whole calendar
  double rate = 1;           // speed of green-up / senescence (scales the transition widths)
  double amplitude = 1;      // canopy vigour (scales cover)
  double soil_brightness = 1;
  int previous_class = -1;   // crop of the previous season (visible in Sep/Oct until its harvest), -1 = none
  int cuts = 0;              // grassland: number of cuts
  std::array<double, 4> cut_day{};  // grassland cut days (season days)
  // "Other crops": a random summer or winter curve.
  double other_start = 240, other_length = 80, other_amplitude = 0.7;
  bool other_winter = false;
};

struct Unit {
  UnitType type = UnitType::Parcel;
  int parcel_id = 0;    // 1..N for parcels, 0 otherwise
  int class_id = -1;    // 0..15 for parcels, -1 otherwise
  int x0 = 0, y0 = 0, width = 0, height = 0;  // parcel rectangle in pixels (parcels only)
  FieldParams params;
};

struct FieldLayout {
  int size = 0;                      // pixels per side (10 m)
  std::vector<Unit> units;           // 0 road, 1 margin, 2 built, then forests, lakes and parcels
  std::vector<std::int32_t> unit;    // per pixel: index into units
  std::vector<std::int32_t> partner; // per pixel: the neighbour unit it is mixed with at a border, -1 none
  std::vector<float> partner_weight; // per pixel: weight of the partner (0 inside a field)
  std::vector<float> heterogeneity;  // per pixel: static within-field variation in [-1, 1]

  int parcel_count() const;
  std::vector<std::uint8_t> class_raster() const;    // class id per pixel, 255 where no crop parcel
  std::vector<std::uint32_t> parcel_raster() const;  // parcel id per pixel, 0 where none
};

// Deterministic for (size, seed). Fields are ~15-80 px; class frequencies are imbalanced like TimeSen2Crop's.
FieldLayout make_field_layout(int size, std::uint64_t tile_seed);

// Relative frequency of each class among parcels (sums to 1).
const std::array<double, 16>& class_frequencies();

}  // namespace s2crop::synth
