// The BigEarthNet v1.0 archive as it is on disk: the CORINE and BigEarthNet-19 nomenclatures, the patch folders and
// their label metadata. The import that writes a patch set from them is bigearthnet_import.cpp.
#include "s2crop/samples/bigearthnet_import.hpp"

#include <cpl_json.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/staged_file.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/composite/kernels.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/samples/patch_set.hpp"

namespace fs = std::filesystem;

namespace s2crop::samples::bigearthnet {

using sentinel2::Date;

namespace {

// BigEarthNet-19 (Sumbul et al., IEEE GRSM 2021): each class and the CORINE level-3 labels it groups; the labels
// not listed here belong to no class. Names as the data set writes them.
struct Class19 {
  const char* name;
  std::vector<const char*> clc;
};
const std::vector<Class19>& class_table() {
  static const std::vector<Class19> table{
      {"Urban fabric", {"Continuous urban fabric", "Discontinuous urban fabric"}},
      {"Industrial or commercial units", {"Industrial or commercial units"}},
      {"Arable land", {"Non-irrigated arable land", "Permanently irrigated land", "Rice fields"}},
      {"Permanent crops",
       {"Vineyards", "Fruit trees and berry plantations", "Olive groves", "Annual crops associated with permanent crops"}},
      {"Pastures", {"Pastures"}},
      {"Complex cultivation patterns", {"Complex cultivation patterns"}},
      {"Land principally occupied by agriculture, with significant areas of natural vegetation",
       {"Land principally occupied by agriculture, with significant areas of natural vegetation"}},
      {"Agro-forestry areas", {"Agro-forestry areas"}},
      {"Broad-leaved forest", {"Broad-leaved forest"}},
      {"Coniferous forest", {"Coniferous forest"}},
      {"Mixed forest", {"Mixed forest"}},
      {"Natural grassland and sparsely vegetated areas", {"Natural grassland", "Sparsely vegetated areas"}},
      {"Moors, heathland and sclerophyllous vegetation", {"Moors and heathland", "Sclerophyllous vegetation"}},
      {"Transitional woodland, shrub", {"Transitional woodland/shrub"}},
      {"Beaches, dunes, sands", {"Beaches, dunes, sands"}},
      {"Inland wetlands", {"Inland marshes", "Peatbogs"}},
      {"Coastal wetlands", {"Salt marshes", "Salines"}},
      {"Inland waters", {"Water courses", "Water bodies"}},
      {"Marine waters", {"Coastal lagoons", "Estuaries", "Sea and ocean"}},
  };
  return table;
}

void check_name(const std::string& s) {
  if (s.find_first_of("\t\n\r") != std::string::npos)
    throw InputError(s, "file or folder name contains a tab or line break; rename it");
}

}  // namespace

const std::vector<std::string>& clc43_labels() {
  static const std::vector<std::string> labels{
      "Continuous urban fabric",
      "Discontinuous urban fabric",
      "Industrial or commercial units",
      "Road and rail networks and associated land",
      "Port areas",
      "Airports",
      "Mineral extraction sites",
      "Dump sites",
      "Construction sites",
      "Green urban areas",
      "Sport and leisure facilities",
      "Non-irrigated arable land",
      "Permanently irrigated land",
      "Rice fields",
      "Vineyards",
      "Fruit trees and berry plantations",
      "Olive groves",
      "Pastures",
      "Annual crops associated with permanent crops",
      "Complex cultivation patterns",
      "Land principally occupied by agriculture, with significant areas of natural vegetation",
      "Agro-forestry areas",
      "Broad-leaved forest",
      "Coniferous forest",
      "Mixed forest",
      "Natural grassland",
      "Moors and heathland",
      "Sclerophyllous vegetation",
      "Transitional woodland/shrub",
      "Beaches, dunes, sands",
      "Bare rock",
      "Sparsely vegetated areas",
      "Burnt areas",
      "Inland marshes",
      "Peatbogs",
      "Salt marshes",
      "Salines",
      "Intertidal flats",
      "Water courses",
      "Water bodies",
      "Coastal lagoons",
      "Estuaries",
      "Sea and ocean",
  };
  return labels;
}

const std::vector<std::string>& classes19() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& c : class_table()) out.push_back(c.name);
    return out;
  }();
  return names;
}

int class19_of(const std::string& clc_label) {
  const auto& all = clc43_labels();
  if (std::find(all.begin(), all.end(), clc_label) == all.end()) return -2;
  const auto& table = class_table();
  for (std::size_t k = 0; k < table.size(); ++k)
    for (const char* member : table[k].clc)
      if (clc_label == member) return static_cast<int>(k);
  return -1;
}

const std::vector<std::string>& layer_names(int nomenclature) {
  if (nomenclature == 19) return classes19();
  if (nomenclature == 43) return clc43_labels();
  throw ConfigError("--nomenclature must be 19 (BigEarthNet-19 classes) or 43 (CORINE labels), not " +
                    std::to_string(nomenclature));
}

std::vector<std::uint8_t> label_flags(const std::vector<std::string>& labels, int nomenclature,
                                      const std::string& source) {
  const auto& layers = layer_names(nomenclature);
  std::vector<std::uint8_t> flags(layers.size(), 0);
  for (const auto& label : labels) {
    const int k = class19_of(label);
    if (k == -2)
      throw InputError(source, "unknown label '" + label +
                                   "' (not one of the 43 CORINE level-3 labels of BigEarthNet v1.0)");
    if (nomenclature == 19) {
      if (k >= 0) flags[static_cast<std::size_t>(k)] = 1;
    } else {
      const auto& all = clc43_labels();
      flags[static_cast<std::size_t>(std::find(all.begin(), all.end(), label) - all.begin())] = 1;
    }
  }
  return flags;
}

std::string tile_of_product(const std::string& product_name) {
  static const std::regex tile(R"(_T(\d{2}[C-HJ-NP-X][A-HJ-NP-Z]{2})(?=[_.]|$))");
  std::smatch m;
  return std::regex_search(product_name, m, tile) ? m[1].str() : std::string();
}

std::string PatchInfo::json_path() const { return (fs::path(dir) / (name + kLabelFileSuffix)).string(); }
std::string PatchInfo::band_path(const std::string& band) const {
  return (fs::path(dir) / (name + "_" + band + ".tif")).string();
}

PatchInfo read_patch_info(const std::string& name, const std::string& dir) {
  PatchInfo p;
  p.name = name;
  p.dir = dir;
  const std::string path = p.json_path();
  CPLJSONDocument doc;
  if (!doc.Load(path)) throw InputError(path, "cannot read the patch's labels: missing, unreadable or not JSON");
  const CPLJSONObject root = doc.GetRoot();
  if (!root.IsValid() || root.GetType() != CPLJSONObject::Type::Object)
    throw InputError(path, "not a BigEarthNet label file: the JSON is not an object");
  const CPLJSONArray labels = root.GetArray("labels");
  if (!labels.IsValid()) throw InputError(path, "not a BigEarthNet label file: no 'labels' array");
  for (int i = 0; i < labels.Size(); ++i) {
    const CPLJSONObject item = labels[i];
    if (item.GetType() != CPLJSONObject::Type::String)
      throw InputError(path, "'labels' entry " + std::to_string(i) + " is not a string");
    p.labels.push_back(item.ToString());
  }
  const std::string source = root.GetString("tile_source");
  p.tile = tile_of_product(source);
  if (p.tile.empty())
    throw InputError(path, "'tile_source' ('" + source + "') names no MGRS tile (expected a product name with _T<tile>_)");
  const std::string date = root.GetString("acquisition_date");
  try {
    p.date = Date::parse(date);
  } catch (const std::exception&) {
    throw InputError(path, "'acquisition_date' ('" + date + "') is not a date (expected \"YYYY-MM-DD hh:mm:ss\")");
  }
  return p;
}

std::vector<PatchFolder> find_patch_folders(const std::vector<std::string>& inputs) {
  std::map<std::string, PatchFolder> by_dir;  // canonical folder -> patch (one folder listed twice counts once)
  const std::size_t suffix = std::string(kLabelFileSuffix).size();
  for (const auto& input : inputs) {
    std::error_code ec;
    if (!fs::exists(input, ec)) throw InputError(input, "input folder not found");
    if (!fs::is_directory(input, ec))
      throw InputError(input, "is not a folder (expected BigEarthNet patch folders, or a folder above them)");
    fs::recursive_directory_iterator it(input, fs::directory_options::follow_directory_symlink, ec), end;
    if (ec) throw InputError(input, "cannot list: " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) break;
      const std::string file = it->path().filename().string();
      if (file.size() <= suffix || file.compare(file.size() - suffix, suffix, kLabelFileSuffix) != 0) continue;
      if (!it->is_regular_file(ec)) continue;
      const fs::path dir = it->path().parent_path();
      check_name(it->path().string());
      PatchFolder found{file.substr(0, file.size() - suffix), dir.lexically_normal().string()};
      const std::string key = fs::weakly_canonical(dir, ec).string();
      auto [at, inserted] = by_dir.emplace(key.empty() ? found.dir : key, found);
      if (!inserted && at->second.name != found.name)
        throw InputError(found.dir, "holds two BigEarthNet label files (" + at->second.name + kLabelFileSuffix +
                                        " and " + file + "); one patch per folder");
    }
    if (ec) throw InputError(input, "cannot list: " + ec.message());
  }
  std::vector<PatchFolder> out;
  for (auto& [key, p] : by_dir) out.push_back(p);
  std::sort(out.begin(), out.end(), [](const PatchFolder& a, const PatchFolder& b) {
    return a.name != b.name ? a.name < b.name : a.dir < b.dir;
  });
  for (std::size_t i = 1; i < out.size(); ++i)
    if (out[i].name == out[i - 1].name)
      throw InputError(out[i].dir, "patch " + out[i].name + " is also in " + out[i - 1].dir +
                                       "; import each patch once (check overlapping --input folders)");
  return out;
}

int season_month_index(const Date& date, int season_start) { return (date.month - season_start + 12) % 12; }

Date season_start_of(const Date& date, int season_start) {
  return Date{date.month >= season_start ? date.year : date.year - 1, season_start, 1};
}

}  // namespace s2crop::samples::bigearthnet
