#include <algorithm>
#include <filesystem>
#include <map>

#include "options.hpp"
#include "s2crop/assess/compare.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/infer/classify.hpp"
#include "s2crop/nn/model_spec.hpp"
#include "s2crop/pipeline/assess_stage.hpp"
#include "s2crop/pipeline/stage_support.hpp"
#include "s2crop/samples/training_set.hpp"
#include "s2crop/version.hpp"

namespace s2crop::cli {

namespace {

struct ModelAssessmentSettings {
  std::string model, samples;
  std::vector<std::string> compare;  // --compare: models on the same held-out samples
  int bootstrap = 2000;
  std::string bootstrap_unit = "parcel";
  std::uint64_t seed = 1;
  std::string device = "auto";
  std::vector<std::string> tiles;
  double pixel_area_m2 = 100;
};

// The held-out samples of the chosen tiles (all tiles where none are chosen); `tiles_text` names them.
samples::TrainingSet held_out_samples(const ModelAssessmentSettings& s, std::string& tiles_text) {
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
  tiles_text.clear();
  for (size_t t = 0; t < tile_names.size(); ++t)
    if (keep_tile[t]) tiles_text += (tiles_text.empty() ? "" : ", ") + tile_names[t];
  return held_out;
}

// The model's class for every held-out sample, after the checks that make predictions and references comparable.
std::vector<std::uint8_t> predict_held_out(const std::string& model, const samples::TrainingSet& held_out,
                                           const ModelAssessmentSettings& s) {
  if (!std::filesystem::exists(model)) throw InputError(model, "model file does not exist");
  const nn::ModelSpec spec = nn::read_model_spec(model);
  nn::check_season(spec, model, held_out.header.season_start_month, s.samples);
  if (spec.class_names != held_out.header.class_names)
    throw ConfigError(model + " was trained on other classes than " + s.samples + " has: predictions and "
                      "references would not be comparable");
  std::vector<std::uint8_t> predicted = infer::predict_samples(model, held_out, nullptr, s.device);
  if (predicted.size() != held_out.size())
    throw InputError(model, "gave " + std::to_string(predicted.size()) + " predictions for " +
                                std::to_string(held_out.size()) + " samples");
  for (std::uint8_t p : predicted)
    if (p >= held_out.header.class_names.size())
      throw InputError(model, "predicted class " + std::to_string(p) + " is outside the " +
                                  std::to_string(held_out.header.class_names.size()) + " classes of " + s.samples);
  return predicted;
}

// The held-out samples of the chosen tiles, classified by the model; strata = predicted classes.
pipeline::Assessment assess_model(const ModelAssessmentSettings& s) {
  if (s.samples.empty()) throw ConfigError("s2crop assess: --model needs --samples (a held-out training set)");
  std::string tiles;
  const samples::TrainingSet held_out = held_out_samples(s, tiles);
  const std::vector<std::uint8_t> predicted = predict_held_out(s.model, held_out, s);

  pipeline::Assessment a;
  a.class_names = held_out.header.class_names;
  const int C = static_cast<int>(a.class_names.size());
  a.matrix = assess::ConfusionMatrix(C);
  a.mapped_pixels.assign(static_cast<size_t>(C), 0.0);
  for (size_t k = 0; k < held_out.size(); ++k) {
    a.matrix.add(predicted[k], held_out.y[k]);
    a.mapped_pixels[predicted[k]] += 1;
  }
  a.pixel_area_m2 = s.pixel_area_m2;
  a.title = "Accuracy of model " + s.model;
  a.sample_description = "All " + std::to_string(held_out.size()) + " samples of tile(s) " + tiles + " in " +
                         s.samples + " (reference = their labels, map = the model's predictions). Strata = predicted "
                         "classes weighted by predicted counts, so the area-adjusted figures equal the sample ones "
                         "and their intervals reflect the sample size; areas are in sample units.";
  a.provenance = {{"model", s.model}, {"samples", s.samples}, {"tiles", tiles}};
  return a;
}

// --compare: every model on the same held-out samples, with bootstrap intervals (assess/compare.hpp).
void compare_models(const ModelAssessmentSettings& s, const std::string& output_dir) {
  if (s.samples.empty()) throw ConfigError("s2crop assess: --compare needs --samples (a held-out training set)");
  if (s.compare.size() < 2) throw ConfigError("s2crop assess: --compare needs at least 2 models (comma-separated)");
  if (s.bootstrap_unit != "parcel" && s.bootstrap_unit != "tile" && s.bootstrap_unit != "sample")
    throw ConfigError("--bootstrap-unit must be parcel, tile or sample (got " + s.bootstrap_unit + ")");
  for (size_t i = 0; i < s.compare.size(); ++i)
    for (size_t j = i + 1; j < s.compare.size(); ++j)
      if (std::filesystem::exists(s.compare[i]) && std::filesystem::exists(s.compare[j]) &&
          std::filesystem::equivalent(s.compare[i], s.compare[j]))
        throw ConfigError("--compare names " + s.compare[i] + " twice (as " + s.compare[j] +
                          "): a model compared with itself");
  std::string tiles;
  const samples::TrainingSet held_out = held_out_samples(s, tiles);
  // Names: file names, or whole paths where two models share one.
  std::vector<std::string> names;
  for (const auto& m : s.compare) names.push_back(std::filesystem::path(m).stem().string());
  for (size_t i = 0; i < names.size(); ++i)
    if (std::count(names.begin(), names.end(), names[i]) > 1) {
      names.assign(s.compare.begin(), s.compare.end());
      break;
    }
  std::vector<assess::ModelPredictions> predictions;
  for (size_t i = 0; i < s.compare.size(); ++i) {
    const nn::ModelSpec spec = nn::read_model_spec(s.compare[i]);
    predictions.push_back({names[i] + " (" + (spec.kind == "rf" ? "random forest" : "LSTM") + ")",
                           predict_held_out(s.compare[i], held_out, s)});
  }
  // Units: a parcel (samples of one parcel resample together; a sample of unknown parcel is its own), a tile or a
  // sample.
  std::vector<std::int64_t> unit(held_out.size());
  std::map<std::pair<std::uint16_t, std::int64_t>, std::int64_t> parcel_unit;
  for (size_t k = 0; k < held_out.size(); ++k) {
    if (s.bootstrap_unit == "tile") {
      unit[k] = held_out.tile[k];
    } else if (s.bootstrap_unit == "parcel" && held_out.parcel[k] >= 0) {
      auto it = parcel_unit.emplace(std::make_pair(held_out.tile[k], held_out.parcel[k]),
                                    static_cast<std::int64_t>(parcel_unit.size())).first;
      unit[k] = it->second;
    } else {
      unit[k] = -1 - static_cast<std::int64_t>(k);
    }
  }
  assess::Comparison c = assess::compare_models(held_out.header.class_names, held_out.y, unit, predictions,
                                                s.bootstrap, s.seed);
  c.unit_kind = s.bootstrap_unit;
  if (c.units < 10)
    log::warn("assess: only " + std::to_string(c.units) + " " + s.bootstrap_unit + "s to resample: the intervals "
              "are rough (--bootstrap-unit parcel or sample resamples more units)");
  pipeline::ensure_dir(output_dir);
  assess::write_comparison_json(output_dir + "/compare.json", c);
  assess::write_comparison_markdown(output_dir + "/compare.md", c,
                                    "Models compared on " + s.samples + " (tiles " + tiles + ")");
  char line[400];
  for (const auto& m : c.models) {
    std::snprintf(line, sizeof line, "assess: %s: OA %.4f [%.4f, %.4f], kappa %.4f [%.4f, %.4f], macro-F1 %.4f [%.4f, %.4f]",
                  m.name.c_str(), m.overall.value, m.overall.lower, m.overall.upper, m.kappa.value, m.kappa.lower,
                  m.kappa.upper, m.macro_f1.value, m.macro_f1.lower, m.macro_f1.upper);
    log::info(line);
  }
  for (const auto& d : c.pairs) {
    std::snprintf(line, sizeof line, "assess: %s minus %s: OA %+.4f [%+.4f, %+.4f]%s, macro-F1 %+.4f [%+.4f, %+.4f]%s",
                  c.models[d.a].name.c_str(), c.models[d.b].name.c_str(), d.overall.value, d.overall.lower,
                  d.overall.upper, d.overall_clear() ? " (clear)" : " (within noise)", d.macro_f1.value,
                  d.macro_f1.lower, d.macro_f1.upper, d.macro_f1_clear() ? " (clear)" : " (within noise)");
    log::info(line);
  }
  log::info("assess: " + std::to_string(c.samples) + " samples in " + std::to_string(c.units) + " " + s.bootstrap_unit +
            "s, " + std::to_string(c.replicates) + " bootstrap replicates; wrote " + output_dir +
            "/compare.json, compare.md");
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
      .add("samples", by_model.samples, "with --model or --compare: held-out training-set HDF5")
      .add_text("compare", by_model.compare,
                "models (comma-separated) run on the same held-out --samples: one report (compare.json, compare.md) "
                "with 95 % bootstrap intervals for each model and for every pair's differences",
                split_list, join_list)
      .add("bootstrap", by_model.bootstrap, "with --compare: bootstrap replicates", Range<int>{100, 1000000})
      .add("bootstrap-unit", by_model.bootstrap_unit,
           "with --compare: what the bootstrap resamples: parcel (pixels of a parcel together; a sample of unknown "
           "parcel alone), tile or sample");
  add_seed(b, by_model.seed, "with --compare: seed of the bootstrap resamples");
  add_device(b, by_model.device);
  add_tiles(b, by_map.tiles);
  b.add("pixel-area", by_map.pixel_area_m2,
        "area of one pixel in m2 for the hectare estimates; 0: from the map's grid (100 for sample sets)",
        Range<double>{0})
      .add("output-dir,o", output_dir, "folder for accuracy.json, accuracy.md and confusion.png");
  po::variables_map vm;
  if (!parse_options("assess", "(--map MAP.h5 --reference LABELS | --model MODEL --samples S.h5 | --compare M1,M2,... --samples S.h5) --output-dir DIR",
                     "Accuracy of a classified map against reference label rasters (pixel by pixel), or of a model "
                     "on a held-out sample set: confusion matrix (rows = map, columns = reference), overall "
                     "accuracy, Cohen's kappa, producer's / user's accuracy, F1, macro-F1, and area-adjusted "
                     "accuracy and class areas with 95 % confidence intervals (Olofsson et al. 2014). --compare runs several "
                     "models (LSTM, random forest, ...) on the same held-out samples: OA, kappa, macro-F1 and F1 per "
                     "class of each, and every pair's differences, with 95 % bootstrap intervals over parcels.",
                     opts, nullptr, argc, argv, vm, mpi.is_root()))
    return 0;
  const int modes = !by_map.map.empty() + !by_model.model.empty() + !by_model.compare.empty();
  if (modes != 1) throw ConfigError("s2crop assess: give one of --map, --model or --compare (see --help)");
  if (output_dir.empty()) throw ConfigError("s2crop assess: --output-dir is required");
  by_model.tiles = by_map.tiles;
  if (by_map.pixel_area_m2 > 0) by_model.pixel_area_m2 = by_map.pixel_area_m2;  // else per sample: 100 m2

  // The comparison is light (a 256 x 256 count table per tile): rank 0 does it, the other ranks wait for its verdict.
  parallel::root_first(mpi.world(), [&] {
    if (!by_model.compare.empty()) return compare_models(by_model, output_dir);
    pipeline::Assessment a = by_map.map.empty() ? assess_model(by_model) : pipeline::assess_map(by_map);
    a.provenance.emplace_back("s2crop_version", kVersion);
    pipeline::write_assessment(a, output_dir);
  });
  return 0;
}

}  // namespace s2crop::cli
