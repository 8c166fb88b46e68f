#pragma once
// Helpers shared by the discovery sources (discover.cpp: folders, SAFE, band files; stac_item.cpp: STAC items).
#include <string>

#include "s2crop/sentinel2/acquisition.hpp"

namespace s2crop::sentinel2::discovery {

std::string upper(std::string s);
// Spacecraft, datatake sensing start and relative orbit from a product name; false if the name has none of it.
bool read_identity(const std::string& name, Acquisition& a);
// The offset of a product's bands: forced by --boa-offset, else the product's metadata, else the date rule.
int decide_offset(OffsetMode mode, const Date& date, int metadata_offset, bool have_metadata, std::string& origin,
                  const std::string& metadata_name);

}  // namespace s2crop::sentinel2::discovery
