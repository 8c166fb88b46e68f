#pragma once
// Rendering one acquisition of a tile: surface reflectance of every pixel from its parcel's canopy, within-field
// variation, border mixing and noise; clouds, shadows and cirrus on top; the Scene Classification Layer; DN with
// the processing-baseline offset.
#include <array>
#include <cstdint>
#include <vector>

#include "s2crop/synth/clouds.hpp"
#include "s2crop/synth/fields.hpp"
#include "s2crop/synth/phenology.hpp"
#include "s2crop/synth/region.hpp"

namespace s2crop::synth {

struct Scene {
  int size10 = 0, size20 = 0;
  // DN per band in synth_band_names() order; 10 m bands size10^2, 20 m bands size20^2. 0 = no data.
  std::array<std::vector<std::uint16_t>, kSynthBands> dn;
  std::vector<std::uint8_t> scl;  // 20 m
  int boa_offset = 0;             // -1000 or 0: reflectance = (DN + offset) / 10000
  double cloud_cover_percent = 0; // SCL 8, 9, 10 among pixels with data
  double nodata_percent = 0;
};

Scene render_scene(const TileSpec& tile, const FieldLayout& layout, const Acquisition& acquisition);

}  // namespace s2crop::synth
