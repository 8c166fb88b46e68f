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
  std::vector<std::uint8_t> predicted = infer::predict_samples(s.model, held_out, nullptr);
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
  po::options_description opts("Assess options");
  opts.add_options()
      ("map", po::value<std::string>()->default_value(""), "class-map HDF5 file from s2crop classify")
      ("reference", po::value<std::string>()->default_value(""),
       "with --map: folder of reference label rasters <tile>_class.tif (uint8, 255 = unlabelled), or one raster")
      ("reference-values", po::value<std::string>()->default_value("timesen2crop"),
       "what reference raster values are: timesen2crop (class ids 0-15, matched to the map's classes by name) or "
       "map-index (indices into the map's class_names)")
      ("model", po::value<std::string>()->default_value(""), "model file from s2crop train (instead of --map)")
      ("samples", po::value<std::string>()->default_value(""), "with --model: held-out training-set HDF5")
      ("tiles", po::value<std::string>()->default_value(""), "only these tiles, comma-separated (default: all)")
      ("pixel-area", po::value<double>()->default_value(0),
       "area of one pixel in m2 for the hectare estimates; 0: from the map's grid (100 for sample sets)")
      ("output-dir,o", po::value<std::string>()->default_value(""),
       "folder for accuracy.json, accuracy.md and confusion.png");
  po::variables_map vm;
  if (!parse_options("assess", "(--map MAP.h5 --reference LABELS | --model MODEL --samples S.h5) --output-dir DIR",
                     "Accuracy of a classified map against reference label rasters (pixel by pixel), or of a model "
                     "on a held-out sample set: confusion matrix (rows = map, columns = reference), overall "
                     "accuracy, Cohen's kappa, producer's / user's accuracy, F1, macro-F1, and area-adjusted "
                     "accuracy and class areas with 95 % confidence intervals (Olofsson et al. 2014).",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  const std::string map = vm["map"].as<std::string>(), model = vm["model"].as<std::string>();
  const std::string output_dir = vm["output-dir"].as<std::string>();
  const double pixel_area = vm["pixel-area"].as<double>();
  if (map.empty() == model.empty()) throw ConfigError("s2crop assess: give either --map or --model (see --help)");
  if (output_dir.empty()) throw ConfigError("s2crop assess: --output-dir is required");
  if (pixel_area < 0) throw ConfigError("--pixel-area must not be negative");
  const std::vector<std::string> tiles = parse_tile_list(vm["tiles"].as<std::string>());

  // The comparison is light (a 256 x 256 count table per tile): rank 0 does it, the other ranks wait for its verdict.
  parallel::root_first(mpi.world(), [&] {
    pipeline::Assessment a;
    if (!map.empty()) {
      pipeline::MapAssessmentSettings s;
      s.map = map;
      s.reference = vm["reference"].as<std::string>();
      s.tiles = tiles;
      s.reference_values = pipeline::parse_reference_values(vm["reference-values"].as<std::string>());
      s.pixel_area_m2 = pixel_area;
      a = pipeline::assess_map(s);
    } else {
      ModelAssessmentSettings s;
      s.model = model;
      s.samples = vm["samples"].as<std::string>();
      s.tiles = tiles;
      if (pixel_area > 0) s.pixel_area_m2 = pixel_area;
      a = assess_model(s);
    }
    a.provenance.emplace_back("s2crop_version", kVersion);
    pipeline::write_assessment(a, output_dir);
  });
  return 0;
}

}  // namespace s2crop::cli
