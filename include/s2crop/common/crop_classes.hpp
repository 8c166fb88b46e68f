#pragma once
// The 16 TimeSen2Crop crop classes (folder ids 0..15, see DOMAIN.md) with a legend colour each.
#include <cstdint>
#include <string>
#include <vector>

namespace s2crop {

struct CropClass {
  int id;
  std::string name;  // exactly as in TimeSen2Crop: "Winter wheat"
  std::uint8_t r, g, b;
};

constexpr int kCropClassCount = 16;
// Label value of a pixel that is not a crop parcel (uint8 class rasters).
constexpr std::uint8_t kNoCropLabel = 255;

const std::vector<CropClass>& crop_classes();  // ordered by id
const CropClass& crop_class(int id);           // throws ConfigError for an id outside 0..15
// Id of a class by its name (case-insensitive, also accepts '_' for ' '); -1 if unknown.
int crop_class_id(const std::string& name);

}  // namespace s2crop
