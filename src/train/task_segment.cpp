#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "augment.hpp"
#include "patches.hpp"
#include "task.hpp"
#include "s2crop/assess/segmentation_metrics.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/nn/model_file.hpp"
#include "s2crop/nn/segmentation_loss.hpp"
#include "s2crop/nn/segmentation_targets.hpp"
#include "s2crop/nn/unet.hpp"

namespace s2crop::train {
namespace {

// ---- U-Net segmentation (`s2crop segment train`) on a patch set
// Targets: multiclass = the crop_type layer (255 ignored); multilabel = the chosen layers, crop_type expanded into
// one 0/1 label per class (valid where the pixel is labelled; field_boundary and cropland are valid everywhere).
// Augmentation (training only) is a function of (seed, patch, step), so every rank count sees the same batches:
// a flip, a 90-degree rotation, and a brightness factor per band applied to all its months (no operation mixes
// bands: the physics of each band is kept).
struct SegmentTask : Task {
  const TrainSettings& s;
  nn::ModelSpec spec_;
  nn::SegmentationLossOptions loss_options;
  samples::PatchSetHeader header;
  std::vector<double> weights;          // all patches: share of the loss normaliser
  std::vector<char> labelled;           // all patches: labels used (label_fraction)
  torch::Tensor input;                  // shard [n][C][S][S], normalised
  torch::Tensor target, mask;           // shard: multiclass target int64 [n][S][S]; multilabel float [n][L][S][S]
  nn::UNet model{nullptr};
  nn::PretrainedParts pretrained;       // what --init loaded
  size_t shard_begin = 0;
  nn::SegmentationTargets targets;      // outputs <- label layers

  static std::vector<std::string> target_names(const TrainSettings& s, const samples::PatchSetHeader& h) {
    return nn::SegmentationTargets::choose(s.segment.head, s.segment.targets, h).names;
  }
  void make_targets(const std::uint8_t* labels, size_t n, torch::Tensor& t, torch::Tensor& m) const {
    targets.make(labels, n, t, m);
  }

  SegmentTask(const TrainSettings& settings, samples::PatchSetHeader header_, const samples::PatchSet& all_labels,
              nn::ModelSpec spec, const std::vector<std::uint32_t>& train, size_t shard_begin_, size_t shard_end,
              const parallel::MpiContext& mpi)
      : s(settings), spec_(std::move(spec)), header(std::move(header_)), shard_begin(shard_begin_) {
    targets = nn::SegmentationTargets::choose(s.segment.head, s.segment.targets, header);
    loss_options.task = spec_.unet.task;
    loss_options.loss = s.loss;
    loss_options.focal_gamma = s.focal_gamma;
    loss_options.check(spec_.unet.outputs);
    const size_t n_all = all_labels.size(), lv = header.label_values();
    // Which training patches keep their labels (a seeded share: the scarce-label experiments).
    labelled.assign(n_all, 1);
    if (s.segment.label_fraction < 1.0)
      for (auto i : train)
        labelled[i] = static_cast<double>(hash64(i, s.seed ^ 0x1ABE1ULL) >> 11) * 0x1.0p-53 < s.segment.label_fraction;
    // Loss normaliser per patch, from every patch's labels (every rank knows every patch's weight).
    weights.assign(n_all, 0.0);
    for (size_t at = 0; at < n_all; at += 256) {
      const size_t n = std::min<size_t>(256, n_all - at);
      torch::Tensor t, m;
      make_targets(all_labels.labels.data() + at * lv, n, t, m);
      auto w = nn::segmentation_loss_weights(t, m, loss_options, spec_.unet.outputs).contiguous();
      for (size_t i = 0; i < n; ++i) weights[at + i] = labelled[at + i] ? w.data_ptr<double>()[i] : 0.0;
    }
    samples::PatchSet shard;
    input = load_patch_inputs(s.samples, header, spec_, train, shard_begin, shard_end, mpi, &shard);
    make_targets(shard.labels.data(), shard.size(), target, mask);
  }
  void build() override {
    torch::manual_seed(s.seed);
    model = nn::UNet(spec_.unet);
    if (!s.segment.init_encoder.empty()) {
      pretrained = nn::load_pretrained(s.segment.init_encoder, model);
      if (s.segment.freeze_encoder) model->freeze_encoder(true);
    }
  }
  // A pre-trained encoder must fit the U-Net being trained. Throws ConfigError naming the file.
  static void check_init_encoder(const std::string& path, const nn::ModelSpec& spec) {
    const nn::ModelSpec pre = nn::read_model_spec(path);
    if (!pre.is_unet()) throw ConfigError("--init " + path + ": not a U-Net or pre-trained encoder (kind '" + pre.kind + "')");
    if (pre.unet.in_channels != spec.unet.in_channels || pre.unet.depth != spec.unet.depth ||
        pre.unet.width != spec.unet.width || pre.unet.encoder != spec.unet.encoder || pre.unet.norm != spec.unet.norm ||
        pre.unet.blocks != spec.unet.blocks || pre.bands != spec.bands || pre.unet.months != spec.unet.months)
      throw ConfigError("--init " + path + ": encoder of another architecture or input (bands, months, depth, width, "
                        "encoder, blocks and norm must match those asked for)");
  }
  torch::nn::Module& module() override { return *model; }
  const nn::ModelSpec& spec() const override { return spec_; }
  std::vector<torch::Tensor> trainable_parameters() override { return model->trainable_parameters(); }
  // A pre-trained encoder (and decoder) fine-tuned at a fraction of the rate keeps what pre-training learnt while
  // the parts starting from random learn at the full rate.
  std::vector<double> lr_scales() override {
    if (s.segment.init_encoder.empty() || s.segment.encoder_lr == 1.0) return {};
    std::set<const void*> encoder;
    for (auto& p : model->encoder_parameters()) encoder.insert(p.unsafeGetTensorImpl());
    if (pretrained.decoder)
      for (auto& p : model->decoder->parameters()) encoder.insert(p.unsafeGetTensorImpl());
    std::vector<double> out;
    for (auto& p : model->trainable_parameters())
      out.push_back(encoder.count(p.unsafeGetTensorImpl()) ? s.segment.encoder_lr : 1.0);
    return out;
  }
  double weight(std::uint32_t i, std::int64_t) const override { return weights[i]; }
  bool keeps_labels(std::uint32_t i) const override { return labelled[i]; }

  void gather(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>& global, bool train_mode,
              std::int64_t step, torch::Tensor& x, torch::Tensor& t, torch::Tensor& m) const {
    std::vector<torch::Tensor> xs, ts, ms;
    for (size_t k = 0; k < local_pos.size(); ++k) {
      auto xi = input[local_pos[k]];
      auto ti = target[local_pos[k]];
      auto mi = mask.defined() ? mask[local_pos[k]] : torch::Tensor();
      if (train_mode && s.segment.augment)
        augment_patch(xi, ti, mi, hash64(hash64(global[k], static_cast<std::uint64_t>(step)), s.seed ^ 0xA116ULL),
                      s.segment.jitter, spec_);
      if (!labelled[global[k]]) {  // a patch whose labels are withheld contributes nothing
        if (spec_.unet.task == "multiclass") ti = torch::full_like(ti, samples::kNoPatchLabel);
        else mi = torch::zeros_like(mi);
      }
      xs.push_back(xi);
      ts.push_back(ti);
      if (mi.defined()) ms.push_back(mi);
    }
    x = torch::stack(xs);
    t = torch::stack(ts);
    m = ms.empty() ? torch::Tensor() : torch::stack(ms);
  }
  torch::Tensor loss(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>& global,
                     std::int64_t step, double batch_weight) override {
    torch::Tensor x, t, m;
    gather(local_pos, global, true, step, x, t, m);
    x = nn::to_device(x, device);
    t = nn::to_device(t, device);
    if (m.defined()) m = nn::to_device(m, device);
    const int64_t n = x.size(0), micro = s.segment.micro_batch > 0 ? s.segment.micro_batch : n;
    torch::Tensor total;
    for (int64_t at = 0; at < n; at += micro) {
      const int64_t k = std::min(micro, n - at);
      auto part = nn::segmentation_loss(model->forward(x.narrow(0, at, k)), t.narrow(0, at, k),
                                        m.defined() ? m.narrow(0, at, k) : m, loss_options, batch_weight);
      total = total.defined() ? total + part : part;
    }
    return total;
  }
  std::vector<double> validate(const std::vector<std::int64_t>& local_pos,
                               const std::vector<std::uint32_t>& global) override {
    const size_t L = static_cast<size_t>(spec_.unet.outputs);
    assess::SegmentationCounts counts(static_cast<int>(L));
    std::vector<double> extra(2, 0.0);  // loss sum, count
    for (size_t at = 0; at < local_pos.size(); at += 16) {
      const size_t end = std::min(local_pos.size(), at + 16);
      std::vector<std::int64_t> lp(local_pos.begin() + static_cast<long>(at), local_pos.begin() + static_cast<long>(end));
      std::vector<std::uint32_t> gl(global.begin() + static_cast<long>(at), global.begin() + static_cast<long>(end));
      torch::Tensor x, t, m;
      gather(lp, gl, false, 0, x, t, m);
      auto logits = model->forward(nn::to_device(x, device));
      auto ls = nn::segmentation_loss_sum(logits, nn::to_device(t, device), m.defined() ? nn::to_device(m, device) : m,
                                          loss_options);
      extra[0] += ls.sum.item<double>();
      extra[1] += ls.count.item<double>();
      auto pred = nn::segmentation_labels(logits, spec_.unet.task).to(torch::kCPU).contiguous();
      const size_t px = static_cast<size_t>(header.patch_size) * static_cast<size_t>(header.patch_size);
      auto truth = targets.truth(t, m);
      counts.add_patches(spec_.unet.task == "multiclass", pred.data_ptr<std::uint8_t>(),
                         truth.data_ptr<std::uint8_t>(), lp.size(), px);
    }
    std::vector<double> sums = counts.counts();
    sums.insert(sums.end(), extra.begin(), extra.end());
    return sums;
  }
  assess::SegmentationCounts counts_of(const std::vector<double>& v) const {
    assess::SegmentationCounts c(spec_.unet.outputs);
    c.counts() = std::vector<double>(v.begin(), v.end() - 2);
    return c;
  }
  double score(const std::vector<double>& v) const override {
    const double m = counts_of(v).mean_iou();
    return std::isfinite(m) ? m : 0.0;
  }
  std::string val_text(const std::vector<double>& v) const override {
    auto c = counts_of(v);
    const double loss = v[v.size() - 1] > 0 ? v[v.size() - 2] / v[v.size() - 1] : 0.0;
    char line[160];
    std::snprintf(line, sizeof line, "val loss %.4f  val mean IoU %.4f  val mean F1 %.4f", loss, c.mean_iou(), c.mean_f1());
    return line;
  }
  std::string best_report(const std::vector<double>& v) const override {
    return assess::segmentation_table(targets.names, counts_of(v), spec_.unet.task == "multiclass");
  }
  std::string score_name() const override { return "validation mean IoU"; }
  std::string provenance_key() const override { return "best_val_mean_iou"; }
  std::string describe(int64_t n_params) const override {
    const auto& u = spec_.unet;
    return "model U-Net " + u.encoder + " encoder, depth " + std::to_string(u.depth) + ", width " + std::to_string(u.width) +
           ", " + u.norm + " norm, " + std::to_string(n_params) + " parameters, " + u.task + " head with " +
           std::to_string(u.outputs) + " output(s)" + (s.segment.init_encoder.empty() ? ""
            : (pretrained.decoder ? ", encoder and decoder from " : ", encoder from ") + s.segment.init_encoder) +
           (s.segment.freeze_encoder ? " (frozen)"
            : !s.segment.init_encoder.empty() && s.segment.encoder_lr != 1.0
                ? " (fine-tuned at " + std::to_string(s.segment.encoder_lr).substr(0, 5) + "x the rate)" : "");
  }
  std::string inputs_text() const override {
    return "patches " + std::to_string(header.patch_size) + " px, " + std::to_string(spec_.unet.in_channels) + " channels (" +
           std::to_string(spec_.unet.months.size()) + " months x " + join_items(spec_.bands, ",") + ")";
  }
  std::string fingerprint_extra() const override {
    std::ostringstream o;
    const auto& g = s.segment;
    o << " micro=" << g.micro_batch << " unet=" << g.head << "/" << join_items(g.targets, ",") << "/" << g.depth << "/" << g.width << "/" << g.blocks << "/" << g.norm
      << "/" << g.encoder << "/" << g.upsampling << " labels=" << g.label_fraction << " augment=" << g.augment << "/"
      << g.jitter << " init=" << g.init_encoder << " frozen=" << g.freeze_encoder << " encoder_lr=" << g.encoder_lr;
    for (int m : spec_.unet.months) o << "," << m;
    return o.str();
  }
};

}  // namespace

std::unique_ptr<Task> make_segment_task(const TrainSettings& settings, samples::PatchSetHeader header,
                                        const samples::PatchSet& all_labels, nn::ModelSpec spec,
                                        const std::vector<std::uint32_t>& train, size_t shard_begin, size_t shard_end,
                                        const parallel::MpiContext& mpi) {
  return std::make_unique<SegmentTask>(settings, std::move(header), all_labels, std::move(spec), train, shard_begin,
                                       shard_end, mpi);
}

std::vector<std::string> segment_target_names(const TrainSettings& s, const samples::PatchSetHeader& h) {
  return SegmentTask::target_names(s, h);
}

void check_init_encoder(const std::string& path, const nn::ModelSpec& spec) {
  SegmentTask::check_init_encoder(path, spec);
}

}  // namespace s2crop::train
