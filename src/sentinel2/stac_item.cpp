// STAC items (Earth Search v1 style, the WorldCereal extractions): one Feature's properties and assets as an
// acquisition, the offset from raster:bands where the item gives it. Walking folders and grouping files is
// discover.cpp.
#include <cpl_json.h>

#include <cmath>
#include <filesystem>
#include <regex>
#include <string>

#include "discover_internal.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/sentinel2/acquisition.hpp"

namespace fs = std::filesystem;

namespace s2crop::sentinel2 {

using namespace discovery;

bool parse_stac_item(const std::string& text, const std::string& path, OffsetMode offset_mode, Acquisition& a) {
  CPLJSONDocument doc;
  // A .json that is not even JSON inside a data folder is most likely a broken item.
  if (!doc.LoadMemory(text)) throw InputError(path, "malformed STAC item: not valid JSON");
  CPLJSONObject root = doc.GetRoot();
  // Only Features are items: collections (with their own assets), catalogs and other JSON are not acquisitions.
  if (root.GetString("type") != "Feature") return false;
  // Hrefs are relative to the item's folder: "." for an item path without one, not the file system root.
  std::string base = fs::path(path).parent_path().string();
  if (base.empty()) base = ".";
  a.source = path;
  a.id = root.GetString("id");
  CPLJSONObject props = root.GetObj("properties");
  CPLJSONObject assets = root.GetObj("assets");
  if (!props.IsValid() || !assets.IsValid() || assets.GetType() != CPLJSONObject::Type::Object)
    throw InputError(path, "malformed STAC item: missing 'properties' or 'assets'");
  std::string dt = props.GetString("datetime");
  try {
    a.date = Date::parse(dt);
  } catch (const Error&) {
    throw InputError(path, "malformed STAC item: properties.datetime is missing or not a date ('" + dt + "')");
  }
  int zone = props.GetInteger("mgrs:utm_zone", -1);
  std::string lat = props.GetString("mgrs:latitude_band"), sq = props.GetString("mgrs:grid_square");
  if (zone > 0 && !lat.empty() && !sq.empty()) {
    a.tile = (zone < 10 ? "0" : "") + std::to_string(zone) + lat + sq;  // checked as an MGRS name below
  } else if (!props.GetString("s2:mgrs_tile").empty()) {
    a.tile = props.GetString("s2:mgrs_tile");
  } else if (!find_tile(props.GetString("grid:code"), a.tile) && !find_tile(a.id, a.tile)) {
    throw InputError(path, "STAC item does not say its MGRS tile (mgrs:* or grid:code properties)");
  }
  if (a.id.empty()) a.id = fs::path(path).stem().string();
  if (!is_mgrs_tile(a.tile))
    throw InputError(path, "STAC item names tile '" + a.tile + "', which is not an MGRS tile (e.g. 33UVP)");
  if (!read_identity(props.GetString("s2:product_uri"), a)) read_identity(a.id, a);
  {
    std::string platform = upper(props.GetString("platform"));
    if (!a.spacecraft && platform.size() == 11 && platform.rfind("SENTINEL-2", 0) == 0) a.spacecraft = platform[10];
    std::string datatake = props.GetString("s2:datatake_id");  // GS2A_20210511T100031_030755_N03.00
    std::smatch m;
    if (a.sensing_start.empty() && std::regex_search(datatake, m, std::regex(R"(S2([A-D])_(\d{8}T\d{6}))"))) {
      a.spacecraft = std::string(m[1])[0];
      a.sensing_start = m[2];
    }
    int orbit = props.GetInteger("sat:relative_orbit", 0);
    if (!a.relative_orbit && orbit > 0) a.relative_orbit = orbit;
  }

  bool have_meta = false;
  int meta_offset = 0;
  std::string meta_name;
  CPLJSONObject applied = props.GetObj("earthsearch:boa_offset_applied");
  if (applied.IsValid() && applied.GetType() == CPLJSONObject::Type::Boolean && applied.ToBool()) {
    have_meta = true;
    meta_offset = 0;
    meta_name = "STAC earthsearch:boa_offset_applied=true";
  }
  auto href_of = [&](const CPLJSONObject& asset) {
    std::string href = asset.GetString("href");
    if (href.rfind("http://", 0) == 0 || href.rfind("https://", 0) == 0) return "/vsicurl/" + href;
    if (href.rfind("s3://", 0) == 0) return "/vsis3/" + href.substr(5);
    if (!href.empty() && href[0] == '/') return href;
    if (href.rfind("./", 0) == 0) href = href.substr(2);
    return base + "/" + href;
  };
  for (auto& spec : all_bands()) {
    CPLJSONObject asset = assets.GetObj(spec.stac_key);
    if (!asset.IsValid()) asset = assets.GetObj(spec.name);
    if (!asset.IsValid()) continue;
    BandSource src{href_of(asset), 1, 0};
    if (src.path == base + "/") throw InputError(path, "asset '" + spec.stac_key + "' has no href");
    int band_offset = 0;
    bool band_meta = have_meta;
    if (!have_meta) {
      CPLJSONArray rb = asset.GetArray("raster:bands");
      if (rb.IsValid() && rb.Size() > 0) {
        CPLJSONObject first = rb[0];
        double scale = first.GetDouble("scale", 0.0), off = first.GetDouble("offset", 0.0);
        if (scale > 0 && first.GetObj("offset").IsValid()) {
          // reflectance = DN x scale + offset: in DN the offset is offset / scale (-0.1 / 0.0001 = -1000).
          const double dn = off / scale;
          if (!(std::fabs(dn) <= 32767))
            throw InputError(path, "malformed STAC item: asset '" + spec.stac_key + "' raster:bands offset " +
                                       std::to_string(off) + " / scale " + std::to_string(scale) +
                                       " is not an offset in DN (-32767..32767)");
          band_offset = static_cast<int>(std::lround(dn));
          band_meta = true;
          meta_name = "STAC raster:bands offset";
        }
      }
      if (!band_meta) {
        std::string pb = props.GetString("s2:processing_baseline");
        int o = 0;
        if (!pb.empty() && offset_by_baseline(pb, o)) {
          band_offset = o;
          band_meta = true;
          meta_name = "STAC s2:processing_baseline " + pb;
        }
      }
    }
    src.offset = sentinel2::decide_offset(offset_mode, a.date, have_meta ? meta_offset : band_offset, band_meta,
                                          a.offset_origin, meta_name);
    a.bands[spec.name] = src;
  }
  for (const char* key : {"scl", "SCL"}) {
    CPLJSONObject asset = assets.GetObj(key);
    if (asset.IsValid()) {
      a.mask_kind = MaskKind::Scl;
      a.mask = BandSource{href_of(asset), 1, 0};
      break;
    }
  }
  return true;
}

}  // namespace s2crop::sentinel2
