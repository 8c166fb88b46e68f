#include "s2crop/common/crop_classes.hpp"

#include <cctype>

#include "s2crop/common/errors.hpp"

namespace s2crop {

const std::vector<CropClass>& crop_classes() {
  // Colours loosely follow common crop-map conventions (cereals in yellows/browns, grass green, maize orange).
  static const std::vector<CropClass> table = {
      {0, "Legumes", 0x8e, 0x44, 0xad},
      {1, "Grassland", 0x4c, 0xaf, 0x50},
      {2, "Maize", 0xff, 0x98, 0x00},
      {3, "Potato", 0x79, 0x55, 0x48},
      {4, "Sunflower", 0xff, 0xeb, 0x3b},
      {5, "Soy", 0xcd, 0xdc, 0x39},
      {6, "Winter barley", 0xd4, 0xa3, 0x73},
      {7, "Winter caraway", 0xe9, 0x1e, 0x63},
      {8, "Rye", 0x9e, 0x6b, 0x2f},
      {9, "Rapeseed", 0xff, 0xd6, 0x00},
      {10, "Beet", 0x9c, 0x27, 0xb0},
      {11, "Spring cereals", 0xf0, 0xe6, 0x8c},
      {12, "Winter wheat", 0xc6, 0x8e, 0x17},
      {13, "Winter triticale", 0xa1, 0x88, 0x7f},
      {14, "Permanent plantation", 0x1b, 0x5e, 0x20},
      {15, "Other crops", 0x60, 0x7d, 0x8b},
  };
  return table;
}

const CropClass& crop_class(int id) {
  if (id < 0 || id >= kCropClassCount)
    throw ConfigError("crop class id " + std::to_string(id) + " is outside 0.." + std::to_string(kCropClassCount - 1));
  return crop_classes()[static_cast<size_t>(id)];
}

int crop_class_id(const std::string& name) {
  auto norm = [](const std::string& s) {
    std::string o;
    for (char c : s) o += c == '_' ? ' ' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return o;
  };
  std::string n = norm(name);
  for (auto& c : crop_classes())
    if (norm(c.name) == n) return c.id;
  return -1;
}

}  // namespace s2crop
