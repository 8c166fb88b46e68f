// Discovery of Sentinel-2 L2A acquisitions in the layouts users have: STAC items with COGs, SAFE folders or zips,
// plain folders of per-band GeoTIFFs, and sen2r outputs. The MTD parser is product_metadata.cpp, the STAC item parser
// stac_item.cpp, the names identity.cpp, the acquisition list's text form acquisition_text.cpp.
#include <cpl_json.h>
#include <cpl_minixml.h>
#include <cpl_string.h>
#include <cpl_vsi.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/sentinel2/acquisition.hpp"
#include "discover_internal.hpp"

namespace fs = std::filesystem;

namespace s2crop::sentinel2 {

namespace discovery {

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Spacecraft, datatake sensing start and relative orbit from a product name: S2A_MSIL2A_20210511T100031_N0300_R122_
// T33UVP_..., WorldCereal's S2B_MSIL2A_20190904T074619_N9999R135T36MXB_36MXB, or an Earth Search id S2A_33UVP_20210511_
// 0_L2A (spacecraft only). False if the name has none of it.
bool read_identity(const std::string& name, Acquisition& a) {
  static const std::regex product(R"(S2([A-D])_MSIL2A_(\d{8}T\d{6})_N\d{4}_?R(\d{3}))");
  static const std::regex item(R"(^S2([A-D])_\d{1,2}[A-Z]{3}_\d{8}_)");
  std::smatch m;
  if (std::regex_search(name, m, product)) {
    a.spacecraft = std::string(m[1])[0];
    a.sensing_start = m[2];
    a.relative_orbit = std::stoi(m[3]);
    return true;
  }
  if (std::regex_search(name, m, item)) {
    a.spacecraft = std::string(m[1])[0];
    return true;
  }
  return false;
}

// The offset of a product's bands: forced by --boa-offset, else the product's metadata, else the date rule.
int decide_offset(OffsetMode mode, const Date& date, int metadata_offset, bool have_metadata, std::string& origin,
                  const std::string& metadata_name) {
  switch (mode) {
    case OffsetMode::Zero: origin = "forced 0 (--boa-offset)"; return 0;
    case OffsetMode::Baseline04: origin = "forced -1000 (--boa-offset)"; return kBaseline04Offset;
    case OffsetMode::Auto: break;
  }
  if (have_metadata) {
    origin = metadata_name;
    return metadata_offset;
  }
  origin = "date rule (processing baseline 04.00 from 2022-01-25)";
  return offset_by_date(date);
}

}  // namespace discovery

namespace {

using namespace discovery;

std::string normal_path(const std::string& p) {
  if (p.rfind("/vsi", 0) == 0) return p;
  std::error_code ec;
  fs::path c = fs::weakly_canonical(fs::absolute(p, ec), ec);
  return ec ? fs::path(p).lexically_normal().string() : c.string();
}

const std::regex kBandFileRe(R"((?:^|.*[_.-])(B0?[1-9]|B8A|B1[0-2]|SCL|MASK)(?:_(\d{2})m)?\.(?:tif|tiff|jp2|TIF|TIFF|JP2)$)",
                             std::regex::icase);
const std::regex kSen2rRe(R"(^S2([A-D])2A_(\d{8})_(\d{3})_(.+)_(BOA|SCL)_(\d+)\.tif$)");

std::string normalise_band(const std::string& raw) {
  std::string b = upper(raw);
  if (b == "SCL" || b == "MASK") return b;
  if (b.size() == 2) b = "B0" + b.substr(1);
  return b;
}

// MGRS tile from a path like .../36/M/XB/2019/... (the AWS / WorldCereal folder convention).
bool tile_from_path(const std::string& path, std::string& tile) {
  static const std::regex re(R"((?:^|/)(\d{1,2})/([C-HJ-NP-X])/([A-Z]{2})(?:/|$))");
  std::smatch m;
  if (std::regex_search(path, m, re)) {
    std::string zone = m[1];
    if (zone.size() == 1) zone = "0" + zone;
    tile = zone + std::string(m[2]) + std::string(m[3]);
    return true;
  }
  return false;
}

// A whole file through GDAL's virtual file system (plain paths and /vsizip/... alike), at most 100 MB like GDAL's
// own JSON loader; false if it cannot be read.
bool read_gdal_file(const std::string& path, std::string& text) {
  GByte* data = nullptr;
  vsi_l_offset size = 0;
  if (!VSIIngestFile(nullptr, path.c_str(), &data, &size, 100 * 1024 * 1024)) return false;
  text.assign(reinterpret_cast<const char*>(data), static_cast<std::size_t>(size));
  VSIFree(data);
  return true;
}

// The problem part of an InputError's message (what() is "<path>: <problem>").
std::string problem_of(const InputError& e) {
  std::string what = e.what();
  return what.rfind(e.path() + ": ", 0) == 0 ? what.substr(e.path().size() + 2) : what;
}

struct Builder {
  const DiscoveryOptions& options;
  bool skip_bad;
  std::vector<Skipped>& skipped;
  std::vector<Acquisition> found;
  std::set<std::string> claimed;  // raster files already used by an item/product (normalised paths)
  std::vector<std::string> loose_files;  // rasters seen outside STAC items and SAFE products

  void bad(const std::string& what, const std::string& reason) {
    if (!skip_bad) throw InputError(what, reason);
    skipped.push_back({what, reason});
  }

  int decide_offset(const Date& date, int metadata_offset, bool have_metadata, std::string& origin,
                    const std::string& metadata_name) {
    return sentinel2::decide_offset(options.offset_mode, date, metadata_offset, have_metadata, origin, metadata_name);
  }

  bool wanted(const Acquisition& a) const {
    if (!options.tiles.empty() &&
        std::find(options.tiles.begin(), options.tiles.end(), a.tile) == options.tiles.end())
      return false;
    if (!options.date_from.empty() && a.date < Date::parse(options.date_from)) return false;
    if (!options.date_to.empty() && Date::parse(options.date_to) < a.date) return false;
    return true;
  }

  // Checks that every required band is there; reports the first missing one.
  bool complete(const Acquisition& a) {
    for (auto& b : options.bands)
      if (!a.bands.count(b)) {
        bad(a.source, "band " + b + " is missing from acquisition " + a.id + " (" + a.date.iso() +
                          "); present: " + present(a));
        return false;
      }
    return true;
  }

  static std::vector<const std::string*> paths_of(const Acquisition& a) {
    std::vector<const std::string*> out{&a.source, &a.mask.path};
    for (auto& [k, v] : a.bands) out.push_back(&v.path);
    return out;
  }

  static std::string present(const Acquisition& a) {
    std::string s;
    for (auto& [k, v] : a.bands) s += (s.empty() ? "" : " ") + k;
    return s.empty() ? "none" : s;
  }

  void add(Acquisition a) {
    if (!wanted(a)) return;
    // Paths travel between ranks as tab-separated lines: a tab or line break in one would be misread later.
    for (const std::string* p : paths_of(a))
      if (p->find_first_of("\t\n\r") != std::string::npos) {
        bad(*p, "the path contains a tab or line break, which s2crop cannot pass between ranks: rename it");
        return;
      }
    // Tile names become folder and dataset names (parts, COGs): nothing that could climb out of the output folder.
    if (!is_safe_tile_name(a.tile)) {
      bad(a.source, "tile name '" + a.tile + "' is not an MGRS tile or a plain region name (letters, digits, '_', "
                    "'-'; at most 64)");
      return;
    }
    if (!complete(a)) return;
    if (a.mask_kind == MaskKind::None && !options.allow_unmasked) {
      bad(a.source, "acquisition " + a.id + " (" + a.date.iso() + ") has no cloud mask (no SCL" +
                        (a.source.size() > 5 && a.source.substr(a.source.size() - 5) == ".json" ? " asset" : "") +
                        ", no MASK file): its clouds would go into the composite; add the mask, or pass "
                        "--allow-unmasked to composite without one");
      return;
    }
    // Keep only the bands asked for: fewer files to open per block.
    std::map<std::string, BandSource> kept;
    for (auto& b : options.bands) kept[b] = a.bands[b];
    a.bands = std::move(kept);
    found.push_back(std::move(a));
  }

  // ---- STAC item ----
  bool try_stac(const std::string& path) {
    std::string text;
    if (!read_gdal_file(path, text)) {
      bad(path, "malformed STAC item: not valid JSON");
      return true;
    }
    Acquisition a;
    bool is_item = false;
    try {
      is_item = parse_stac_item(text, path, options.offset_mode, a);
    } catch (const InputError& e) {
      claim(a);  // files of the assets read before the problem are not loose band files
      bad(e.path(), problem_of(e));
      return true;
    }
    if (!is_item) return false;
    claim(a);
    add(std::move(a));
    return true;
  }

  void claim(const Acquisition& a) {
    for (auto& [name, src] : a.bands) claimed.insert(normal_path(src.path));
    if (a.mask_kind == MaskKind::Scl) claimed.insert(normal_path(a.mask.path));
  }

  // ---- SAFE (folder or zip) ----
  void add_safe(const std::string& safe_root, const std::string& display) {
    // safe_root: GDAL-readable path of the .SAFE folder (may be /vsizip/...)
    std::string mtd = safe_root + "/MTD_MSIL2A.xml";
    std::string text;
    if (!read_gdal_file(mtd, text)) {
      bad(display, "SAFE product without a readable MTD_MSIL2A.xml");
      return;
    }
    ProductMetadata meta;
    try {
      meta = parse_mtd(text, mtd);
    } catch (const InputError& e) {
      bad(e.path(), problem_of(e));
      return;
    }
    Acquisition a;
    a.source = mtd;
    a.id = meta.id;
    a.tile = meta.tile;
    a.date = meta.date;
    const std::map<int, int>& offsets = meta.boa_add_offset;
    const std::string& baseline = meta.processing_baseline;
    read_identity(a.id, a);
    // Files: GRANULE/<granule>/IMG_DATA/R10m|R20m|R60m/<name>_<band>_<res>m.<ext>
    char** files = VSIReadDirRecursive((safe_root + "/GRANULE").c_str());
    std::map<std::string, std::map<int, std::string>> by_band;  // band -> resolution -> path
    for (int i = 0; files && files[i]; ++i) {
      std::string rel = files[i];
      std::smatch m;
      std::string name = fs::path(rel).filename().string();
      if (rel.find("IMG_DATA") == std::string::npos || !std::regex_match(name, m, kBandFileRe)) continue;
      std::string b = normalise_band(m[1]);
      int res = m[2].matched ? std::stoi(m[2]) : 10;
      by_band[b][res] = safe_root + "/GRANULE/" + rel;
    }
    CSLDestroy(files);
    auto pick = [&](const std::string& b, int native) -> std::string {
      auto it = by_band.find(b);
      if (it == by_band.end()) return "";
      auto r = it->second.find(native);
      if (r != it->second.end()) return r->second;
      return it->second.begin()->second;  // finest available
    };
    for (auto& spec : all_bands()) {
      std::string p = pick(spec.name, spec.resolution_m);
      if (p.empty()) continue;
      int meta = 0;
      bool have = false;
      std::string origin = "MTD_MSIL2A.xml BOA_ADD_OFFSET";
      auto o = offsets.find(spec.safe_band_id);
      if (o != offsets.end()) {
        meta = o->second;
        have = true;
      } else if (offsets.empty() && !baseline.empty() && offset_by_baseline(baseline, meta)) {
        have = true;  // products before baseline 04.00 have no offset list
        origin = "MTD_MSIL2A.xml PROCESSING_BASELINE " + baseline;
      }
      a.bands[spec.name] = BandSource{p, 1, decide_offset(a.date, meta, have, a.offset_origin, origin)};
    }
    std::string scl = pick("SCL", 20);
    if (!scl.empty()) {
      a.mask_kind = MaskKind::Scl;
      a.mask = BandSource{scl, 1, 0};
    }
    add(std::move(a));
  }

  // ---- plain folders of band files ----
  struct Group {
    std::string dir, tile;
    Date date;
    std::map<std::string, std::string> files;  // band -> path
    std::map<std::string, int> res;            // band -> resolution stated in its name (0: none)
    char spacecraft = 0;                       // sen2r names say them
    int relative_orbit = 0;
  };

  void add_band_files(const std::vector<std::string>& paths) {
    std::map<std::string, Group> groups;
    for (auto& p : paths) {
      std::string name = fs::path(p).filename().string();
      std::string dir = fs::path(p).parent_path().string();
      std::smatch m;
      if (std::regex_match(name, m, kSen2rRe)) {
        // Sensor and orbit are part of the acquisition: two orbits on one date are two acquisitions.
        std::string key = dir + "|sen2r|" + std::string(m[1]) + "|" + std::string(m[2]) + "|" + std::string(m[3]) +
                          "|" + std::string(m[4]);
        Group& g = groups[key];
        g.dir = dir;
        g.date = Date::parse(m[2]);
        g.tile = m[4];  // sen2r names the extent, not the tile
        g.spacecraft = std::string(m[1])[0];
        g.relative_orbit = std::stoi(m[3]);
        g.files[m[5] == "BOA" ? "BOA" : "SCL"] = p;
        continue;
      }
      if (!std::regex_match(name, m, kBandFileRe)) continue;
      std::string band = normalise_band(m[1]);
      int res = m[2].matched ? std::stoi(m[2]) : 0;  // 0: not stated in the name
      // Date and tile from the innermost path component that has them (parents may carry unrelated run dates).
      Date date;
      std::string tile;
      bool have_date = false, have_tile = false;
      for (fs::path part = fs::path(p); !part.empty() && part != part.root_path(); part = part.parent_path()) {
        std::string component = part.filename().string();
        if (!have_date) have_date = find_date(component, date);
        if (!have_tile) have_tile = find_tile(component, tile);
        if (have_date && have_tile) break;
      }
      if (!have_date) continue;  // not an acquisition file
      if (!have_tile && !tile_from_path(dir, tile)) tile = fs::path(dir).filename().string();
      std::string key = dir + "|" + date.compact() + "|" + tile;
      Group& g = groups[key];
      g.dir = dir;
      g.date = date;
      g.tile = tile;
      // Several resolutions of one band (a flattened IMG_DATA): keep the native one, else the finest.
      auto& current = g.files[band];
      int current_res = g.res[band];
      int native = is_band(band) ? sentinel2::band(band).resolution_m : 20;
      bool better = current.empty() || res == native ||
                    (current_res != native && res != 0 && (current_res == 0 || res < current_res));
      if (better) {
        current = p;
        g.res[band] = res;
      }
    }
    for (auto& [key, g] : groups) {
      Acquisition a;
      a.source = g.dir;
      a.tile = g.tile;
      a.date = g.date;
      a.id = fs::path(g.dir).filename().string();
      if (a.id.find(g.date.compact()) == std::string::npos) a.id += "_" + g.date.compact();
      read_identity(fs::path(g.dir).filename().string(), a);
      if (g.spacecraft) a.spacecraft = g.spacecraft;
      if (g.relative_orbit) a.relative_orbit = g.relative_orbit;
      if (!g.files.count("BOA")) {
        // Band files that no STAC item or SAFE product claimed: a whole acquisition, or strays (a preview_B04.tif,
        // the SCL.tif of an item without an scl asset). Name what was found rather than the first band missing.
        std::vector<std::string> missing, found_files;
        for (auto& b : options.bands)
          if (!g.files.count(b)) missing.push_back(b);
        if (!missing.empty()) {
          for (auto& [band, path] : g.files) found_files.push_back(fs::path(path).filename().string());
          bad(g.dir, "band files " + join_items(found_files) + " (date " + g.date.iso() + ", tile " + g.tile +
                         ") are not part of any STAC item or SAFE product, and band" +
                         (missing.size() > 1 ? "s " : " ") + join_items(missing) +
                         (missing.size() > 1 ? " are" : " is") +
                         " missing for a folder acquisition: an incomplete acquisition or stray files; remove or "
                         "move them");
          continue;
        }
      }
      std::string origin;
      int offset = decide_offset(a.date, 0, false, origin, "");
      a.offset_origin = origin;
      if (g.files.count("BOA")) {
        // sen2r BOA stack: bands B01..B09, B11, B12 (11 bands) with B8A inserted after B08 when 12.
        std::string boa = g.files["BOA"];
        a.source = boa;
        a.id = fs::path(boa).stem().string();
        int count = 0;
        try {
          count = geo::RasterReader(boa).band_count();
        } catch (const InputError& e) {
          bad(boa, e.what());
          continue;
        }
        std::vector<std::string> order = {"B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B11", "B12"};
        if (count == 12) order.insert(order.begin() + 8, "B8A");
        if (count != static_cast<int>(order.size())) {
          bad(boa, "sen2r BOA file with " + std::to_string(count) + " bands (expected 11 or 12)");
          continue;
        }
        for (size_t i = 0; i < order.size(); ++i) a.bands[order[i]] = BandSource{boa, static_cast<int>(i) + 1, offset};
        if (g.files.count("SCL")) {
          a.mask_kind = MaskKind::Scl;
          a.mask = BandSource{g.files["SCL"], 1, 0};
        }
      } else {
        for (auto& [band, path] : g.files) {
          if (band == "SCL") {
            a.mask_kind = MaskKind::Scl;
            a.mask = BandSource{path, 1, 0};
          } else if (band == "MASK") {
            if (a.mask_kind != MaskKind::Scl) {
              a.mask_kind = MaskKind::Valid;
              a.mask = BandSource{path, 1, 0};
            }
          } else if (is_band(band)) {
            a.bands[band] = BandSource{path, 1, offset};
          }
        }
      }
      add(std::move(a));
    }
  }

  // ---- walking ----
  void walk(const std::string& input) {
    std::error_code ec;
    fs::path p(input);
    if (!fs::exists(p, ec)) throw InputError(input, "input does not exist");
    std::vector<std::string> band_files;
    auto visit_file = [&](const fs::path& f) {
      std::string ext = upper(f.extension().string());
      std::string s = f.string();
      if (ext == ".JSON") {
        try_stac(s);
      } else if (ext == ".ZIP") {
        visit_zip(s);
      } else if (f.filename() == "MTD_MSIL2A.xml") {
        add_safe(f.parent_path().string(), f.parent_path().string());
      } else if (ext == ".TIF" || ext == ".TIFF" || ext == ".JP2") {
        band_files.push_back(s);
      }
    };
    if (fs::is_directory(p)) {
      if (upper(p.extension().string()) == ".SAFE") {
        add_safe(p.string(), p.string());
      } else {
        std::vector<fs::path> entries;
        for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::follow_directory_symlink, ec);
             it != fs::recursive_directory_iterator(); it.increment(ec)) {
          if (ec) throw InputError(input, "cannot list folder: " + ec.message());
          if (it->is_directory() && upper(it->path().extension().string()) == ".SAFE") {
            add_safe(it->path().string(), it->path().string());
            it.disable_recursion_pending();
            continue;
          }
          if (it->is_regular_file()) entries.push_back(it->path());
        }
        std::sort(entries.begin(), entries.end());
        for (auto& e : entries) visit_file(e);
      }
    } else {
      visit_file(p);
    }
    loose_files.insert(loose_files.end(), band_files.begin(), band_files.end());
  }

  // After all inputs are walked, so STAC items of any input claim their files before loose folders are grouped.
  void add_loose_files() {
    std::vector<std::string> unclaimed;
    for (auto& f : loose_files)
      if (!claimed.count(normal_path(f))) unclaimed.push_back(f);
    add_band_files(unclaimed);
  }

  void visit_zip(const std::string& zip) {
    std::string root = "/vsizip/" + zip;
    char** entries = VSIReadDir(root.c_str());
    bool any = false;
    for (int i = 0; entries && entries[i]; ++i) {
      std::string e = entries[i];
      if (upper(fs::path(e).extension().string()) == ".SAFE") {
        add_safe(root + "/" + e, zip);
        any = true;
      }
    }
    CSLDestroy(entries);
    if (!any) bad(zip, "zip file without a .SAFE product inside (or not a readable zip)");
  }
};

}  // namespace


std::vector<Acquisition> discover(const std::vector<std::string>& inputs, const DiscoveryOptions& options,
                                  bool skip_bad, std::vector<Skipped>& skipped) {
  geo::init_gdal();
  Builder b{options, skip_bad, skipped, {}, {}, {}};
  for (auto& in : inputs) b.walk(in);
  b.add_loose_files();
  std::sort(b.found.begin(), b.found.end(), [](const Acquisition& x, const Acquisition& y) {
    if (x.tile != y.tile) return x.tile < y.tile;
    if (x.date != y.date) return x.date < y.date;
    return x.id < y.id;
  });
  // The same product reached twice (e.g. SAFE folder and its zip both given) must not count twice.
  b.found.erase(std::unique(b.found.begin(), b.found.end(),
                            [](const Acquisition& x, const Acquisition& y) {
                              return x.tile == y.tile && x.date == y.date && x.id == y.id;
                            }),
                b.found.end());
  // Two products of one observation (a STAC item and a SAFE of the same product, a reprocessed copy) would weigh
  // that date twice in the median and double its clear count: refused, or with --on-error skip the later one left out.
  std::vector<Acquisition> kept;
  for (auto& a : b.found) {
    const Acquisition* twin = nullptr;
    for (auto it = kept.rbegin(); it != kept.rend() && it->tile == a.tile && it->date == a.date; ++it)
      if (same_observation(*it, a)) twin = &*it;
    if (!twin) {
      kept.push_back(std::move(a));
      continue;
    }
    std::string what = "acquisition " + a.id + " is the same observation as " + twin->id + " from " + twin->source +
                       " (tile " + a.tile + ", " + a.date.iso() +
                       (a.spacecraft ? std::string(", Sentinel-2") + a.spacecraft : std::string()) +
                       (a.relative_orbit ? ", relative orbit " + std::to_string(a.relative_orbit) : std::string()) +
                       "): a second copy, another layout or a reprocessing of one product would count that date "
                       "twice; give each observation once";
    b.bad(a.source, what);
  }
  return kept;
}

}  // namespace s2crop::sentinel2
