#pragma once
// `s2crop import-bigearthnet`: BigEarthNet v1.0 Sentinel-2 patches (one folder per patch: a GeoTIFF per band at
// 10, 20 and 60 m, and <patch>_labels_metadata.json with CORINE level-3 labels) -> one patch set
// (samples/patch_set.hpp) with patch-level labels, for the U-Net and for pre-training on real multi-resolution data.
//
// What the patch set holds:
//   x       the selected bands on the patch's 10 m grid (the grid of its finest selected band): 20 m and 60 m bands
//           replicated pixel by pixel (nearest neighbour, geo::read_replicated: the same resampling as
//           `s2crop composite`); reflectance x 10000 = DN + offset (0 before processing baseline 04.00, i.e. for
//           acquisitions before 2022-01-25, which is all of BigEarthNet v1.0; -1000 from that date on). A pixel where
//           any selected band has DN 0 (no data) is -32768 in every band.
//   months  one 12-month season starting at --season-start: the season holding the earliest acquisition of the
//           whole import. A patch is one acquisition, i.e. a monthly composite with one clear month: its calendar
//           month in that season has clear = 1, and by the gap-fill rule of the composites (the ends hold the
//           nearest value) every other month holds the same values with clear = 0. A patch acquired in another
//           season (BigEarthNet spans June 2017 - May 2018) goes to its calendar month too: for it the month labels
//           are nominal (the log says how many); its real date is in the dataset `acquisition_date`.
//   labels  label_scope "patch": one binary layer per class of the nomenclature, 1 on every valid pixel of a patch
//           that has the class, 0 on its other valid pixels, 255 on no-data pixels. No crop_type layer, no
//           class_names. --nomenclature 19 (default): the 19 classes of BigEarthNet-19 (Sumbul et al.,
//           "BigEarthNet-MM", IEEE GRSM 2021), 11 of the 43 CORINE labels belong to none of them;
//           43: one layer per CORINE label of BigEarthNet v1.0.
//   tiles   the MGRS tiles of the patches' source products (tile_source "..._T33UUP_..." -> "33UUP"), sorted;
//           row and col are -1: a patch's offset in the MGRS tile grid is not recorded by BigEarthNet and is not
//           derived here.
//   patch_name, acquisition_date   string datasets [n] (patch folder name; "YYYY-MM-DD"), so patches can be matched
//           with BigEarthNet's published splits and its lists of snowy or cloudy patches.
// Patch order: patch folder name (then folder path), whatever the rank count or the directory listing order.
//
// Lifecycle (collective over MPI_COMM_WORLD):
//   scan      rank 0 finds the patch folders under every --input and broadcasts the sorted list;
//   inspect   every rank parses the JSON and opens (headers only) every band file of a contiguous slice of the
//             patches; the first problem in the global order stops every rank with its file named (AgreedError)
//             before any output exists;
//   write     each rank reads its slice in rounds of bounded memory and writes them with the collective
//             PatchSetWriter to OUT.importing.h5; rank 0 adds patch_name / acquisition_date and renames it to OUT.
//             A read failure there (a corrupt band) is agreed on per round too, and no file is left behind.
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/parallel/mpi.hpp"
#include "s2crop/sentinel2/bands.hpp"

namespace s2crop::samples::bigearthnet {

// Each patch folder holds <patch name> + this: the label metadata (CORINE labels, acquisition date, product).
inline constexpr const char* kLabelFileSuffix = "_labels_metadata.json";

// The 43 CORINE Land Cover level-3 labels of BigEarthNet v1.0, as written in its JSON files, in the data set's
// original order.
const std::vector<std::string>& clc43_labels();
// The 19 classes of BigEarthNet-19, in their official order.
const std::vector<std::string>& classes19();
// Index into classes19() of a CORINE label; -1 for the 11 labels that belong to no class (Road and rail networks,
// Port areas, Airports, Mineral extraction sites, Dump sites, Construction sites, Green urban areas, Sport and
// leisure facilities, Bare rock, Burnt areas, Intertidal flats); -2 for a name that is no BigEarthNet label.
int class19_of(const std::string& clc_label);

// The label layers of a nomenclature: 19 -> classes19(), 43 -> clc43_labels(). ConfigError for another number.
const std::vector<std::string>& layer_names(int nomenclature);
// One 0/1 flag per layer of `nomenclature` for a patch's labels. Throws InputError naming `source` for a label that
// is not one of the 43 (the problem quotes it).
std::vector<std::uint8_t> label_flags(const std::vector<std::string>& labels, int nomenclature,
                                      const std::string& source);

// MGRS tile of a Sentinel-2 product or granule name: "S2A_MSIL1C_20170613T101031_N0205_R022_T33UUP_..." -> "33UUP".
// Empty when the name holds no "_T<zone><band><square>" field.
std::string tile_of_product(const std::string& product_name);

// One patch's metadata (<patch>_labels_metadata.json).
struct PatchInfo {
  std::string name;  // the patch name: the JSON file name without "_labels_metadata.json"
  std::string dir;   // the folder holding it and the band files <name>_<band>.tif
  std::vector<std::string> labels;
  std::string tile;  // "33UUP"
  sentinel2::Date date;
  std::string json_path() const;
  std::string band_path(const std::string& band) const;
};
// Parses the JSON. Throws InputError naming the file: unreadable or not JSON, no labels array, no tile in
// tile_source, no valid acquisition_date.
PatchInfo read_patch_info(const std::string& name, const std::string& dir);

// The patch folders under `inputs` (each may itself be one), sorted by patch name then path. Throws InputError for a
// missing input, a folder with two label files, or one patch name found in two folders.
struct PatchFolder {
  std::string name, dir;
};
std::vector<PatchFolder> find_patch_folders(const std::vector<std::string>& inputs);

// 0-based month of `date` in a season starting in calendar month `season_start` (1-12).
int season_month_index(const sentinel2::Date& date, int season_start);
// The first day of the season (starting in month `season_start`) that holds `date`.
sentinel2::Date season_start_of(const sentinel2::Date& date, int season_start);

struct ImportSettings {
  std::vector<std::string> inputs;
  std::string output;
  std::vector<std::string> bands = sentinel2::default_crop_bands();  // empty: the same
  int season_start = 9;
  int nomenclature = 19;
  bool overwrite = false;
  std::string config_text;  // effective configuration, stored in the output
};

void run_import(const ImportSettings& settings, const parallel::MpiContext& mpi);

}  // namespace s2crop::samples::bigearthnet
