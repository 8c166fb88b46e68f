// MTD_MSIL2A.xml of a SAFE product: identity, offsets and baseline (GDAL's XML parser).
#include <cpl_minixml.h>

#include <filesystem>
#include <string>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/sentinel2/acquisition.hpp"

namespace fs = std::filesystem;

namespace s2crop::sentinel2 {

ProductMetadata parse_mtd(const std::string& text, const std::string& path) {
  CPLXMLNode* xml = CPLParseXMLString(text.c_str());
  if (!xml) throw InputError(path, "malformed MTD_MSIL2A.xml: not valid XML");
  struct Free {
    CPLXMLNode* n;
    ~Free() { CPLDestroyXMLNode(n); }
  } guard{xml};
  // Namespace prefixes differ between baselines: strip them so paths below match.
  CPLStripXMLNamespace(xml, nullptr, TRUE);
  CPLXMLNode* product = CPLGetXMLNode(xml, "=Level-2A_User_Product");
  if (!product) throw InputError(path, "not a Level-2A product metadata file (no Level-2A_User_Product element)");
  ProductMetadata m;
  std::string start = CPLGetXMLValue(product, "General_Info.Product_Info.PRODUCT_START_TIME", "");
  std::string uri = CPLGetXMLValue(product, "General_Info.Product_Info.PRODUCT_URI", "");
  // Without a PRODUCT_URI the product is named by its folder (the .SAFE holding this file).
  if (uri.empty()) uri = fs::path(path).parent_path().filename().string();
  m.id = uri.substr(0, uri.find(".SAFE"));
  try {
    m.date = Date::parse(start);
  } catch (const Error&) {
    if (!find_date(m.id, m.date)) throw InputError(path, "no PRODUCT_START_TIME and no date in the product name");
  }
  if (!find_tile(m.id, m.tile)) throw InputError(path, "cannot tell the MGRS tile from product name " + m.id);
  CPLXMLNode* list = CPLGetXMLNode(product, "General_Info.Product_Image_Characteristics.BOA_ADD_OFFSET_VALUES_LIST");
  for (CPLXMLNode* n = list ? list->psChild : nullptr; n; n = n->psNext) {
    if (n->eType != CXT_Element || std::string(n->pszValue) != "BOA_ADD_OFFSET") continue;
    const char* id = CPLGetXMLValue(n, "band_id", nullptr);
    const char* v = CPLGetXMLValue(n, nullptr, nullptr);
    if (!id || !v) continue;
    // atoi took "abc" for 0 (band B01, offset 0) and overflowed on long digit strings.
    int band_id = 0, offset = 0;
    if (!parse_int(id, band_id) || !parse_int(v, offset) || offset < -32767 || offset > 32767)
      throw InputError(path, std::string("BOA_ADD_OFFSET band_id=\"") + id + "\" is '" + v +
                                 "': expected an integer band id and an integer offset in DN (-32767..32767)");
    m.boa_add_offset[band_id] = offset;
  }
  m.processing_baseline = CPLGetXMLValue(product, "General_Info.Product_Info.PROCESSING_BASELINE", "");
  return m;
}

}  // namespace s2crop::sentinel2
