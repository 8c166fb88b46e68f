// libFuzzer target: one STAC item JSON (sentinel2::parse_stac_item, the parser behind `composite --input` for STAC
// layouts), then the text form in which rank 0 broadcasts what it discovered (serialise/deserialise), which must
// give back the same acquisition. Expected failures are s2crop::Error; anything else escaping is a finding.
#include <cpl_error.h>

#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>

#include "s2crop/common/errors.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/sentinel2/acquisition.hpp"

using namespace s2crop;
using namespace s2crop::sentinel2;

namespace {
bool same(const BandSource& x, const BandSource& y) {
  return x.path == y.path && x.band == y.band && x.offset == y.offset;
}
bool same(const Acquisition& x, const Acquisition& y) {
  if (x.id != y.id || x.tile != y.tile || x.source != y.source || x.date != y.date ||
      x.offset_origin != y.offset_origin || x.mask_kind != y.mask_kind || !same(x.mask, y.mask) ||
      x.bands.size() != y.bands.size())
    return false;
  for (auto& [name, src] : x.bands) {
    auto it = y.bands.find(name);
    if (it == y.bands.end() || !same(src, it->second)) return false;
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  geo::init_gdal();
  CPLSetErrorHandler(CPLQuietErrorHandler);  // GDAL's JSON parser reports every syntax error on stderr
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  Acquisition item;
  bool is_item = false;
  try {
    is_item = parse_stac_item(text, "/data/stac/33UVP/2021/9/item.json", OffsetMode::Auto, item);
  } catch (const Error&) {
    return 0;
  }
  if (!is_item) return 0;
  if (item.date.valid() == false) std::abort();  // a parsed item always has a real date
  const std::string line = serialise({item});
  std::vector<Acquisition> back;
  try {
    back = deserialise(line);
  } catch (const Error& e) {
    std::fprintf(stderr, "deserialise rejected what serialise wrote: %s\n", e.what());
    std::abort();
  }
  if (back.size() != 1 || !same(back[0], item)) {
    std::fprintf(stderr, "serialise/deserialise changed the acquisition:\n%s", line.c_str());
    std::abort();
  }
  return 0;
}
