#pragma once
// One Sentinel-2 L2A acquisition of one tile, whatever layout it came in: where each band's pixels are, the
// additive offset of the product, and its validity mask. Discovery turns folders into these.
#include <map>
#include <string>
#include <vector>

#include "s2crop/sentinel2/bands.hpp"

namespace s2crop::sentinel2 {

struct BandSource {
  std::string path;  // GDAL path (may be /vsizip/...)
  int band = 1;      // 1-based band index in that file (multi-band stacks such as sen2r's BOA)
  int offset = 0;    // reflectance x 10000 = DN + offset (-1000 for processing baseline >= 04.00)
};

enum class MaskKind {
  None,   // no mask: only DN 0 / no-data is excluded
  Scl,    // Sen2Cor scene classification, valid classes + dilation
  Valid,  // a validity raster, non-zero = clear (e.g. WorldCereal's MASK)
};

struct Acquisition {
  std::string id;      // product or item id
  std::string tile;    // MGRS tile or region name: acquisitions are composited per tile
  std::string source;  // the file or folder that describes it (STAC item, MTD_MSIL2A.xml, folder): named in errors
  Date date;
  std::string offset_origin;  // how the offset was decided ("STAC raster:bands", "MTD_MSIL2A.xml", "date rule", ...)
  std::map<std::string, BandSource> bands;  // band name ("B04") -> pixels
  MaskKind mask_kind = MaskKind::None;
  BandSource mask;
  // What identifies the observation whatever copy or layout it came in (two products of one observation must not
  // both be composited): the spacecraft ('A'..'D', 0 unknown), the relative orbit (0 unknown) and the datatake's
  // sensing start "YYYYMMDDTHHMMSS" (empty unknown), from the product name, STAC s2:product_uri or platform.
  char spacecraft = 0;
  int relative_orbit = 0;
  std::string sensing_start;
};

// True if a and b are the same observation of the same tile (a reprocessed copy, or one product reached through two
// layouts), from what both identify: tile and date always; spacecraft, orbit and sensing start where both know them.
bool same_observation(const Acquisition& a, const Acquisition& b);

// Tile (or sen2r region) names become folder and dataset names: letters, digits, '_' and '-' only, at most 64.
bool is_safe_tile_name(const std::string& name);
// An MGRS tile name such as 33UVP (zone 01-60, latitude band C-X without I and O, two square letters).
bool is_mgrs_tile(const std::string& name);
// The MGRS tile (e.g. 33UVP) and the acquisition date (YYYYMMDD) inside a product or file name; false where there is
// none (a date must be a real day).
bool find_tile(const std::string& text, std::string& tile);
bool find_date(const std::string& text, Date& date);

enum class OffsetMode { Auto, Zero, Baseline04 };  // auto: from metadata, else the date rule
OffsetMode parse_offset_mode(const std::string& text);

struct DiscoveryOptions {
  std::vector<std::string> bands = default_crop_bands();  // required in every acquisition
  OffsetMode offset_mode = OffsetMode::Auto;
  std::vector<std::string> tiles;  // keep only these tiles (empty: all)
  std::string date_from, date_to;  // inclusive ISO dates (empty: unbounded)
  // An acquisition without a cloud mask (no SCL or MASK) is an error unless this is set: compositing it unmasked
  // puts its clouds into the composite.
  bool allow_unmasked = false;
};

struct Skipped {
  std::string what;    // the product/file
  std::string reason;
};

// Walks `inputs` (folders, STAC item JSON files, SAFE folders or zips) and returns acquisitions sorted by
// (tile, date, id). Recognised layouts:
//  - STAC items (*.json with "type": "Feature" and "assets"), hrefs relative to the item;
//  - SAFE products (folder *.SAFE, or *.zip containing one) with MTD_MSIL2A.xml;
//  - folders of per-band GeoTIFFs named ..._B04.tif / B04.tif (+ SCL or MASK), date and tile from the names;
//  - sen2r outputs (S2A2A_<date>_<orbit>_<name>_BOA_10.tif + _SCL_10.tif).
// A broken product is an InputError naming its file; with `skip_bad` it is recorded in `skipped` instead.
std::vector<Acquisition> discover(const std::vector<std::string>& inputs, const DiscoveryOptions& options,
                                  bool skip_bad, std::vector<Skipped>& skipped);

// The parsers of one file's text behind discover() (`path` names the file in errors; the fuzz targets call them).
// One STAC item: false when the JSON is not a Feature (a collection, a catalog: not an acquisition); otherwise fills
// `item` (id, tile, date, bands with hrefs resolved against the item's folder and offsets as `offset_mode` decides,
// SCL mask) and returns true. Throws InputError for a malformed item; `item` then holds the bands read before the
// problem.
bool parse_stac_item(const std::string& text, const std::string& path, OffsetMode offset_mode, Acquisition& item);

// What a SAFE product's MTD_MSIL2A.xml says (`path`: the file, whose folder names the product when PRODUCT_URI is
// absent). Throws InputError for malformed XML, a file that is not Level-2A metadata, a product without a date or
// tile, or a BOA_ADD_OFFSET that is not an integer.
struct ProductMetadata {
  std::string id;    // PRODUCT_URI without .SAFE
  std::string tile;  // from the product name
  Date date;
  std::map<int, int> boa_add_offset;  // band_id (B1 = 0 ... B12 = 12) -> offset in DN; empty before baseline 04.00
  std::string processing_baseline;    // "04.00"; empty if absent
};
ProductMetadata parse_mtd(const std::string& text, const std::string& path);

// Compact text serialisation, to broadcast the list from rank 0 (discovery is file-system heavy: one rank does it).
std::string serialise(const std::vector<Acquisition>& acquisitions);
std::vector<Acquisition> deserialise(const std::string& text);

}  // namespace s2crop::sentinel2
