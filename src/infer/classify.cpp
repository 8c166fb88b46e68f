#include "s2crop/common/text.hpp"
#include "s2crop/infer/classify.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <memory>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/geo/class_raster.hpp"
#include "s2crop/geo/grid.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/infer/tile_inference.hpp"
#include "s2crop/nn/device_torch.hpp"
#include "s2crop/nn/model_file.hpp"
#include "s2crop/nn/random_forest.hpp"
#include "s2crop/pipeline/composite_file.hpp"
#include "s2crop/pipeline/stage_support.hpp"
#include "s2crop/viz/class_map.hpp"

namespace s2crop::infer {

namespace {

constexpr const char* kMapFormat = "s2crop class map";
constexpr std::int64_t kMapFormatVersion = 1;
constexpr std::int16_t kNoData = -32768;


// The members' probabilities (`probabilities(member)`), averaged: an ensemble's prediction; a single model's as it is.
template <class Probabilities>
torch::Tensor mean_probabilities(std::vector<nn::LstmClassifier>& members, Probabilities probabilities) {
  torch::Tensor sum;
  for (auto& m : members) sum = sum.defined() ? sum.add_(probabilities(m)) : probabilities(m);
  if (members.size() > 1) sum.div_(static_cast<double>(members.size()));
  return sum;
}

// The classifier over one block: class [px], confidence [px], then optionally probabilities [class][px].
class ClassifierBlocks : public BlockPredictor {
 public:
  ClassifierBlocks(const ClassifySettings& s, const nn::DeviceChoice& device)
      : s_(s), place_(device, nn::parse_precision(s.precision)) {
    spec_ = nn::read_model_spec(s.model);
    if (spec_.kind == "rf")
      forest_ = nn::load_forest(s.model, spec_);
    else
      members_ = nn::load_ensemble(s.model, spec_);
    nc_ = spec_.class_names.size();
    batch_ = static_cast<size_t>(s.batch_size);
    if (device.cuda && spec_.kind != "rf") {
      for (auto& m : members_) place_.prepare(*m);
      batch_ = std::max(batch_, place_.batch_that_fits(model_bytes_per_pixel()));
    }  // on the CPU the weights stay float32: infer() casts them for its GEMMs
    check_reduced_ = !device.cuda && spec_.kind != "rf" && place_.dtype != torch::kFloat32;
  }
  BlockInput read(const pipeline::CompositeFile& composites, const pipeline::CompositeTile& tile,
                  const geo::Window& w) override {
    BlockInput in;
    in.reflectance = composites.read_reflectance(tile, w);
    return in;
  }
  void predict(const pipeline::CompositeFile&, const pipeline::CompositeTile& tile, const geo::Window& w,
               BlockInput input, std::uint8_t* out) override {
    nn::FeatureMap features(spec_, tile.bands, s_.composites + " tile " + tile.name);
    const size_t nb = tile.bands.size(), n = static_cast<size_t>(w.pixels());
    const std::vector<std::int16_t>& block = input.reflectance;
    std::uint8_t* cls = out;
    std::uint8_t* conf = cls + n;
    std::uint8_t* prob = conf + n;
    std::fill(cls, cls + n, kNoClass);
    std::fill(conf, conf + n * (1 + (s_.probabilities ? nc_ : 0)), std::uint8_t{0});
    // Pixels with data, as series [pixel][month][band] (the composite stores [month][band][pixel]).
    std::vector<std::uint32_t> valid;
    valid.reserve(n);
    for (size_t p = 0; p < n; ++p) {
      bool ok = true;
      for (size_t k = 0; k < 12 * nb && ok; k += nb) ok = block[k * n + p] != kNoData;
      if (ok) valid.push_back(static_cast<std::uint32_t>(p));
    }
    const size_t batch = std::min(batch_, std::max<size_t>(valid.size(), 1));
    std::vector<std::int16_t> series(batch * 12 * nb);
    auto features_in = torch::empty({static_cast<int64_t>(batch), 12, features.n_features()});
    for (size_t at = 0; at < valid.size(); at += batch) {
      const size_t m = std::min(batch, valid.size() - at);
      for (size_t i = 0; i < m; ++i) {
        const size_t p = valid[at + i];
        for (size_t k = 0; k < 12 * nb; ++k) series[i * 12 * nb + k] = block[k * n + p];
      }
      features.apply(series.data(), m, features_in.data_ptr<float>());
      torch::InferenceMode guard;
      auto x = features_in.narrow(0, 0, static_cast<int64_t>(m));
      torch::Tensor probs;
      if (spec_.kind == "rf") {
        probs = torch::empty({static_cast<int64_t>(m), static_cast<int64_t>(nc_)});
        forest_.predict(x.data_ptr<float>(), m, probs.data_ptr<float>());
      } else {
        // On the CPU the model stays float32 and infer() runs its GEMMs in the precision asked for; on a GPU model
        // and input are cast (place_.prepare / place_.in) and cuDNN runs the recurrence. Probabilities come back as
        // float32. An ensemble's members' probabilities are averaged.
        probs = mean_probabilities(members_, [&](nn::LstmClassifier& m) {
          return nn::InferencePlace::out(
              torch::exp(place_.device.is_cpu() ? m->infer(x, place_.dtype) : m->infer(place_.in(x))));
        });
      }
      auto top = probs.max(1);
      auto top_p = std::get<0>(top).contiguous();
      auto top_k = std::get<1>(top).contiguous();
      const float* pp = top_p.data_ptr<float>();
      const int64_t* kk = top_k.data_ptr<int64_t>();
      if (check_reduced_) check_against_fp32(x, kk);
      const float* all = probs.data_ptr<float>();
      for (size_t i = 0; i < m; ++i) {
        const size_t p = valid[at + i];
        cls[p] = static_cast<std::uint8_t>(kk[i]);
        conf[p] = static_cast<std::uint8_t>(std::lround(pp[i] * 100.f));
        if (s_.probabilities)
          for (size_t c = 0; c < nc_; ++c)
            prob[c * n + p] = static_cast<std::uint8_t>(std::lround(all[i * nc_ + c] * 100.f));
      }
    }
  }

  void finish(const parallel::MpiContext& mpi) override {
    if (!check_reduced_) return;
    const std::int64_t checked = parallel::sum(mpi.world(), checked_), agreed = parallel::sum(mpi.world(), agreed_);
    if (!mpi.is_root() || checked == 0) return;
    const double share = static_cast<double>(agreed) / static_cast<double>(checked);
    char line[320];
    std::snprintf(line, sizeof line,
                  "classify: --precision %s agrees with fp32 on %.3f %% of %lld pixels recomputed in fp32 (every "
                  "%lldth pixel of every batch)",
                  s_.precision.c_str(), 100.0 * share, static_cast<long long>(checked),
                  static_cast<long long>(kCheckStride));
    if (share >= kAgreementExpected) {
      log::info(line);
    } else {
      // Reduced precision that changes more classes than measured is a model near its decision boundaries (or a
      // kernel problem): the map is written, but the user must know before trusting it.
      char advice[120];
      std::snprintf(advice, sizeof advice, ": below the %.1f %% s2crop measured; use --precision fp32 for this model",
                    100.0 * kAgreementExpected);
      log::warn(std::string(line) + advice);
    }
  }

 private:
  // --precision bf16 on the CPU: kPrecisionCheckStride (tile_inference.hpp).
  static constexpr std::int64_t kCheckStride = kPrecisionCheckStride;
  static constexpr double kAgreementExpected = 0.999;
  void check_against_fp32(const torch::Tensor& x, const int64_t* classes) {
    const auto sample = x.slice(0, 0, x.size(0), kCheckStride).contiguous();
    const auto reference = mean_probabilities(members_, [&](nn::LstmClassifier& m) {
                             return torch::exp(m->infer(sample, torch::kFloat32));
                           }).argmax(1).contiguous();
    const int64_t* r = reference.data_ptr<int64_t>();
    for (int64_t j = 0; j < reference.size(0); ++j) agreed_ += r[j] == classes[j * kCheckStride] ? 1 : 0;
    checked_ += reference.size(0);
  }
  // Working memory of one pixel in the LSTM on a GPU: every step's input projection and hidden sequence per layer,
  // with room for cuDNN's workspace.
  std::size_t model_bytes_per_pixel() const {
    return static_cast<std::size_t>(12 * (spec_.n_features() + 6 * spec_.hidden) * spec_.layers) * 4 * 2;
  }
  const ClassifySettings& s_;
  nn::InferencePlace place_;
  nn::ModelSpec spec_;
  std::vector<nn::LstmClassifier> members_;  // kind lstm: one, or an ensemble's
  nn::RandomForest forest_;  // kind rf
  size_t nc_ = 0, batch_ = 0;
  bool check_reduced_ = false;
  std::int64_t checked_ = 0, agreed_ = 0;
};

}  // namespace

void run_classify(const ClassifySettings& s, const parallel::MpiContext& mpi) {
  if (s.composites.empty()) throw ConfigError("classify: no composite file given (--composites FILE.h5)");
  if (s.model.empty()) throw ConfigError("classify: no model given (--model MODEL.h5)");
  if (s.output.empty()) throw ConfigError("classify: no output given (--output MAP.h5)");
  if (s.batch_size < 1) throw ConfigError("--batch-size must be positive");
  const nn::Precision precision = nn::parse_precision(s.precision);
  const nn::DeviceChoice device = nn::resolve_device(s.device, mpi, "classify", precision);
  nn::ModelSpec spec;
  parallel::root_first(mpi.world(), [&] {
    spec = nn::read_model_spec(s.model);
    if (spec.kind != "lstm" && spec.kind != "rf")
      throw InputError(s.model, "model kind '" + spec.kind + "' is " +
                                    (spec.is_unet() ? "a U-Net: use 's2crop segment predict'"
                                                    : "an NDVI model, not a crop-type classifier: use 's2crop ndvi predict'"));
    if (spec.kind == "rf" && (device.cuda || precision != nn::Precision::Fp32))
      throw ConfigError(s.model + " is a random forest: it runs on CPUs in its own arithmetic (no --device cuda, no "
                        "--precision " + s.precision + ")");
  });
  if (!mpi.is_root()) spec = nn::read_model_spec(s.model);
  const size_t nc = spec.class_names.size();
  const viz::ClassLegend legend = viz::class_legend(spec.class_names);
  const auto& colours = legend.colours;

  TileInferenceJob job;
  job.stage = "classify";
  job.format = kMapFormat;
  job.format_version = kMapFormatVersion;
  job.part_magic = {'S', '2', 'C', 'M', 'A', 'P', 'P', '1'};
  job.composites = s.composites;
  job.model = s.model;
  job.output = s.output;
  job.tiles = s.tiles;
  job.block_size = s.block_size;
  job.threads = s.threads;
  job.overwrite = s.overwrite;
  job.deflate = s.deflate;
  job.config_text = s.config_text;
  // fp32 keeps the fingerprint of the versions before --precision: their maps are the same.
  job.options_fingerprint = "-n" + std::to_string(s.batch_size) + "-p" + std::to_string(s.probabilities ? 1 : 0) +
                            (precision == nn::Precision::Fp32 ? "" : "-" + s.precision);
  job.model_summary = (spec.kind == "rf" ? std::string("random forest, ")
                                         : spec.ensemble > 1 ? "ensemble of " + std::to_string(spec.ensemble) + " LSTMs, "
                                                             : std::string()) +
                      std::to_string(nc) + " classes, " + join_items(spec.bands, ",") + (spec.ndvi ? ",NDVI" : "");
  OutputLayer cls{"class"};
  cls.fill = kNoClass;
  cls.number_attrs = {{"nodata", static_cast<double>(kNoClass)}};
  cls.text_attrs = {{"long_name", "crop class, index into the file's class_names"}};
  OutputLayer conf{"confidence"};
  conf.number_attrs = {{"scale_factor", 0.01}};
  conf.text_attrs = {{"long_name", "probability of the mapped class x 100"}};
  job.layers = {cls, conf};
  if (s.probabilities) {
    OutputLayer prob{"probability"};
    prob.depth = static_cast<std::int64_t>(nc);
    prob.number_attrs = {{"scale_factor", 0.01}};
    prob.depth_scale = "class_name";
    prob.depth_dimension = "class";
    prob.depth_labels = spec.class_names;
    job.layers.push_back(prob);
  }
  job.check_tile = [&](const pipeline::CompositeTile& t) {
    nn::FeatureMap check(spec, t.bands, s.composites + " tile " + t.name);
    nn::check_season(spec, s.model, t.season_start_month, s.composites + " tile " + t.name);
  };
  job.make_predictor = [&] { return std::make_unique<ClassifierBlocks>(s, device); };
  job.file_attrs = [&](h5::File& file) {
    file.set_attr("class_names", spec.class_names);
    std::vector<double> flat;
    for (auto& c : colours) flat.insert(flat.end(), c.begin(), c.end());
    file.set_attr("class_colours", flat);
  };
  job.export_dirs = {s.cog_dir, s.quicklook_dir};
  if (!s.cog_dir.empty() || !s.quicklook_dir.empty()) {
    // A COG with colour table and class names, a quicklook with legend.
    job.export_tile = [&](const pipeline::CompositeTile& t, const LayerReader& read) {
      const int W = t.grid.width, H = t.grid.height;
      std::vector<std::uint8_t> classes(static_cast<size_t>(W) * static_cast<size_t>(H), kNoClass);
      read(0, 0, geo::Window{0, 0, W, H}, classes.data());
      if (!s.cog_dir.empty())
        geo::write_class_cog(s.cog_dir + "/" + t.name + "_class.tif", t.grid, classes.data(), spec.class_names,
                             colours, kNoClass);
      if (!s.quicklook_dir.empty())
        viz::write_class_quicklook(s.quicklook_dir + "/" + t.name + "_class.png", classes.data(), W, H,
                                   legend, kNoClass);
    };
  }
  run_tile_inference(job, mpi);
}

std::vector<std::uint8_t> predict_samples(const std::string& model_path, const samples::TrainingSet& set,
                                          std::vector<float>* confidence, const std::string& device_option) {
  nn::ModelSpec spec = nn::read_model_spec(model_path);
  if (spec.kind == "rf") {
    const nn::RandomForest forest = nn::load_forest(model_path, spec);
    nn::FeatureMap features(spec, set.header.bands, "the sample set");
    const size_t n = set.size(), C = spec.class_names.size();
    const size_t values = static_cast<size_t>(features.n_features()) * 12;
    std::vector<float> x(n * values), prob(n * C);
    features.apply(set.x.data(), n, x.data());
    forest.predict(x.data(), n, prob.data());
    std::vector<std::uint8_t> out(n);
    if (confidence) confidence->assign(n, 0.f);
    for (size_t i = 0; i < n; ++i) {
      const float* p = prob.data() + i * C;
      const size_t k = static_cast<size_t>(std::max_element(p, p + C) - p);
      out[i] = static_cast<std::uint8_t>(k);
      if (confidence) (*confidence)[i] = p[k];
    }
    return out;
  }
  auto members = nn::load_ensemble(model_path, spec);
  const nn::DeviceChoice device = nn::choose_device(device_option, nn::torch_has_cuda(), nn::torch_gpus(), 0, 1);
  const nn::InferencePlace place(device, nn::Precision::Fp32);
  for (auto& model : members) place.prepare(*model);
  nn::FeatureMap features(spec, set.header.bands, "the sample set");
  const size_t n = set.size(), per = set.values_per_sample(), batch = 8192;
  std::vector<std::uint8_t> out(n);
  if (confidence) confidence->assign(n, 0.f);
  auto input = torch::empty({static_cast<int64_t>(batch), 12, features.n_features()});
  torch::InferenceMode guard;
  for (size_t at = 0; at < n; at += batch) {
    const size_t m = std::min(batch, n - at);
    features.apply(set.x.data() + at * per, m, input.data_ptr<float>());
    auto x = place.in(input.narrow(0, 0, static_cast<int64_t>(m)));
    auto probs = mean_probabilities(members, [&](nn::LstmClassifier& model) { return torch::exp(model->infer(x)); });
    auto top = probs.max(1);
    auto p = nn::InferencePlace::out(std::get<0>(top));
    auto k = std::get<1>(top).to(torch::kCPU).contiguous();
    for (size_t i = 0; i < m; ++i) {
      out[at + i] = static_cast<std::uint8_t>(k.data_ptr<int64_t>()[i]);
      if (confidence) (*confidence)[at + i] = p.data_ptr<float>()[i];
    }
  }
  return out;
}


}  // namespace s2crop::infer
