#include <algorithm>
#include <filesystem>

#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/infer/classify.hpp"
#include "s2crop/nn/model_spec.hpp"
#include "s2crop/pipeline/assess_stage.hpp"
#include "s2crop/samples/training_set.hpp"
#include "s2crop/version.hpp"

namespace s2crop::cli {

namespace {

struct ModelAssessmentSettings {
  std::string model, samples;
  std::string device = "auto";
  std::vector<std::string> tiles;
  double pixel_area_m2 = 100;
};

// The held-out samples of the chosen tiles, classified by the model; strata = predicted classes.
pipeline::Assessment assess_model(const ModelAssessmentSettings& s) {
  if (s.samples.empty()) throw ConfigError("s2crop assess: --model needs --samples (a held-out training set)");
  if (!std::filesystem::exists(s.model)) throw InputError(s.model, "model file does not exist");
  if (!std::filesystem::exists(s.samples)) throw InputError(s.samples, "sample file does not exist");
  samples::TrainingSet all = samples::read_training_set(s.samples);
  const auto& tile_names = all.header.tiles;
  std::vector<bool> keep_tile(tile_names.size(), s.tiles.empty());
  for (const std::string& t : s.tiles) {
    auto it = std::find(tile_names.begin(), tile_names.end(), t);
    if (it == tile_names.end())
      throw InputError(s.samples, "has no samples of tile " + t + " (its tiles: " + [&] {
        std::string l;
        for (auto& n : tile_names) l += (l.empty() ? "" : ", ") + n;
        return l;
      }() + ")");
    keep_tile[static_cast<size_t>(it - tile_names.begin())] = true;
  }
  samples::TrainingSet held_out;
  held_out.header = all.header;
  const size_t V = all.values_per_sample();
  for (size_t k = 0; k < all.size(); ++k)
    if (keep_tile[all.tile[k]])
      held_out.add(all.x.data() + k * V, all.y[k], all.tile[k], all.parcel[k], all.row[k], all.col[k]);
  if (held_out.size() == 0) throw InputError(s.samples, "has no samples of the chosen tiles");
  const nn::ModelSpec spec = nn::read_model_spec(s.model);
  nn::check_season(spec, s.model, held_out.header.season_start_month, s.samples);
  if (spec.class_names != held_out.header.class_names)
    throw ConfigError(s.model + " was trained on other classes than " + s.samples + " has: predictions and "
                      "references would not be comparable");
  std::vector<std::uint8_t> predicted = infer::predict_samples(s.model, held_out, nullptr, s.device);
  if (predicted.size() != held_out.size())
    throw InputError(s.model, "gave " + std::to_string(predicted.size()) + " predictions for " +
                                  std::to_string(held_out.size()) + " samples");

  pipeline::Assessment a;
  a.class_names = held_out.header.class_names;
  const int C = static_cast<int>(a.class_names.size());
  a.matrix = assess::ConfusionMatrix(C);
  a.mapped_pixels.assign(static_cast<size_t>(C), 0.0);
  for (size_t k = 0; k < held_out.size(); ++k) {
    if (predicted[k] >= C)
      throw InputError(s.model, "predicted class " + std::to_string(predicted[k]) + " is outside the " +
                                    std::to_string(C) + " classes of " + s.samples);
    a.matrix.add(predicted[k], held_out.y[k]);
    a.mapped_pixels[predicted[k]] += 1;
  }
  a.pixel_area_m2 = s.pixel_area_m2;
  std::string tiles;
  for (size_t t = 0; t < tile_names.size(); ++t)
    if (keep_tile[t]) tiles += (tiles.empty() ? "" : ", ") + tile_names[t];
  a.title = "Accuracy of model " + s.model;
  a.sample_description = "All " + std::to_string(held_out.size()) + " samples of tile(s) " + tiles + " in " +
                         s.samples + " (reference = their labels, map = the model's predictions). Strata = predicted "
                         "classes weighted by predicted counts, so the area-adjusted figures equal the sample ones "
                         "and their intervals reflect the sample size; areas are in sample units.";
  a.provenance = {{"model", s.model}, {"samples", s.samples}, {"tiles", tiles}};
  return a;
}

}  // namespace

int run_assess(int argc, char** argv, const parallel::MpiContext& mpi) {
  pipeline::MapAssessmentSettings by_map;
  ModelAssessmentSettings by_model;
  std::string output_dir;
  po::options_description opts("Assess options");
  OptionBinder b(opts);
  b.add("map", by_map.map, "class-map HDF5 file from s2crop classify")
      .add("reference", by_map.reference,
           "with --map: folder of reference label rasters <tile>_class.tif (uint8, 255 = unlabelled), or one raster")
      .add_text("reference-values", by_map.reference_values,
                "what reference raster values are: timesen2crop (class ids 0-15, matched to the map's classes by "
                "name) or map-index (indices into the map's class_names)",
                pipeline::parse_reference_values, [](pipeline::ReferenceValues v) {
                  return std::string(v == pipeline::ReferenceValues::MapIndex ? "map-index" : "timesen2crop");
                })
      .add("model", by_model.model, "model file from s2crop train (instead of --map)")
      .add("samples", by_model.samples, "with --model: held-out training-set HDF5");
  add_device(b, by_model.device);
  add_tiles(b, by_map.tiles);
  b.add("pixel-area", by_map.pixel_area_m2,
        "area of one pixel in m2 for the hectare estimates; 0: from the map's grid (100 for sample sets)",
        Range<double>{0})
      .add("output-dir,o", output_dir, "folder for accuracy.json, accuracy.md and confusion.png");
  po::variables_map vm;
  if (!parse_options("assess", "(--map MAP.h5 --reference LABELS | --model MODEL --samples S.h5) --output-dir DIR",
                     "Accuracy of a classified map against reference label rasters (pixel by pixel), or of a model "
                     "on a held-out sample set: confusion matrix (rows = map, columns = reference), overall "
                     "accuracy, Cohen's kappa, producer's / user's accuracy, F1, macro-F1, and area-adjusted "
                     "accuracy and class areas with 95 % confidence intervals (Olofsson et al. 2014).",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  if (by_map.map.empty() == by_model.model.empty())
    throw ConfigError("s2crop assess: give either --map or --model (see --help)");
  if (output_dir.empty()) throw ConfigError("s2crop assess: --output-dir is required");
  by_model.tiles = by_map.tiles;
  if (by_map.pixel_area_m2 > 0) by_model.pixel_area_m2 = by_map.pixel_area_m2;  // else per sample: 100 m2

  // The comparison is light (a 256 x 256 count table per tile): rank 0 does it, the other ranks wait for its verdict.
  parallel::root_first(mpi.world(), [&] {
    pipeline::Assessment a = by_map.map.empty() ? assess_model(by_model) : pipeline::assess_map(by_map);
    a.provenance.emplace_back("s2crop_version", kVersion);
    pipeline::write_assessment(a, output_dir);
  });
  return 0;
}

}  // namespace s2crop::cli
