// libFuzzer target: a SAFE product's MTD_MSIL2A.xml (sentinel2::parse_mtd: product id, date, tile, BOA_ADD_OFFSET
// list, processing baseline), then the offset rule applied to what it found. Expected failures are s2crop::Error;
// anything else escaping is a finding.
#include <cpl_error.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "s2crop/common/errors.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/sentinel2/acquisition.hpp"
#include "s2crop/sentinel2/bands.hpp"

using namespace s2crop;
using namespace s2crop::sentinel2;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  geo::init_gdal();
  CPLSetErrorHandler(CPLQuietErrorHandler);  // GDAL's XML parser reports every syntax error on stderr
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    ProductMetadata m = parse_mtd(
        text, "/data/S2B_MSIL2A_20210905T101029_N0301_R022_T33UVP_20210905T130356.SAFE/MTD_MSIL2A.xml");
    if (!m.date.valid() || m.tile.empty()) std::abort();  // parse_mtd promises both
    int offset = 0;
    if (!m.processing_baseline.empty()) offset_by_baseline(m.processing_baseline, offset);
    for (auto& [band_id, o] : m.boa_add_offset)
      if (o < -32767 || o > 32767) std::abort();
    (void)offset_by_date(m.date);
  } catch (const Error&) {
  }
  return 0;
}
