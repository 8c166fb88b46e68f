// `s2crop segment evaluate` (infer/segment.hpp): a U-Net scored against a patch set's labels, data-parallel.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>

#include "s2crop/assess/segmentation_metrics.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/staged_file.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/infer/segment.hpp"
#include "s2crop/nn/device_torch.hpp"
#include "s2crop/nn/model_file.hpp"
#include "s2crop/nn/model_spec.hpp"
#include "s2crop/nn/segmentation_loss.hpp"
#include "s2crop/nn/segmentation_targets.hpp"
#include "s2crop/samples/patch_set.hpp"
#include "s2crop/train/trainer.hpp"
#include "s2crop/version.hpp"
#include "s2crop/viz/class_map.hpp"
#include "s2crop/viz/quicklook.hpp"

namespace fs = std::filesystem;

namespace s2crop::infer {

namespace {

constexpr const char* kPredictionsFormat = "s2crop segmentation predictions";
constexpr std::int64_t kPredictionsVersion = 1;
constexpr std::int16_t kNoData = -32768;
constexpr std::uint8_t kUnknown = 255;
constexpr int kPngMinSide = 128;  // patches are enlarged to at least this many pixels per panel

// What every rank knows before any patch is read: the checked model, the patch set and the selected patches.
struct Plan {
  nn::ModelSpec spec;
  samples::PatchSetHeader header;
  nn::SegmentationTargets targets;
  std::vector<std::size_t> selected;  // patch indices in the file, ascending
};

Plan make_plan(const SegmentEvaluateSettings& s) {
  Plan p;
  p.spec = nn::read_segmentation_model_spec(s.model);
  p.header = samples::read_patch_set_header(s.patches);
  for (auto& b : p.spec.bands)
    if (std::find(p.header.bands.begin(), p.header.bands.end(), b) == p.header.bands.end())
      throw InputError(s.patches, "lacks band " + b + ", an input of the model " + s.model + " (the patch set has " +
                                      join_items(p.header.bands, ",") + ")");
  try {
    nn::ImageInputMap check(p.spec, p.header.bands, s.patches);
  } catch (const ConfigError& e) {
    throw InputError(s.model, e.what());
  }
  nn::check_season(p.spec, s.model, p.header.season_start_month, s.patches);
  p.targets = nn::SegmentationTargets::of_model(p.spec, p.header, s.patches);
  std::vector<char> wanted(p.header.tiles.size(), s.tiles.empty() ? 1 : 0);
  for (auto& t : s.tiles) {
    auto it = std::find(p.header.tiles.begin(), p.header.tiles.end(), t);
    if (it == p.header.tiles.end())
      throw ConfigError("--tiles: tile " + t + " is not in " + s.patches + " (it has " + join_items(p.header.tiles) +
                        ")");
    wanted[static_cast<size_t>(it - p.header.tiles.begin())] = 1;
  }
  const auto tiles = samples::read_patch_set_tiles(s.patches, p.header);
  for (size_t i = 0; i < tiles.size(); ++i)
    if (wanted[tiles[i]]) p.selected.push_back(i);
  if (p.selected.empty())
    throw InputError(s.patches, s.tiles.empty() ? std::string("holds no patch to evaluate")
                                                : "holds no patch of the tiles " + join_items(s.tiles));
  return p;
}

// `count` positions evenly spaced over n items (the middle of each of `count` equal parts), ascending, unique.
std::vector<std::size_t> sample_positions(std::size_t n, int count) {
  std::vector<std::size_t> out;
  if (count <= 0 || n == 0) return out;
  const std::size_t k = std::min<std::size_t>(n, static_cast<std::size_t>(count));
  for (std::size_t j = 0; j < k; ++j) out.push_back((2 * j + 1) * n / (2 * k));
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// 2-98 % linear stretch of one band's valid values to 0..255.
struct Stretch {
  double lo = 0, hi = 1;
  std::uint8_t operator()(std::int16_t v) const {
    const double t = std::clamp((static_cast<double>(v) - lo) / (hi - lo), 0.0, 1.0);
    return static_cast<std::uint8_t>(std::lround(255.0 * t));
  }
};
// One stretch for the three planes together (the colour balance is kept): their 2 % and 98 % values, widened to at
// least 0.08 reflectance around its middle so that a uniform patch (one field) shows as such, not as stretched noise.
Stretch stretch_of(const std::int16_t* const planes[3], std::size_t n) {
  std::vector<std::int16_t> v;
  for (int c = 0; c < 3; ++c)
    for (std::size_t i = 0; i < n; ++i)
      if (planes[c][i] != kNoData) v.push_back(planes[c][i]);
  Stretch s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.lo = v[static_cast<std::size_t>(std::floor(0.02 * static_cast<double>(v.size() - 1)))];
  s.hi = v[static_cast<std::size_t>(std::floor(0.98 * static_cast<double>(v.size() - 1)))];
  constexpr double kMinSpan = 800;  // reflectance x 10000
  if (s.hi - s.lo < kMinSpan) {
    const double mid = 0.5 * (s.lo + s.hi);
    s.lo = std::max(0.0, mid - kMinSpan / 2);
    s.hi = s.lo + kMinSpan;
  }
  return s;
}

// The PNG of one patch: true-colour image, truth and prediction (see infer/segment.hpp).
//   x [12][B][S][S], clear [12][S][S] of the patch; truth / pred as scored ([S][S] classes or [O][S][S] 0/1 with 255
//   unknown in truth); probs [O][S][S].
void write_patch_png(const std::string& path, const Plan& p, const std::int16_t* x, const std::uint8_t* clear,
                     const std::uint8_t* truth, const std::uint8_t* pred, const float* probs) {
  const auto& h = p.header;
  const int S = h.patch_size;
  const std::size_t px = static_cast<std::size_t>(S) * static_cast<std::size_t>(S), B = h.bands.size();
  // The model's month with the most clear pixels (the first of equals).
  int month = p.spec.unet.months.empty() ? 0 : p.spec.unet.months.front();
  std::size_t best = 0;
  for (int m : p.spec.unet.months) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < px; ++i) n += clear[static_cast<std::size_t>(m) * px + i] != 0;
    if (n > best) best = n, month = m;
  }
  std::size_t rgb_band[3];
  const char* names[3] = {"B04", "B03", "B02"};
  bool true_colour = true;
  for (int c = 0; c < 3; ++c) {
    auto it = std::find(h.bands.begin(), h.bands.end(), names[c]);
    if (it == h.bands.end()) true_colour = false;
    else rgb_band[c] = static_cast<std::size_t>(it - h.bands.begin());
  }
  if (!true_colour) {  // no RGB bands: the model's first band in grey
    const auto first = std::find(h.bands.begin(), h.bands.end(), p.spec.bands.front()) - h.bands.begin();
    rgb_band[0] = rgb_band[1] = rgb_band[2] = static_cast<std::size_t>(first);
  }
  const std::int16_t* planes[3];
  for (int c = 0; c < 3; ++c) planes[c] = x + (static_cast<std::size_t>(month) * B + rgb_band[c]) * px;
  const Stretch stretch = stretch_of(planes, px);
  const std::string image_title = (true_colour ? "image " : h.bands[rgb_band[0]] + " ") + h.months[static_cast<size_t>(month)];
  auto image_colour = [&](std::size_t q, std::uint8_t rgb[3]) {
    if (planes[0][q] == kNoData || planes[1][q] == kNoData || planes[2][q] == kNoData) {
      rgb[0] = rgb[1] = rgb[2] = 64;
      return;
    }
    for (int c = 0; c < 3; ++c) rgb[c] = stretch(planes[c][q]);
  };
  const bool multiclass = p.spec.unet.task == "multiclass";
  const int O = p.targets.outputs();
  viz::Image image(1, 1);
  if (multiclass) {
    const viz::ClassLegend legend = viz::class_legend(p.spec.class_names);
    const std::array<std::uint8_t, 3> unlabelled{200, 200, 200};
    auto class_colour = [&](std::uint8_t v, std::uint8_t rgb[3]) {
      const auto& c = v < legend.colours.size() ? legend.colours[v] : unlabelled;
      std::copy(c.begin(), c.end(), rgb);
    };
    size_t plane = 0;
    image = viz::panel_image(
        S, S, {image_title, "truth", "prediction"}, [&](size_t k) { plane = k; },
        [&](int xx, int yy, std::uint8_t rgb[3]) {
          const std::size_t q = static_cast<std::size_t>(yy) * static_cast<std::size_t>(S) + static_cast<std::size_t>(xx);
          if (plane == 0) image_colour(q, rgb);
          else class_colour(plane == 1 ? truth[q] : pred[q], rgb);
        },
        3, kPngMinSide);
    std::vector<char> present(256, 0);
    for (std::size_t q = 0; q < px; ++q) present[truth[q]] = present[pred[q]] = 1;
    std::vector<viz::LegendEntry> entries;
    for (int k = 0; k < O; ++k)
      if (present[static_cast<size_t>(k)]) entries.push_back({legend.colours[static_cast<size_t>(k)], legend.names[static_cast<size_t>(k)]});
    if (present[kUnknown]) entries.push_back({unlabelled, "unlabelled"});
    image = viz::side_by_side(image, viz::legend_image(entries), 8);
  } else {
    // Rows of three: the image (first row only), then each label's truth and probability (black 0 .. orange 1).
    constexpr std::array<std::uint8_t, 3> kOne{245, 165, 20};
    std::vector<std::string> titles;
    for (int o = 0; o < O; ++o) {
      titles.push_back(o == 0 ? image_title : "");
      titles.push_back(p.targets.names[static_cast<size_t>(o)] + " truth");
      titles.push_back(p.targets.names[static_cast<size_t>(o)] + " p");
    }
    size_t plane = 0;
    image = viz::panel_image(
        S, S, titles, [&](size_t k) { plane = k; },
        [&](int xx, int yy, std::uint8_t rgb[3]) {
          const std::size_t q = static_cast<std::size_t>(yy) * static_cast<std::size_t>(S) + static_cast<std::size_t>(xx);
          const std::size_t o = plane / 3;
          if (plane % 3 == 0) {
            if (o == 0) image_colour(q, rgb);
            else rgb[0] = rgb[1] = rgb[2] = 255;
          } else if (plane % 3 == 1) {
            const std::uint8_t t = truth[o * px + q];
            if (t == kUnknown) rgb[0] = 70, rgb[1] = 90, rgb[2] = 140;
            else for (int c = 0; c < 3; ++c) rgb[c] = t ? kOne[static_cast<size_t>(c)] : 0;
          } else {  // black (0) to the colour of 1
            const float v = std::clamp(probs[o * px + q], 0.f, 1.f);
            for (int c = 0; c < 3; ++c) rgb[c] = static_cast<std::uint8_t>(std::lround(v * kOne[static_cast<size_t>(c)]));
          }
        },
        3, kPngMinSide);
    image = viz::side_by_side(
        image, viz::legend_image({{kOne, "1 (p = 1)"}, {{0, 0, 0}, "0 (p = 0)"}, {{70, 90, 140}, "unknown"},
                                  {{64, 64, 64}, "no image data"}}),
        8);
  }
  viz::write_png(path, image);
}

// The first non-empty error of any rank, known to every rank (collective); empty if none failed.
std::string agreed_error(MPI_Comm comm, const std::string& mine) {
  if (parallel::all_true(comm, mine.empty())) return "";
  const auto all = parallel::gather_strings(comm, mine);
  std::string first;
  for (auto& e : all)
    if (!e.empty()) {
      first = e;
      break;
    }
  return parallel::broadcast_string(comm, first);
}

}  // namespace

void run_segment_evaluate(const SegmentEvaluateSettings& s, const parallel::MpiContext& mpi) {
  if (s.model.empty()) throw ConfigError("segment evaluate: no model given (--model UNET.h5)");
  if (s.patches.empty()) throw ConfigError("segment evaluate: no patch set given (--patches PATCHES.h5)");
  if (s.output.empty()) throw ConfigError("segment evaluate: no output given (--output REPORT.json)");
  if (s.samples < 0) throw ConfigError("--samples must be 0 or more");
  const auto t_start = std::chrono::steady_clock::now();
  const nn::DeviceChoice device = nn::resolve_device(s.device, mpi, "segment evaluate");
  Plan plan;
  parallel::root_first(mpi.world(), [&] { plan = make_plan(s); });
  if (!mpi.is_root()) plan = make_plan(s);
  const auto& h = plan.header;
  const bool multiclass = plan.spec.unet.task == "multiclass";
  const bool patch_scope = h.label_scope == "patch";
  const int O = plan.targets.outputs();
  const std::size_t S = static_cast<std::size_t>(h.patch_size), px = S * S;
  const std::size_t P = multiclass ? 1 : static_cast<std::size_t>(O);  // prediction planes per patch
  const std::size_t n = plan.selected.size();
  const std::size_t first = n * static_cast<std::size_t>(mpi.rank()) / static_cast<std::size_t>(mpi.size());
  const std::size_t last = n * static_cast<std::size_t>(mpi.rank() + 1) / static_cast<std::size_t>(mpi.size());
  const std::size_t mine = last - first;
  const int threads = train::threads_per_rank(s.threads, mpi.node_size());
  train::use_threads(threads);
  const std::vector<std::size_t> samples = s.png_dir.empty() ? std::vector<std::size_t>{} : sample_positions(n, s.samples);
  if (mpi.is_root()) {
    log::info("segment evaluate: " + s.model + " (" + plan.spec.unet.task + " U-Net, " + std::to_string(O) +
              " outputs) on " + std::to_string(n) + " of " + std::to_string(h.patches) + " patches of " + s.patches +
              " (" + std::to_string(S) + " px, label scope " + h.label_scope + "); " + std::to_string(mpi.size()) +
              " rank(s) x " + std::to_string(threads) + " thread(s)");
  }
  parallel::root_first(mpi.world(), [&] {
    for (const std::string& out : {s.output, s.predictions}) {
      if (out.empty()) continue;
      const fs::path parent = fs::path(out).parent_path();
      if (!parent.empty()) fs::create_directories(parent);
    }
    if (!s.png_dir.empty()) fs::create_directories(s.png_dir);
  });

  // ---- this rank's slice: forward each patch alone, count, keep its predictions
  assess::SegmentationCounts pixel_counts(O), patch_counts(O);
  std::vector<std::uint8_t> predictions(mine * P * px, 0);
  std::vector<float> patch_probability(mine * static_cast<std::size_t>(O), std::numeric_limits<float>::quiet_NaN());
  std::vector<std::uint16_t> tile(mine);
  std::vector<std::int32_t> row(mine), col(mine);
  std::vector<std::int64_t> index(mine);
  std::vector<std::string> pngs;  // written by this rank
  std::string error;
  try {
    nn::ModelSpec spec;
    nn::UNet model = nn::load_unet(s.model, spec);
    const nn::InferencePlace place(device, nn::Precision::Fp32);
    place.prepare(*model);
    const nn::ImageInputMap input_map(spec, h.bands, s.patches);
    torch::InferenceMode guard;
    constexpr std::size_t kReadAtOnce = 32;  // patches read per call (consecutive in the file)
    for (std::size_t at = first; at < last;) {
      // A run of patches consecutive in the file (a tile's patches are), at most kReadAtOnce.
      std::size_t end = at + 1;
      while (end < last && end - at < kReadAtOnce && plan.selected[end] == plan.selected[end - 1] + 1) ++end;
      const auto batch = samples::read_patch_set(s.patches, plan.selected[at], plan.selected[end - 1] + 1);
      for (std::size_t k = 0; k < end - at; ++k) {
        const std::size_t j = at + k - first;  // position in this rank's slice
        const std::int16_t* x = batch.x.data() + k * h.x_values();
        const std::uint8_t* labels = batch.labels.data() + k * h.label_values();
        auto logits = model->forward(place.in(nn::patch_inputs(input_map, x, 1, h)));
        auto probs = nn::InferencePlace::out(multiclass ? torch::softmax(logits, 1) : torch::sigmoid(logits));
        auto pred = nn::segmentation_labels(logits, spec.unet.task).to(torch::kCPU).contiguous();
        torch::Tensor target, mask;
        plan.targets.make(labels, 1, target, mask);
        auto truth = plan.targets.truth(target, mask);
        const std::uint8_t* tp = truth.data_ptr<std::uint8_t>();
        const std::uint8_t* pp = pred.data_ptr<std::uint8_t>();
        const float* prob = probs.data_ptr<float>();
        pixel_counts.add_patches(multiclass, pp, tp, 1, px);
        std::copy(pp, pp + P * px, predictions.data() + j * P * px);
        // Patch level: the mean probability of each output over its valid pixels (multiclass: the labelled ones).
        std::vector<std::uint8_t> patch_truth(static_cast<std::size_t>(O), kUnknown);
        std::vector<double> mean(static_cast<std::size_t>(O), std::numeric_limits<double>::quiet_NaN());
        std::vector<std::size_t> class_votes(static_cast<std::size_t>(O), 0);
        for (int o = 0; o < O; ++o) {
          const std::uint8_t* t = multiclass ? tp : tp + static_cast<std::size_t>(o) * px;
          double sum = 0;
          std::size_t valid = 0, positive = 0;
          for (std::size_t q = 0; q < px; ++q) {
            if (t[q] == kUnknown) continue;
            ++valid;
            sum += prob[static_cast<std::size_t>(o) * px + q];
            if (multiclass ? t[q] == o : t[q] != 0) ++positive;
          }
          if (!valid) continue;
          mean[static_cast<std::size_t>(o)] = sum / static_cast<double>(valid);
          patch_probability[j * static_cast<std::size_t>(O) + static_cast<std::size_t>(o)] =
              static_cast<float>(mean[static_cast<std::size_t>(o)]);
          class_votes[static_cast<std::size_t>(o)] = positive;
          patch_truth[static_cast<std::size_t>(o)] = 2 * positive > valid ? 1 : 0;  // the majority (all alike)
        }
        if (patch_scope) {
          if (multiclass) {
            if (!std::isnan(mean[0])) {
              const std::uint8_t t = static_cast<std::uint8_t>(
                  std::max_element(class_votes.begin(), class_votes.end()) - class_votes.begin());
              const std::uint8_t pc =
                  static_cast<std::uint8_t>(std::max_element(mean.begin(), mean.end()) - mean.begin());
              patch_counts.add_multiclass(&pc, &t, 1);
            }
          } else {
            std::vector<std::uint8_t> patch_pred(static_cast<std::size_t>(O), 0);
            for (int o = 0; o < O; ++o) patch_pred[static_cast<std::size_t>(o)] = mean[static_cast<std::size_t>(o)] > 0.5;
            patch_counts.add_multilabel(patch_pred.data(), patch_truth.data(), 1);
          }
        }
        tile[j] = batch.tile[k];
        row[j] = batch.row[k];
        col[j] = batch.col[k];
        index[j] = static_cast<std::int64_t>(plan.selected[at + k]);
        if (std::binary_search(samples.begin(), samples.end(), at + k)) {
          char name[64];
          std::snprintf(name, sizeof name, "_%06lld.png", static_cast<long long>(index[j]));
          const std::string path = s.png_dir + "/" + h.tiles[tile[j]] + name;
          write_patch_png(path, plan, x, batch.clear.data() + k * h.clear_values(), tp, pp, prob);
          pngs.push_back(path);
        }
      }
      at = end;
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (auto agreed = agreed_error(mpi.world(), error); !agreed.empty()) throw AgreedError(agreed);
  MPI_Allreduce(MPI_IN_PLACE, pixel_counts.counts().data(), static_cast<int>(pixel_counts.counts().size()),
                MPI_DOUBLE, MPI_SUM, mpi.world());
  MPI_Allreduce(MPI_IN_PLACE, patch_counts.counts().data(), static_cast<int>(patch_counts.counts().size()),
                MPI_DOUBLE, MPI_SUM, mpi.world());

  // ---- predictions file: every rank writes its contiguous slice, collectively
  if (!s.predictions.empty()) {
    // One name on every rank (a collective file); rank 0 alone moves it into place or removes it.
    StagedFile staged(s.predictions, ".partial.h5");
    if (!mpi.is_root()) staged.release();
    try {
      h5::File f = h5::File::create(staged.path(), mpi.world());
      f.set_attr("format", std::string(kPredictionsFormat));
      f.set_attr("format_version", kPredictionsVersion);
      f.set_attr("s2crop_version", std::string(kVersion));
      f.set_attr("created", parallel::broadcast_string(mpi.world(), log::utc_timestamp()));
      f.set_attr("config", s.config_text);
      f.set_attr("model", s.model);
      f.set_attr("patches", s.patches);
      f.set_attr("task", plan.spec.unet.task);
      f.set_attr("output_names", plan.targets.names);
      f.set_attr("tiles", h.tiles);
      f.set_attr("label_scope", h.label_scope);
      const hsize_t N = n, hP = P, hS = S, hO = static_cast<hsize_t>(O), off = first, cnt = mine;
      auto pred_ds = f.create_dataset<std::uint8_t>("prediction", {N, hP, hS, hS}, {1, hP, hS, hS}, 1, kUnknown);
      pred_ds.set_attr("long_name", std::string(multiclass ? "predicted class index (into output_names)"
                                                           : "1 where the label's probability >= 0.5, else 0"));
      pred_ds.write<std::uint8_t>({off, 0, 0, 0}, {cnt, hP, hS, hS}, mine ? predictions.data() : nullptr, true);
      auto prob_ds = f.create_dataset<float>("patch_probability", {N, hO}, {std::min<hsize_t>(N, 1024), hO}, 1,
                                             std::numeric_limits<float>::quiet_NaN());
      prob_ds.set_attr("long_name", std::string("mean probability of each output over its valid pixels (NaN: none)"));
      prob_ds.write<float>({off, 0}, {cnt, hO}, mine ? patch_probability.data() : nullptr, true);
      auto column = [&](const std::string& name, const auto& values, auto fill) {
        using T = std::decay_t<decltype(fill)>;
        auto ds = f.create_dataset<T>(name, {N}, {std::min<hsize_t>(N, 4096)}, 1, fill);
        ds.template write<T>({off}, {cnt}, mine ? values.data() : nullptr, true);
      };
      column("patch", index, std::int64_t{-1});
      column("tile", tile, std::uint16_t{0});
      column("row", row, std::int32_t{-1});
      column("col", col, std::int32_t{-1});
      pred_ds = {};
      prob_ds = {};
      f.close();
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (auto agreed = agreed_error(mpi.world(), error); !agreed.empty()) {
      staged.discard();  // rank 0's; the others' was released
      throw AgreedError(agreed);
    }
    parallel::root_first(mpi.world(), [&] { staged.commit(); });
  }

  // ---- the report (rank 0)
  const auto png_lists = parallel::gather_strings(mpi.world(), join_items(pngs, "\n"));
  parallel::root_first(mpi.world(), [&] {
    std::vector<std::string> all_pngs;
    for (auto& list : png_lists)
      for (auto& p : split_fields(list, '\n'))
        if (!p.empty()) all_pngs.push_back(fs::path(p).filename().string());
    std::ostringstream j;
    auto strings = [](const std::vector<std::string>& v) {
      std::string o = "[";
      for (size_t i = 0; i < v.size(); ++i) o += (i ? ", " : "") + json_string(v[i]);
      return o + "]";
    };
    double pixels = 0;
    for (int o = 0; o < (multiclass ? 1 : O); ++o) {
      const auto c = pixel_counts.label(o);
      pixels += c.tp + c.fp + c.fn + c.tn;
    }
    j << "{\n  \"format\": \"s2crop segmentation evaluation\",\n  \"s2crop_version\": " << json_string(kVersion)
      << ",\n  \"model\": " << json_string(s.model) << ",\n  \"patches\": " << json_string(s.patches)
      << ",\n  \"tiles\": " << strings(s.tiles.empty() ? h.tiles : s.tiles) << ",\n  \"task\": "
      << json_string(plan.spec.unet.task) << ",\n  \"label_scope\": " << json_string(h.label_scope)
      << ",\n  \"patch_size\": " << S << ",\n  \"patches_evaluated\": " << n << ",\n  \"outputs\": "
      << strings(plan.targets.names) << ",\n  \"scored_pixels\": " << static_cast<long long>(pixels)
      << ",\n  \"threshold\": 0.5,\n  \"pixel\": " << assess::segmentation_json(plan.targets.names, pixel_counts, multiclass);
    if (patch_scope)
      j << ",\n  \"patch_level\": {\n    \"rule\": "
        << json_string(multiclass ? "class of the highest mean probability over the patch's labelled pixels"
                                  : "a label is predicted for a patch when its mean probability over the patch's "
                                    "valid pixels is > 0.5")
        << ",\n    \"metrics\": " << assess::segmentation_json(plan.targets.names, patch_counts, multiclass, 2) << "\n  }";
    j << ",\n  \"png\": " << strings(all_pngs) << "\n}\n";
    write_text_atomically(s.output, j.str());
    std::istringstream table(assess::segmentation_table(plan.targets.names, pixel_counts, multiclass));
    log::info("pixel level, " + std::to_string(n) + " patches, " + std::to_string(static_cast<long long>(pixels)) +
              (multiclass ? " scored pixels:" : " scored (pixel, label) pairs:"));
    for (std::string l; std::getline(table, l);) log::info("  " + l);
    if (patch_scope) {
      std::istringstream pt(assess::segmentation_table(plan.targets.names, patch_counts, multiclass, "patches"));
      log::info("patch level (image-level labels; mean probability over the valid pixels > 0.5):");
      for (std::string l; std::getline(pt, l);) log::info("  " + l);
    }
    char line[200];
    std::snprintf(line, sizeof line, "wrote %s%s%s in %.1f s", s.output.c_str(),
                  s.predictions.empty() ? "" : (", " + s.predictions).c_str(),
                  all_pngs.empty() ? "" : (", " + std::to_string(all_pngs.size()) + " PNGs in " + s.png_dir).c_str(),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count());
    log::info(line);
  });
}

}  // namespace s2crop::infer
