#include "s2crop/common/text.hpp"
#include "s2crop/train/trainer.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>
#include <mutex>
#include <thread>
#include <cstring>
#include <cerrno>

#include "s2crop/assess/segmentation_metrics.hpp"
#include "s2crop/common/blas.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/hash.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/staged_file.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/nn/model_file.hpp"
#include "s2crop/nn/ndvi_lstm.hpp"
#include "s2crop/nn/segmentation_loss.hpp"
#include "s2crop/nn/segmentation_targets.hpp"
#include "s2crop/nn/simsiam.hpp"
#include "s2crop/nn/unet.hpp"
#include "s2crop/samples/ndvi_series.hpp"
#include "s2crop/samples/patch_set.hpp"
#include "s2crop/samples/training_set.hpp"
#include "s2crop/train/communicator.hpp"
#include "s2crop/train/settings.hpp"

namespace fs = std::filesystem;

namespace s2crop::train {

namespace {

using clock_type = std::chrono::steady_clock;

// Portable, seeded random numbers (std::shuffle and the std distributions differ between library versions, and a
// run must be reproducible anywhere for a given rank count). The key of a pair: its values decide the split, the
// shuffles and the augmentations of every seeded run, so it must not change.
std::uint64_t hash64(std::uint64_t a, std::uint64_t b) { return hash::mix64(a * 0x9E3779B97F4A7C15ULL ^ b); }

std::vector<std::uint32_t> permutation(const std::vector<std::uint32_t>& items, std::uint64_t seed, int epoch) {
  std::vector<std::uint32_t> p = items;
  std::uint64_t state = hash64(seed, static_cast<std::uint64_t>(epoch) + 1);
  for (size_t i = p.size(); i > 1; --i) std::swap(p[i - 1], p[hash::splitmix64(state) % i]);
  return p;
}


// Which samples train and which validate, decided identically on every rank from the labels alone.
struct Split {
  std::vector<std::uint32_t> train, val;
};

// `tile` per sample indexes `tiles`; `parcel` per sample (-1 unknown) may be empty (patches: split by patch).
Split make_split(const std::vector<std::string>& tiles, const std::vector<std::uint16_t>& tile,
                 const std::vector<std::int64_t>& parcel, const TrainSettings& s) {
  auto tile_set = [&](const std::vector<std::string>& names, const char* option) {
    std::set<std::uint16_t> out;
    for (auto& n : names) {
      auto it = std::find(tiles.begin(), tiles.end(), n);
      if (it == tiles.end())
        throw ConfigError(std::string("--") + option + ": tile " + n + " is not in " + s.samples + " (it has " +
                          join_items(tiles, ",") + ")");
      out.insert(static_cast<std::uint16_t>(it - tiles.begin()));
    }
    return out;
  };
  auto use = tile_set(s.tiles, "tiles");
  auto val_tiles = tile_set(s.val_tiles, "val-tiles");
  Split split;
  for (std::uint32_t i = 0; i < tile.size(); ++i) {
    std::uint16_t t = tile[i];
    if (!use.empty() && !use.count(t) && !val_tiles.count(t)) continue;
    bool val;
    if (!val_tiles.empty()) {
      val = val_tiles.count(t) > 0;
    } else {
      // By parcel where parcels are known (pixels of one field are not independent), else by sample.
      std::uint64_t key = !parcel.empty() && parcel[i] >= 0 ? hash64(static_cast<std::uint64_t>(parcel[i]), t + 1ULL)
                                                            : hash64(i, 0x5A17ULL);
      val = static_cast<double>(key >> 11) * 0x1.0p-53 < s.val_fraction;
    }
    (val ? split.val : split.train).push_back(i);
  }
  return split;
}

std::vector<float> class_weights(const samples::TrainingSet& labels, const std::vector<std::uint32_t>& train,
                                 const std::string& mode, size_t n_classes) {
  std::vector<double> count(n_classes, 0.0);
  for (auto i : train) count[labels.y[i]] += 1.0;
  std::vector<float> w(n_classes, 1.f);
  if (mode == "none") return w;
  double total = 0.0, norm = 0.0;
  for (size_t c = 0; c < n_classes; ++c) {
    if (count[c] == 0) continue;
    w[c] = static_cast<float>(mode == "inverse" ? 1.0 / count[c] : 1.0 / std::sqrt(count[c]));
    total += count[c];
    norm += count[c] * w[c];
  }
  // Scaled so that the average weight of a training sample is 1: the learning rate keeps its meaning.
  for (auto& v : w) v = static_cast<float>(v * total / norm);
  return w;
}

// The parameters and gradients of a model in one flat buffer each: parameters become views into flat_param and
// autograd accumulates into views of flat_grad, so the all-reduce and the optimiser work on a few large buffers
// (the gradient buckets) instead of one small tensor per parameter.
struct FlatModel {
  torch::Tensor param, grad;  // grad has one extra slot at the end: the batch's loss sum rides along
  int64_t n = 0;
};

FlatModel flatten(const std::vector<torch::Tensor>& parameters) {
  FlatModel f;
  for (auto& p : parameters) f.n += p.numel();
  f.param = torch::zeros({f.n});
  f.grad = torch::zeros({f.n + 1});
  int64_t at = 0;
  torch::NoGradGuard no_grad;
  for (auto p : parameters) {
    int64_t k = p.numel();
    f.param.narrow(0, at, k).copy_(p.detach().reshape({-1}));
    p.set_data(f.param.narrow(0, at, k).view(p.sizes()));
    p.mutable_grad() = f.grad.narrow(0, at, k).view(p.sizes());
    at += k;
  }
  return f;
}

// AdamW (decoupled weight decay) on the flat parameter buffer: a handful of vectorised kernels per step.
struct FusedAdamW {
  torch::Tensor m, v;
  torch::Tensor lr_scale;  // per parameter value (undefined: 1 everywhere), e.g. a pre-trained encoder's smaller rate
  int64_t step = 0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  void init(int64_t n) {
    m = torch::zeros({n});
    v = torch::zeros({n});
  }
  void update(torch::Tensor& param, const torch::Tensor& grad, double lr, double weight_decay) {
    torch::NoGradGuard no_grad;
    ++step;
    m.mul_(beta1).add_(grad, 1.0 - beta1);
    v.mul_(beta2).addcmul_(grad, grad, 1.0 - beta2);
    const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
    const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
    auto denom = (v.sqrt() / std::sqrt(bc2)).add_(eps);
    if (lr_scale.defined()) {
      if (weight_decay > 0) param.sub_(param * lr_scale, lr * weight_decay);
      param.addcdiv_(m * lr_scale, denom, -lr / bc1);
      return;
    }
    if (weight_decay > 0) param.mul_(1.0 - lr * weight_decay);
    param.addcdiv_(m, denom, -lr / bc1);
  }
};

double learning_rate(const TrainSettings& s, int epoch) {
  if (s.lr_schedule == "none") return s.lr;
  if (s.lr_schedule == "step") return s.lr * std::pow(0.5, epoch / std::max(1, s.epochs / 3));
  // cosine from lr down to lr/100 over the run
  double t = s.epochs > 1 ? static_cast<double>(epoch) / (s.epochs - 1) : 0.0;
  return s.lr * (0.01 + 0.99 * 0.5 * (1.0 + std::cos(M_PI * t)));
}

struct Metrics {
  double loss = 0, oa = 0, macro_f1 = 0;
  std::int64_t n = 0;
};

Metrics metrics_from(const std::vector<double>& confusion, size_t nc, double loss_sum) {
  Metrics m;
  double total = 0, diag = 0, f1_sum = 0;
  int present = 0;
  for (size_t r = 0; r < nc; ++r)
    for (size_t c = 0; c < nc; ++c) total += confusion[r * nc + c];
  for (size_t k = 0; k < nc; ++k) {
    double tp = confusion[k * nc + k], pred = 0, ref = 0;
    for (size_t j = 0; j < nc; ++j) {
      pred += confusion[k * nc + j];  // rows: predicted
      ref += confusion[j * nc + k];   // columns: reference
    }
    diag += tp;
    if (ref > 0) {
      ++present;
      f1_sum += (pred + ref) > 0 ? 2 * tp / (pred + ref) : 0.0;
    }
  }
  m.n = static_cast<std::int64_t>(total);
  m.oa = total > 0 ? diag / total : 0;
  m.macro_f1 = present ? f1_sum / present : 0;
  m.loss = total > 0 ? loss_sum / total : 0;
  return m;
}

// Everything a resumed run needs to continue exactly where the interrupted one stopped (at an epoch boundary).
struct TrainState {
  int epoch = 0;  // epochs completed
  std::int64_t step = 0;
  double best_f1 = -std::numeric_limits<double>::infinity();
  int best_epoch = -1, bad_epochs = 0;
  torch::Tensor best_param;
  std::vector<double> best_val_sums;      // the validation sums of the best epoch (for its per-label report)
  std::vector<torch::Tensor> rng_states;  // per rank (dropout)
};

std::string fingerprint_text(const TrainSettings& s, const nn::ModelSpec& spec, int ranks, std::uintmax_t samples_size) {
  std::ostringstream o;
  o << "samples=" << fs::absolute(s.samples).string() << " size=" << samples_size << " ranks=" << ranks
    << " bands=" << join_items(spec.bands, ",") << " ndvi=" << spec.ndvi << " hidden=" << spec.hidden << " layers=" << spec.layers
    << " dropout=" << spec.dropout << " epochs=" << s.epochs << " batch=" << s.batch_size << " lr=" << s.lr
    << " wd=" << s.weight_decay << " sched=" << s.lr_schedule << " loss=" << s.loss << " gamma=" << s.focal_gamma
    << " cw=" << s.class_weights << " seed=" << s.seed << " tiles=" << join_items(s.tiles, ",") << " val=" << join_items(s.val_tiles, ",")
    << " valf=" << s.val_fraction << " patience=" << s.patience << (s.val_every > 1 ? " val_every=" + std::to_string(s.val_every) : std::string()) << (s.reproducible ? " reproducible" : "");
  return o.str();
}

torch::Tensor string_tensor(const std::string& text) {
  auto t = torch::empty({static_cast<int64_t>(text.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr(), text.data(), text.size());
  return t;
}
std::string tensor_string(const torch::Tensor& t) {
  auto c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel()));
}

// What a failed write's OS error says: "disk full? (File too large)" where the disk, the quota or the file size
// limit ran out, else the OS text.
std::string write_failure_text(int err) {
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) return std::string("disk full? (") + std::strerror(err) + ")";
  return std::strerror(err);
}

// A file written with POSIX calls, so that a failed write keeps its OS error. write() always reports every byte as
// written (LibTorch's archive writer, told of a short write, throws from inside its zip callbacks and destructors),
// drops the bytes after the first error, and error()/finish() say what went wrong.
class CheckedFile {
 public:
  explicit CheckedFile(const std::string& path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) error_ = errno;
  }
  ~CheckedFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  CheckedFile(const CheckedFile&) = delete;
  CheckedFile& operator=(const CheckedFile&) = delete;
  size_t write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    for (size_t done = 0; !error_ && done < n;) {
      const ssize_t k = ::write(fd_, p + done, n - done);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        error_ = k < 0 ? errno : EIO;
        break;
      }
      done += static_cast<size_t>(k);
    }
    return n;
  }
  int error() const { return error_; }
  // Closes the file; the first OS error of any call (0: none).
  int finish() {
    if (fd_ >= 0 && ::close(fd_) != 0 && !error_) error_ = errno;
    fd_ = -1;
    return error_;
  }

 private:
  int fd_ = -1, error_ = 0;
};

// Rank 0, before anything is read: `folder` exists (or is created) and takes a new file, so that an unwritable
// --output or --checkpoint-dir stops the run before the training rather than after it. A folder created only for
// this test is removed again (the run creates it when it writes there).
void check_writable_folder(const std::string& folder, const std::string& what) {
  const fs::path dir = folder.empty() ? fs::path(".") : fs::path(folder);
  std::error_code ec;
  const bool existed = fs::is_directory(dir, ec);
  if (!existed) {
    fs::create_directories(dir, ec);
    if (ec) throw OutputError(dir.string(), "cannot create the folder for " + what + ": " + ec.message());
  }
  const fs::path probe = dir / (".s2crop-write-test." + std::to_string(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err = errno;
  if (fd >= 0) {
    ::close(fd);
    fs::remove(probe, ec);
  }
  if (!existed) fs::remove(dir, ec);
  if (fd < 0) throw OutputError(dir.string(), "cannot write " + what + " in this folder: " + std::strerror(err));
}

void save_checkpoint(const std::string& dir, const std::string& fingerprint, const FlatModel& flat,
                     const FusedAdamW& opt, const TrainState& st, const nn::ModelSpec& spec) {
  torch::serialize::OutputArchive a;
  a.write("fingerprint", string_tensor(fingerprint));
  a.write("param", flat.param);
  a.write("adam_m", opt.m);
  a.write("adam_v", opt.v);
  a.write("adam_step", torch::tensor(opt.step, torch::kInt64));
  a.write("epoch", torch::tensor(static_cast<int64_t>(st.epoch), torch::kInt64));
  a.write("step", torch::tensor(st.step, torch::kInt64));
  a.write("best_f1", torch::tensor(st.best_f1, torch::kFloat64));
  a.write("best_epoch", torch::tensor(static_cast<int64_t>(st.best_epoch), torch::kInt64));
  a.write("bad_epochs", torch::tensor(static_cast<int64_t>(st.bad_epochs), torch::kInt64));
  a.write("best_param", st.best_param);
  a.write("rng_states", torch::stack(st.rng_states));
  a.write("best_val_sums", torch::tensor(st.best_val_sums.empty() ? std::vector<double>{0.0} : st.best_val_sums,
                                         torch::kFloat64)
                               .narrow(0, 0, static_cast<int64_t>(st.best_val_sums.size())));
  a.write("feature_mean", torch::tensor(spec.mean));
  a.write("feature_std", torch::tensor(spec.stddev));
  const std::string path = dir + "/checkpoint.pt", info_path = dir + "/checkpoint.txt";
  // Both files are written next to their place first and renamed only when complete: a failed write (disk full)
  // removes the temporaries (their StagedFiles, unwinding) and leaves the previous checkpoint as it was.
  StagedFile staged(path, ".tmp"), info_staged(info_path, ".tmp");
  auto fail = [&](const std::string& what) {
    throw OutputError(path, "cannot write the checkpoint: " + what + "; the previous checkpoint (if any) is kept");
  };
  {
    CheckedFile out(staged.path());
    try {
      a.save_to([&](const void* data, size_t n) { return out.write(data, n); });
    } catch (const c10::Error& e) {
      if (!out.error()) {
        std::string what = e.what();
        fail(what.substr(0, what.find('\n')));
      }
    }
    if (int err = out.finish()) fail(write_failure_text(err));
  }
  {
    CheckedFile info(info_staged.path());
    const std::string text = "epoch " + std::to_string(st.epoch) + "\nstep " + std::to_string(st.step) +
                             "\nbest_epoch " + std::to_string(st.best_epoch) + "\n";
    info.write(text.data(), text.size());
    if (int err = info.finish()) fail(write_failure_text(err));
  }
  staged.commit();
  // checkpoint.txt is a note for people (and tests polling for an epoch); resuming reads checkpoint.pt alone, so a
  // note that cannot be moved into place (its temporary is then removed) does not stop the training.
  try {
    info_staged.commit();
  } catch (const OutputError& e) {
    log::warn(std::string("training: ") + e.what());
  }
}

// Loads the checkpoint into `flat`, `opt`, `st`. False if there is none; throws InputError if it is damaged or
// from other settings (nothing is modified then).
bool load_checkpoint(const std::string& dir, const std::string& fingerprint, FlatModel& flat, FusedAdamW& opt,
                     TrainState& st, int ranks) {
  const std::string path = dir + "/checkpoint.pt";
  if (!fs::exists(path)) return false;
  torch::serialize::InputArchive a;
  torch::Tensor fp, param, m, v, adam_step, epoch, step, best_f1, best_epoch, bad, best_param, rng;
  try {
    a.load_from(path);
    a.read("fingerprint", fp);
    a.read("param", param);
    a.read("adam_m", m);
    a.read("adam_v", v);
    a.read("adam_step", adam_step);
    a.read("epoch", epoch);
    a.read("step", step);
    a.read("best_f1", best_f1);
    a.read("best_epoch", best_epoch);
    a.read("bad_epochs", bad);
    a.read("best_param", best_param);
    a.read("rng_states", rng);
  } catch (const c10::Error& e) {
    std::string what = e.what();
    throw InputError(path, "damaged checkpoint, cannot resume from it (" + what.substr(0, what.find('\n')) +
                               "); delete " + dir + " or pass --overwrite to start over");
  }
  if (tensor_string(fp) != fingerprint)
    throw InputError(path, "checkpoint of a run with other data, model or training options (or rank count); pass "
                           "--overwrite to start over");
  if (param.numel() != flat.n || m.numel() != flat.n || v.numel() != flat.n || best_param.numel() != flat.n ||
      rng.size(0) != ranks)
    throw InputError(path, "checkpoint does not match the model size; pass --overwrite to start over");
  torch::NoGradGuard no_grad;
  flat.param.copy_(param);
  opt.m = m.clone();
  opt.v = v.clone();
  opt.step = adam_step.item<int64_t>();
  st.epoch = static_cast<int>(epoch.item<int64_t>());
  st.step = step.item<int64_t>();
  st.best_f1 = best_f1.item<double>();
  st.best_epoch = static_cast<int>(best_epoch.item<int64_t>());
  st.bad_epochs = static_cast<int>(bad.item<int64_t>());
  st.best_param = best_param.clone();
  st.rng_states.clear();
  for (int r = 0; r < ranks; ++r) st.rng_states.push_back(rng[r].clone());
  st.best_val_sums.clear();
  try {  // absent from checkpoints of older versions: the best epoch's per-label report is then left out
    torch::Tensor sums;
    a.read("best_val_sums", sums);
    sums = sums.to(torch::kFloat64).contiguous();
    st.best_val_sums.assign(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
  } catch (const c10::Error&) {
  }
  return true;
}

// Bitwise checksum of the parameters: equal on every rank iff the replicas are identical (with overwhelming odds).
std::uint64_t param_hash(const torch::Tensor& param) {
  auto c = param.contiguous();
  return hash::fnv1a(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
}

}  // namespace

int threads_per_rank(int requested, int ranks_on_node) {
  if (requested > 0) return requested;
  for (const char* var : {"SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"})
    if (const char* v = std::getenv(var))
      if (int n = std::atoi(v); n > 0) return n;
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, cores / std::max(1, ranks_on_node));
}

void use_threads(int n) {
  torch::set_num_threads(n);
  // OpenBLAS keeps its own pool (one thread per core in every rank unless told): match the intra-op count.
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(n);
}

namespace {

// What the one training loop needs from a task (crop-type classification, NDVI forecast or gap-fill): the model,
// the weight of a sample in a global batch (known on every rank for every sample, so the loss can be normalised by
// the whole global batch), the loss of this rank's batch members, and the validation sums.
struct Task {
  virtual ~Task() = default;
  virtual torch::nn::Module& module() = 0;
  virtual const nn::ModelSpec& spec() const = 0;
  // Weight of sample i (global index) in the global batch of step `step` (0-based optimiser step).
  virtual double weight(std::uint32_t i, std::int64_t step) const = 0;
  // Loss of the shard's batch members (positions in the shard; `global` their sample indices), divided by
  // the global batch weight.
  virtual torch::Tensor loss(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>& global,
                             std::int64_t step, double batch_weight) = 0;
  // Validation sums of the shard's validation samples (all-reduced by the loop), and what they mean.
  virtual std::vector<double> validate(const std::vector<std::int64_t>& local_pos,
                                       const std::vector<std::uint32_t>& global) = 0;
  virtual double score(const std::vector<double>& sums) const = 0;  // higher is better
  virtual std::string val_text(const std::vector<double>& sums) const = 0;
  // A multi-line report of the best epoch's validation sums for the end of the log (empty: none).
  virtual std::string best_report(const std::vector<double>&) const { return ""; }
  virtual std::string score_name() const = 0;  // e.g. "validation macro-F1"
  virtual double score_display(double score) const { return score; }
  virtual std::string provenance_key() const = 0;
  virtual std::string describe(int64_t n_params) const = 0;
  virtual std::string fingerprint_extra() const { return ""; }
  // What the model learns from, for the start line of the log.
  virtual std::string inputs_text() const { return ""; }
  // The module written to the model file (pre-training keeps the encoder, and the decoder where it trained one).
  virtual torch::nn::Module& saved_module() { return module(); }
  // The parameters the optimiser updates (a frozen pre-trained encoder is left out: no update, no weight decay).
  virtual std::vector<torch::Tensor> trainable_parameters() { return module().parameters(); }
  // Learning-rate factor of each trainable parameter, in that order (empty: 1 for all).
  virtual std::vector<double> lr_scales() { return {}; }
};

// ---- crop-type classification (the original `s2crop train`)
struct ClassifyTask : Task {
  const TrainSettings& s;
  const samples::TrainingSet& labels;
  nn::ModelSpec spec_;
  std::vector<float> weights;
  torch::Tensor features, labels_shard, weight_tensor;
  nn::LstmClassifier model{nullptr};
  size_t nc = 0, shard_begin = 0;

  ClassifyTask(const TrainSettings& settings, const samples::TrainingSet& labels_, nn::ModelSpec spec,
               const Split& split, size_t shard_begin_, size_t shard_end, const parallel::MpiContext& mpi)
      : s(settings), labels(labels_), spec_(std::move(spec)), shard_begin(shard_begin_) {
    nc = spec_.class_names.size();
    weights = class_weights(labels, split.train, s.class_weights, nc);
    auto in_shard = [&](std::uint32_t i) { return i >= shard_begin && i < shard_end; };
    auto x = samples::read_training_set_x(s.samples, shard_begin, shard_end);
    nn::FeatureMap raw_features(spec_, labels.header.bands, s.samples);
    const int64_t nf = spec_.n_features(), months = spec_.months;
    features = torch::empty({static_cast<int64_t>(shard_end - shard_begin), months, nf});
    raw_features.apply(x.data(), shard_end - shard_begin, features.data_ptr<float>(), true);
    x = {};
    {
      // Normalisation statistics over the training samples of all shards.
      std::vector<double> acc(static_cast<size_t>(2 * nf + 1), 0.0);
      const float* f = features.data_ptr<float>();
      for (auto i : split.train) {
        if (!in_shard(i)) continue;
        const float* row = f + (i - shard_begin) * static_cast<size_t>(months * nf);
        for (int64_t m = 0; m < months; ++m)
          for (int64_t k = 0; k < nf; ++k) {
            double v = row[m * nf + k];
            acc[static_cast<size_t>(k)] += v;
            acc[static_cast<size_t>(nf + k)] += v * v;
          }
        acc[static_cast<size_t>(2 * nf)] += static_cast<double>(months);
      }
      MPI_Allreduce(MPI_IN_PLACE, acc.data(), static_cast<int>(acc.size()), MPI_DOUBLE, MPI_SUM, mpi.world());
      const double count = acc[static_cast<size_t>(2 * nf)];
      for (int64_t k = 0; k < nf; ++k) {
        double mean = acc[static_cast<size_t>(k)] / count;
        double var = std::max(0.0, acc[static_cast<size_t>(nf + k)] / count - mean * mean);
        spec_.mean.push_back(static_cast<float>(mean));
        spec_.stddev.push_back(static_cast<float>(std::max(std::sqrt(var), 1e-6)));
      }
      auto mean = torch::tensor(spec_.mean).view({1, 1, nf}), sd = torch::tensor(spec_.stddev).view({1, 1, nf});
      features.sub_(mean).div_(sd);
    }
    labels_shard = torch::from_blob(const_cast<std::uint8_t*>(labels.y.data()) + shard_begin,
                                    {static_cast<int64_t>(shard_end - shard_begin)}, torch::kUInt8)
                       .to(torch::kInt64);
    weight_tensor = torch::tensor(weights);
  }
  void build() {
    torch::manual_seed(s.seed);  // the same initial weights everywhere; rank 0's are broadcast anyway
    model = nn::LstmClassifier(spec_);
  }
  torch::nn::Module& module() override { return *model; }
  const nn::ModelSpec& spec() const override { return spec_; }
  double weight(std::uint32_t i, std::int64_t) const override { return weights[labels.y[i]]; }
  torch::Tensor loss(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>&, std::int64_t,
                     double batch_weight) override {
    auto idx = torch::from_blob(const_cast<std::int64_t*>(local_pos.data()), {static_cast<int64_t>(local_pos.size())},
                                torch::kInt64);
    auto xb = features.index_select(0, idx);
    auto yb = labels_shard.index_select(0, idx);
    auto logp = model->forward(xb);
    auto nll = -logp.gather(1, yb.unsqueeze(1)).squeeze(1);
    if (s.loss == "focal") nll = nll * torch::pow(1.0 - torch::exp(-nll), s.focal_gamma);
    return (nll * weight_tensor.index_select(0, yb)).sum() / batch_weight;
  }
  std::vector<double> validate(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>&) override {
    std::vector<double> confusion(nc * nc + 1, 0.0);
    for (size_t at = 0; at < local_pos.size(); at += 4096) {
      auto idx = torch::from_blob(const_cast<std::int64_t*>(local_pos.data()) + at,
                                  {static_cast<int64_t>(std::min<size_t>(4096, local_pos.size() - at))}, torch::kInt64);
      auto logp = model->forward(features.index_select(0, idx));
      auto yb = labels_shard.index_select(0, idx);
      auto pred = logp.argmax(1);
      confusion[nc * nc] += -logp.gather(1, yb.unsqueeze(1)).sum().item<double>();
      auto p = pred.accessor<int64_t, 1>();
      auto y = yb.accessor<int64_t, 1>();
      for (int64_t k = 0; k < p.size(0); ++k) confusion[static_cast<size_t>(p[k]) * nc + static_cast<size_t>(y[k])] += 1;
    }
    return confusion;
  }
  double score(const std::vector<double>& c) const override { return metrics_from(c, nc, c[nc * nc]).macro_f1; }
  std::string val_text(const std::vector<double>& c) const override {
    Metrics val = metrics_from(c, nc, c[nc * nc]);
    char line[160];
    std::snprintf(line, sizeof line, "val loss %.4f  val OA %.4f  val macro-F1 %.4f", val.loss, val.oa, val.macro_f1);
    return line;
  }
  std::string score_name() const override { return "validation macro-F1"; }
  std::string provenance_key() const override { return "best_val_macro_f1"; }
  std::string describe(int64_t n_params) const override {
    return "model LSTM " + std::to_string(spec_.hidden) + " hidden x " + std::to_string(spec_.layers) + " layers, " +
           std::to_string(n_params) + " parameters, " + std::to_string(nc) + " classes";
  }
};

// ---- NDVI prediction (`s2crop ndvi train`): forecast or gap-fill, loss only on observed (clear) months
struct NdviTask : Task {
  const TrainSettings& s;
  nn::ModelSpec spec_;
  std::vector<std::uint8_t> clear;      // all samples [sample][12]
  std::vector<float> ndvi;              // shard [sample][12]
  std::vector<std::int16_t> covariates; // shard [sample][12][cov]
  std::vector<double> forecast_weight;  // all samples: (origin, lead) pairs with an observed target
  nn::NdviLstm model{nullptr};
  size_t shard_begin = 0;
  int n_cov = 0;
  static constexpr std::uint64_t kValidationStep = ~0ULL;

  NdviTask(const TrainSettings& settings, const samples::TrainingSet& labels, nn::ModelSpec spec, size_t shard_begin_,
           size_t shard_end)
      : s(settings), spec_(std::move(spec)), shard_begin(shard_begin_) {
    const size_t n_all = labels.size();
    {
      h5::File f = h5::File::open_read(s.samples, MPI_COMM_NULL);
      if (!f.exists("clear") && !s.assume_clear)
        throw ConfigError(s.samples + " has no per-month clear flags (dataset 'clear'): the NDVI loss may only use "
                          "observed months, and without them gap-filled values would count as observations. Extract "
                          "the samples again ('s2crop extract' writes the flags) or pass --assume-clear if every month "
                          "of every series was observed");
    }
    clear = samples::read_training_set_clear(s.samples, 0, n_all);
    auto x = samples::read_training_set_x(s.samples, shard_begin, shard_end);
    ndvi = samples::ndvi_series(x, labels.header, s.samples);
    const auto& bands = labels.header.bands;
    n_cov = static_cast<int>(spec_.bands.size());
    std::vector<size_t> cov_index;
    for (auto& b : spec_.bands) cov_index.push_back(static_cast<size_t>(std::find(bands.begin(), bands.end(), b) - bands.begin()));
    const size_t n = shard_end - shard_begin, nb = bands.size();
    covariates.resize(n * 12 * static_cast<size_t>(n_cov));
    for (size_t i = 0; i < n * 12; ++i)
      for (int c = 0; c < n_cov; ++c) covariates[i * n_cov + c] = x[i * nb + cov_index[static_cast<size_t>(c)]];
    spec_.mean.assign(static_cast<size_t>(spec_.n_features()), 0.f);
    spec_.stddev.assign(static_cast<size_t>(spec_.n_features()), 1.f);
    if (spec_.task == "forecast") {
      forecast_weight.assign(n_all, 0.0);
      for (size_t i = 0; i < n_all; ++i)
        for (int t = spec_.t_min; t <= spec_.t_max; ++t)
          for (int k = 0; k < spec_.horizon && t + k < 12; ++k) forecast_weight[i] += clear[i * 12 + static_cast<size_t>(t + k)];
    }
  }
  void build() {
    torch::manual_seed(s.seed);
    model = nn::NdviLstm(spec_);
  }
  torch::nn::Module& module() override { return *model; }
  const nn::ModelSpec& spec() const override { return spec_; }
  std::vector<std::uint8_t> hidden(std::uint32_t i, std::uint64_t step) const {
    return samples::gapfill_hidden(clear.data() + static_cast<size_t>(i) * 12, s.seed, i, step, s.mask_fraction);
  }
  double weight(std::uint32_t i, std::int64_t step) const override {
    if (spec_.task == "forecast") return forecast_weight[i];
    double w = 0;
    for (auto h : hidden(i, static_cast<std::uint64_t>(step))) w += h;
    return w;
  }
  // Inputs, targets and loss mask of the batch: [b][12][out].
  void batch(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>& global, std::uint64_t step,
             torch::Tensor& input, torch::Tensor& target, torch::Tensor& mask) const {
    const int64_t b = static_cast<int64_t>(local_pos.size()), nf = spec_.n_features();
    const int64_t out = spec_.task == "forecast" ? spec_.horizon : 1;
    input = torch::empty({b, 12, nf});
    target = torch::zeros({b, 12, out});
    mask = torch::zeros({b, 12, out});
    std::vector<float> series(12);
    std::vector<std::uint8_t> visible(12);
    float* in = input.data_ptr<float>();
    float* tg = target.data_ptr<float>();
    float* mk = mask.data_ptr<float>();
    for (int64_t r = 0; r < b; ++r) {
      const size_t p = static_cast<size_t>(local_pos[static_cast<size_t>(r)]);
      const std::uint32_t g = global[static_cast<size_t>(r)];
      const float* v = ndvi.data() + p * 12;
      const std::uint8_t* c = clear.data() + static_cast<size_t>(g) * 12;
      if (spec_.task == "forecast") {
        for (int m = 0; m < 12; ++m) visible[static_cast<size_t>(m)] = c[m];
        for (int t = spec_.t_min; t <= spec_.t_max; ++t)
          for (int k = 0; k < out && t + k < 12; ++k) {
            const size_t at = (static_cast<size_t>(r) * 12 + static_cast<size_t>(t - 1)) * static_cast<size_t>(out) + k;
            tg[at] = v[t + k];
            mk[at] = c[t + k] ? 1.f : 0.f;
          }
      } else {
        auto h = hidden(g, step);
        for (int m = 0; m < 12; ++m) {
          visible[static_cast<size_t>(m)] = c[m] && !h[static_cast<size_t>(m)];
          tg[static_cast<size_t>(r) * 12 + m] = v[m];
          mk[static_cast<size_t>(r) * 12 + m] = h[static_cast<size_t>(m)] ? 1.f : 0.f;
        }
      }
      nn::ndvi_features(v, visible.data(), n_cov ? covariates.data() + p * 12 * n_cov : nullptr, n_cov, 1,
                        spec_.season_start_month, in + static_cast<size_t>(r) * 12 * static_cast<size_t>(nf));
    }
  }
  torch::Tensor loss(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>& global,
                     std::int64_t step, double batch_weight) override {
    torch::Tensor input, target, mask;
    batch(local_pos, global, static_cast<std::uint64_t>(step), input, target, mask);
    auto e = model->forward(input) - target;
    return (e * e * mask).sum() / std::max(batch_weight, 1e-12);
  }
  std::vector<double> validate(const std::vector<std::int64_t>& local_pos,
                               const std::vector<std::uint32_t>& global) override {
    std::vector<double> sums(2, 0.0);  // squared error, count
    for (size_t at = 0; at < local_pos.size(); at += 4096) {
      const size_t end = std::min(local_pos.size(), at + 4096);
      std::vector<std::int64_t> lp(local_pos.begin() + static_cast<long>(at), local_pos.begin() + static_cast<long>(end));
      std::vector<std::uint32_t> gl(global.begin() + static_cast<long>(at), global.begin() + static_cast<long>(end));
      torch::Tensor input, target, mask;
      batch(lp, gl, kValidationStep, input, target, mask);
      auto e = model->forward(input) - target;
      sums[0] += (e * e * mask).sum().item<double>();
      sums[1] += mask.sum().item<double>();
    }
    return sums;
  }
  double score(const std::vector<double>& v) const override { return v[1] > 0 ? -std::sqrt(v[0] / v[1]) : 0.0; }
  std::string val_text(const std::vector<double>& v) const override {
    char line[120];
    std::snprintf(line, sizeof line, "val NDVI RMSE %.4f (%.0f months)", v[1] > 0 ? std::sqrt(v[0] / v[1]) : 0.0, v[1]);
    return line;
  }
  std::string score_name() const override { return "validation NDVI RMSE"; }
  double score_display(double score) const override { return -score; }
  std::string provenance_key() const override { return "best_val_score"; }
  std::string describe(int64_t n_params) const override {
    std::string what = spec_.task == "forecast"
                           ? "forecast " + std::to_string(spec_.horizon) + " month(s) from " + std::to_string(spec_.t_min) +
                                 "-" + std::to_string(spec_.t_max) + " observed months"
                           : "gap-fill (masked input, " + std::to_string(s.mask_fraction) + " of the observed months hidden)";
    return "model NDVI LSTM " + std::to_string(spec_.hidden) + " hidden x " + std::to_string(spec_.layers) + " layers, " +
           std::to_string(n_params) + " parameters, " + what;
  }
  std::string fingerprint_extra() const override {
    std::ostringstream o;
    o << " task=" << spec_.task << " horizon=" << spec_.horizon << " t=" << spec_.t_min << "-" << spec_.t_max
      << " mask=" << s.mask_fraction << " covariates=" << join_items(spec_.bands, ",");
    return o.str();
  }
};

// ---- patch sets (U-Net training and pre-training)

// This rank's shard [begin, end) of a patch set as U-Net input [n][C][S][S], normalised with per-channel statistics
// over every rank's training patches (no-data values left out), which are stored in spec.mean / spec.stddev unless
// the spec has them already (a pre-trained encoder's). `shard` (optional) receives the shard's labels and metadata.
torch::Tensor load_patch_inputs(const std::string& path, const samples::PatchSetHeader& header, nn::ModelSpec& spec,
                                const std::vector<std::uint32_t>& train, size_t begin, size_t end,
                                const parallel::MpiContext& mpi, samples::PatchSet* shard_out) {
  auto shard = samples::read_patch_set(path, begin, end);
  const int64_t S = header.patch_size, px = S * S, n = static_cast<int64_t>(shard.size());
  nn::ImageInputMap raw(spec, header.bands, path);
  const int64_t C = raw.channels();
  auto input = nn::patch_inputs(raw, shard.x.data(), shard.size(), header, true);
  std::vector<double> acc(static_cast<size_t>(3 * C), 0.0);  // sum, sum of squares, count per channel
  std::vector<char> is_train(header.patches, 0);
  for (auto i : train) is_train[i] = 1;
  const float* f = input.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    if (!is_train[begin + static_cast<size_t>(i)]) continue;
    for (int64_t c = 0; c < C; ++c) {
      const float* plane = f + (i * C + c) * px;
      for (int64_t p = 0; p < px; ++p) {
        if (plane[p] == 0.f) continue;  // no data (a reflectance of exactly 0 is rare and says little)
        acc[static_cast<size_t>(c)] += plane[p];
        acc[static_cast<size_t>(C + c)] += static_cast<double>(plane[p]) * plane[p];
        acc[static_cast<size_t>(2 * C + c)] += 1;
      }
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, acc.data(), static_cast<int>(acc.size()), MPI_DOUBLE, MPI_SUM, mpi.world());
  if (spec.mean.empty()) {
    for (int64_t c = 0; c < C; ++c) {
      const double count = std::max(1.0, acc[static_cast<size_t>(2 * C + c)]);
      const double mean = acc[static_cast<size_t>(c)] / count;
      const double var = std::max(0.0, acc[static_cast<size_t>(C + c)] / count - mean * mean);
      spec.mean.push_back(static_cast<float>(mean));
      spec.stddev.push_back(static_cast<float>(std::max(std::sqrt(var), 1e-6)));
    }
  }
  input = nn::patch_inputs(nn::ImageInputMap(spec, header.bands, path), shard.x.data(), shard.size(), header);
  if (shard_out) {
    shard.x = {};
    *shard_out = std::move(shard);
  }
  return input;
}

// Physics-respecting augmentation of one patch, a function of `h` only: a flip, 0-3 quarter turns (applied to the
// targets and mask too, when defined), and a brightness factor in [1 - jitter, 1 + jitter] per band, the same for
// all months of the band (channels are [month][band]); in normalised units x' = x f + (f - 1) mean / sd. No
// operation mixes bands.
void augment_geometry(torch::Tensor& x, torch::Tensor& t, torch::Tensor& m, std::uint64_t h) {
  const bool flip = h & 1;
  const int64_t turns = static_cast<int64_t>((h >> 1) & 3);
  auto geometry = [&](torch::Tensor v) {
    if (!v.defined()) return v;
    const int64_t d = v.dim();
    if (flip) v = v.flip({d - 1});
    if (turns) v = torch::rot90(v, turns, {d - 2, d - 1});
    return v.contiguous();
  };
  x = geometry(x);
  t = geometry(t);
  m = geometry(m);
}
void augment_brightness(torch::Tensor& x, std::uint64_t h, double jitter, const nn::ModelSpec& spec) {
  if (jitter <= 0) return;
  const int64_t C = x.size(0);
  const size_t n_bands = std::max<size_t>(1, spec.bands.size());
  auto factor = torch::empty({C, 1, 1}), offset = torch::empty({C, 1, 1});
  float* fp = factor.data_ptr<float>();
  float* op = offset.data_ptr<float>();
  for (int64_t c = 0; c < C; ++c) {
    const std::uint64_t hb = hash64(h, static_cast<std::uint64_t>(c) % n_bands + 1);
    const double f = 1.0 + jitter * (2.0 * (static_cast<double>(hb >> 11) * 0x1.0p-53) - 1.0);
    fp[c] = static_cast<float>(f);
    op[c] = static_cast<float>((f - 1.0) * spec.mean[static_cast<size_t>(c)] / spec.stddev[static_cast<size_t>(c)]);
  }
  x = x * factor + offset;
}
void augment_patch(torch::Tensor& x, torch::Tensor& t, torch::Tensor& m, std::uint64_t h, double jitter,
                   const nn::ModelSpec& spec) {
  augment_geometry(x, t, m, h);
  augment_brightness(x, h, jitter, spec);
}

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
  void build() {
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
      auto logits = model->forward(x);
      auto ls = nn::segmentation_loss_sum(logits, t, m, loss_options);
      extra[0] += ls.sum.item<double>();
      extra[1] += ls.count.item<double>();
      auto pred = nn::segmentation_labels(logits, spec_.unet.task).contiguous();
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

// ---- self-supervised pre-training of the U-Net encoder (`s2crop pretrain`): SimSiam on unlabelled patches
// Two views of a patch, each a function of (seed, patch, step, view): flip, quarter turns and band brightness as in
// segment training, a random crop of 50-100 % of the side resized back (bilinear), and whole months dropped to no
// data (20 % each, as a cloudy month would be). Validation uses fixed views; its score is minus the loss. The
// spread of the normalised projections is logged: near 0 means the encoder collapsed to a constant.
struct PretrainTask : Task {
  const TrainSettings& s;
  nn::ModelSpec spec_;
  samples::PatchSetHeader header;
  torch::Tensor input;  // shard [n][C][S][S], normalised
  nn::SimSiam model{nullptr};
  static constexpr std::uint64_t kValidationStep = ~0ULL;

  PretrainTask(const TrainSettings& settings, samples::PatchSetHeader header_, nn::ModelSpec spec,
               const std::vector<std::uint32_t>& train, size_t shard_begin, size_t shard_end,
               const parallel::MpiContext& mpi)
      : s(settings), spec_(std::move(spec)), header(std::move(header_)) {
    input = load_patch_inputs(s.samples, header, spec_, train, shard_begin, shard_end, mpi, nullptr);
  }
  void build() {
    torch::manual_seed(s.seed);
    model = nn::SimSiam(spec_.unet, s.segment.projection, s.segment.objective == "dense", s.segment.reconstruction);
  }
  torch::nn::Module& module() override { return *model; }
  torch::nn::Module& saved_module() override { return *model->kept; }
  const nn::ModelSpec& spec() const override { return spec_; }
  double weight(std::uint32_t, std::int64_t) const override { return 1.0; }

  // Global objective: each view its own flip, turns, brightness, crop (resized back) and dropped months.
  // Dense objective: the views share flip and turns (pixel (y, x) of one is pixel (y, x) of the other) and differ in
  // brightness and dropped months, so each pixel's embedding must not depend on which months were seen.
  // `dropped` (optional) receives [C], 1 for the channels of the months the view blanked; with `geometry_only`, the
  // patch is only flipped and turned (the reconstruction target, aligned with the dense views).
  torch::Tensor view(std::int64_t pos, std::uint32_t i, std::uint64_t step, std::uint64_t v,
                     torch::Tensor* dropped = nullptr, bool geometry_only = false) const {
    const std::uint64_t h = hash64(hash64(hash64(i, step), v + 1), s.seed ^ 0x51A5ULL);
    const bool dense = s.segment.objective == "dense";
    torch::Tensor x = input[pos], none;
    torch::Tensor t, m;
    augment_geometry(x, t, m, dense ? hash64(hash64(i, step), s.seed ^ 0x6E0ULL) : h);
    if (geometry_only) return x.contiguous();
    augment_brightness(x, h, s.segment.jitter, spec_);
    const int64_t S = x.size(1);
    auto uniform = [&](std::uint64_t salt) { return static_cast<double>(hash64(h, salt) >> 11) * 0x1.0p-53; };
    const int64_t side = std::max<int64_t>(4, static_cast<int64_t>(std::lround(S * (0.5 + 0.5 * uniform(11)))));
    if (!dense && side < S) {
      const int64_t y0 = static_cast<int64_t>(uniform(12) * static_cast<double>(S - side + 1));
      const int64_t x0 = static_cast<int64_t>(uniform(13) * static_cast<double>(S - side + 1));
      namespace F = torch::nn::functional;
      x = F::interpolate(x.narrow(1, std::min(y0, S - side), side).narrow(2, std::min(x0, S - side), side).unsqueeze(0),
                         F::InterpolateFuncOptions().size(std::vector<int64_t>{S, S}).mode(torch::kBilinear).align_corners(false))
              .squeeze(0);
    }
    const int64_t bands = static_cast<int64_t>(spec_.bands.size());
    if (dropped) *dropped = torch::zeros({x.size(0)});
    for (size_t k = 0; k < spec_.unet.months.size(); ++k)
      if (uniform(100 + k) < s.segment.drop_months) {
        x.narrow(0, static_cast<int64_t>(k) * bands, bands).zero_();
        if (dropped) dropped->narrow(0, static_cast<int64_t>(k) * bands, bands).fill_(1.0);
      }
    return x.contiguous();
  }
  nn::SiameseLoss batch_loss(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>& global,
                             std::uint64_t step, torch::Tensor* projections = nullptr) {
    const bool target = model->reconstructs();
    std::vector<torch::Tensor> a, b, c, da, db;
    for (size_t k = 0; k < local_pos.size(); ++k) {
      torch::Tensor d1, d2;
      a.push_back(view(local_pos[k], global[k], step, 0, target ? &d1 : nullptr));
      b.push_back(view(local_pos[k], global[k], step, 1, target ? &d2 : nullptr));
      if (!target) continue;
      c.push_back(view(local_pos[k], global[k], step, 2, nullptr, true));
      da.push_back(d1);
      db.push_back(d2);
    }
    nn::SiameseViews views;
    views.view1 = torch::stack(a);
    views.view2 = torch::stack(b);
    if (target) {
      views.target = torch::stack(c);
      views.dropped1 = torch::stack(da);
      views.dropped2 = torch::stack(db);
    }
    return model->loss(views, projections);
  }
  torch::Tensor loss(const std::vector<std::int64_t>& local_pos, const std::vector<std::uint32_t>& global,
                     std::int64_t step, double batch_weight) override {
    return batch_loss(local_pos, global, static_cast<std::uint64_t>(step)).total.sum() / std::max(batch_weight, 1e-12);
  }
  std::vector<double> validate(const std::vector<std::int64_t>& local_pos,
                               const std::vector<std::uint32_t>& global) override {
    // loss sum, count, sum of the per-batch spread of normalised projections, siamese and reconstruction loss sums
    std::vector<double> sums(5, 0.0);
    for (size_t at = 0; at < local_pos.size(); at += 32) {
      const size_t end = std::min(local_pos.size(), at + 32);
      std::vector<std::int64_t> lp(local_pos.begin() + static_cast<long>(at), local_pos.begin() + static_cast<long>(end));
      std::vector<std::uint32_t> gl(global.begin() + static_cast<long>(at), global.begin() + static_cast<long>(end));
      torch::Tensor z;
      auto l = batch_loss(lp, gl, kValidationStep, &z);
      sums[0] += l.total.sum().item<double>();
      sums[3] += l.siamese.sum().item<double>();
      if (l.reconstruction.defined()) sums[4] += l.reconstruction.sum().item<double>();
      sums[1] += static_cast<double>(lp.size());
      if (z.size(0) > 1) {  // over the patches (global) or the sampled pixels (dense)
        auto zn = torch::nn::functional::normalize(z, torch::nn::functional::NormalizeFuncOptions().dim(1));
        sums[2] += zn.std(0).mean().item<double>() * static_cast<double>(lp.size());
      }
    }
    return sums;
  }
  double score(const std::vector<double>& v) const override { return v[1] > 0 ? -v[0] / v[1] : 0.0; }
  std::string val_text(const std::vector<double>& v) const override {
    char line[400];
    const double n = std::max(v[1], 1.0);
    if (s.segment.objective == "dense" && s.segment.reconstruction > 0)
      std::snprintf(line, sizeof line, "val dense loss %.4f (VICReg %.4f: lower, views agree; masked-month "
                    "reconstruction %.4f: normalised MSE, x %g)  projection spread %.3f (0: collapsed; healthy near %.3f)",
                    v[0] / n, v[3] / n, v[4] / n, s.segment.reconstruction, v[2] / n,
                    1.0 / std::sqrt(static_cast<double>(s.segment.projection)));
    else if (s.segment.objective == "dense")
      std::snprintf(line, sizeof line, "val dense loss %.4f (VICReg %.4f: lower, views agree)  projection spread "
                    "%.3f (0: collapsed; healthy near %.3f)", v[0] / n, v[3] / n, v[2] / n,
                    1.0 / std::sqrt(static_cast<double>(s.segment.projection)));
    else
      std::snprintf(line, sizeof line, "val SimSiam loss %.4f (-1: views agree)  projection spread %.3f (0: collapsed; "
                    "healthy near %.3f)", v[1] > 0 ? v[0] / v[1] : 0.0, v[1] > 0 ? v[2] / v[1] : 0.0,
                    1.0 / std::sqrt(static_cast<double>(s.segment.projection)));
    return line;
  }
  std::string score_name() const override {
    return s.segment.objective == "dense" ? "validation dense loss" : "validation SimSiam loss";
  }
  double score_display(double score) const override { return -score; }
  std::string provenance_key() const override { return "best_val_simsiam_score"; }
  std::string describe(int64_t n_params) const override {
    const auto& u = spec_.unet;
    const bool body = model->reconstructs();
    return std::string(s.segment.objective != "dense" ? "global SimSiam"
                       : body ? "dense (per-pixel VICReg + masked-month reconstruction)" : "dense (per-pixel VICReg)") +
           " pre-training of a U-Net " + u.encoder + " encoder (depth " + std::to_string(u.depth) + ", width " +
           std::to_string(u.width) + ", " + u.norm + " norm), projection " + std::to_string(s.segment.projection) + ", " +
           std::to_string(n_params) + " parameters (" + (body ? "the encoder and decoder are kept" : "only the encoder is kept") + ")";
  }
  std::string inputs_text() const override {
    return "unlabelled patches " + std::to_string(header.patch_size) + " px, " + std::to_string(spec_.unet.in_channels) +
           " channels (" + std::to_string(spec_.unet.months.size()) + " months x " + join_items(spec_.bands, ",") + ")";
  }
  std::string fingerprint_extra() const override {
    std::ostringstream o;
    const auto& g = s.segment;
    o << " pretrain=" << g.depth << "/" << g.width << "/" << g.blocks << "/" << g.norm << "/" << g.encoder << " projection="
      << g.projection << " jitter=" << g.jitter << " objective=" << g.objective << " drop=" << g.drop_months
      << " reconstruction=" << (g.objective == "dense" ? g.reconstruction : 0.0);
    for (int m : spec_.unet.months) o << "," << m;
    return o.str();
  }
};

}  // namespace

void run_train(const TrainSettings& s, const parallel::MpiContext& mpi) {
  auto t_start = clock_type::now();
  const bool pretrain_task = s.task == "pretrain";
  const bool segment_task = s.task == "segment" || pretrain_task;
  const bool ndvi_task = s.task != "classify" && !segment_task;
  check_settings(s);
  {
    // More threads per rank than a node has cores is a typo (--threads 1000), not a setting: refused on every rank
    // alike (the smallest node decides), before anything is read.
    int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    MPI_Allreduce(MPI_IN_PLACE, &cores, 1, MPI_INT, MPI_MIN, mpi.world());
    if (s.threads > cores)
      throw ConfigError("--threads " + std::to_string(s.threads) + ": more threads per rank than the " +
                        std::to_string(cores) + " cores of a node (0: the node's cores shared by its ranks)");
  }
  const std::string ckpt_dir = s.checkpoint_dir.empty() ? s.output + ".ckpt" : s.checkpoint_dir;
  parallel::root_first(mpi.world(), [&] {
    // An existing model is either this training's, finished (nothing to write), or refused below.
    if (fs::exists(s.output) && !s.overwrite) return;
    check_writable_folder(fs::path(s.output).parent_path().string(), "the model file (--output " + s.output + ")");
    check_writable_folder(ckpt_dir, s.checkpoint_dir.empty() ? "checkpoints (--output " + s.output + ", + .ckpt)"
                                                             : std::string("checkpoints (--checkpoint-dir)"));
  });
  // Test hook: S2CROP_TEST_NAN_LOSS=STEP[:RANK] makes the loss of that optimiser step (1-based) NaN on that rank
  // (every rank without one), to test that a diverged training stops on every rank with nothing written.
  std::int64_t nan_step = 0;
  int nan_rank = -1;
  if (const char* hook = std::getenv("S2CROP_TEST_NAN_LOSS"); hook && *hook) {
    long long step = 0;
    int rank = -1;
    if (std::sscanf(hook, "%lld:%d", &step, &rank) < 1 || step < 1)
      throw ConfigError(std::string("S2CROP_TEST_NAN_LOSS=") + hook + ": expected STEP[:RANK]");
    nan_step = step;
    nan_rank = rank;
  }

  // ---- patches (U-Net): header and every patch's labels and tile, split by tile or by patch
  samples::PatchSet patch_labels;
  if (segment_task) {
    parallel::root_first(mpi.world(), [&] { patch_labels = samples::read_patch_set_labels(s.samples); });
    if (!mpi.is_root()) patch_labels = samples::read_patch_set_labels(s.samples);
  }
  // ---- labels, split and model spec: every rank reads the small arrays and decides identically
  samples::TrainingSet labels;
  if (!segment_task) {
    parallel::root_first(mpi.world(), [&] {
      labels = samples::read_training_set_labels(s.samples);  // validates the file once, with a clear message
    });
    if (!mpi.is_root()) labels = samples::read_training_set_labels(s.samples);
  } else {
    // The U-Net's inputs are described by the patch set's header; only bands, classes and season are shared.
    labels.header.bands = patch_labels.header.bands;
    labels.header.class_names = patch_labels.header.class_names;
    labels.header.season_start_month = patch_labels.header.season_start_month;
    labels.header.tiles = patch_labels.header.tiles;
  }
  const auto& header = labels.header;
  nn::ModelSpec spec;
  spec.bands = s.bands.empty() && !ndvi_task ? header.bands : s.bands;
  for (auto& b : spec.bands)
    if (std::find(header.bands.begin(), header.bands.end(), b) == header.bands.end())
      throw ConfigError("--bands: " + b + " is not in " + s.samples + " (it has " + join_items(header.bands, ",") + ")");
  spec.ndvi = !segment_task && (s.ndvi || ndvi_task);
  if (spec.ndvi) {
    spec.ndvi_nir = nn::ndvi_nir_band(header.bands);
    if (spec.ndvi_nir.empty())
      throw ConfigError(s.samples + " lacks B04 or B08/B8A: " +
                        (ndvi_task ? std::string("no NDVI to predict") : "train with --ndvi false"));
  }
  spec.hidden = s.hidden;
  spec.layers = s.layers;
  spec.dropout = s.dropout;
  spec.class_names = header.class_names;
  spec.season_start_month = header.season_start_month;
  if (ndvi_task) {
    spec.kind = "ndvi_lstm";
    spec.task = s.task;
    spec.horizon = s.task == "forecast" ? s.horizon : 0;
    spec.t_min = s.task == "forecast" ? s.t_min : 0;
    spec.t_max = s.task == "forecast" ? s.t_max : 0;
  }
  if (segment_task) {
    const auto& g = s.segment;
    spec.kind = pretrain_task ? "unet_encoder" : "unet";
    spec.ndvi = false;
    spec.unet.task = g.head;
    if (pretrain_task) {  // an encoder has no head: outputs are a placeholder
      spec.class_names.clear();
      spec.unet.task = "multilabel";
      spec.unet.outputs = 1;
    } else {
      spec.class_names = SegmentTask::target_names(s, patch_labels.header);
      spec.unet.outputs = static_cast<int>(spec.class_names.size());
    }
    spec.unet.depth = g.depth;
    spec.unet.width = g.width;
    spec.unet.blocks = g.blocks;
    spec.unet.norm = g.norm;
    spec.unet.encoder = g.encoder;
    spec.unet.upsampling = g.upsampling;
    spec.unet.dropout = s.dropout;
    if (!g.months.empty()) spec.unet.months = g.months;
    spec.unet.in_channels = static_cast<int>(spec.unet.months.size() * spec.bands.size());
    spec.unet.check();
    if (!g.init_encoder.empty()) {
      parallel::root_first(mpi.world(), [&] { SegmentTask::check_init_encoder(g.init_encoder, spec); });
      // The encoder learnt on inputs normalised its way: the patches are normalised with its statistics (and the
      // model file records them), not with statistics of this patch set.
      const nn::ModelSpec pre = nn::read_model_spec(g.init_encoder);
      spec.mean = pre.mean;
      spec.stddev = pre.stddev;
    }
  }
  Split split = segment_task ? make_split(header.tiles, patch_labels.tile, {}, s)
                             : make_split(header.tiles, labels.tile, labels.parcel, s);
  if (split.train.empty()) throw ConfigError("no training samples left after the tile selection and split");

  // ---- this rank's shard: a contiguous slice of the file
  const size_t n_all = segment_task ? patch_labels.size() : labels.size();
  const size_t shard_begin = n_all * static_cast<size_t>(mpi.rank()) / static_cast<size_t>(mpi.size());
  const size_t shard_end = n_all * static_cast<size_t>(mpi.rank() + 1) / static_cast<size_t>(mpi.size());
  auto in_shard = [&](std::uint32_t i) { return i >= shard_begin && i < shard_end; };
  auto t_load = clock_type::now();
  std::unique_ptr<ClassifyTask> classify_task;
  std::unique_ptr<NdviTask> ndvi;
  std::unique_ptr<SegmentTask> segment;
  std::unique_ptr<PretrainTask> pretrain;
  Task* task = nullptr;
  if (pretrain_task) {
    pretrain = std::make_unique<PretrainTask>(s, patch_labels.header, spec, split.train, shard_begin, shard_end, mpi);
    patch_labels = {};
    task = pretrain.get();
  } else if (segment_task) {
    segment = std::make_unique<SegmentTask>(s, patch_labels.header, patch_labels, spec, split.train, shard_begin,
                                            shard_end, mpi);
    patch_labels = {};
    task = segment.get();
    if (s.segment.label_fraction < 1.0) {
      // Patches whose labels are withheld add nothing to the loss: batches hold only the labelled ones (their
      // images still counted in the normalisation statistics above).
      const size_t before = split.train.size();
      split.train.erase(std::remove_if(split.train.begin(), split.train.end(),
                                       [&](std::uint32_t i) { return !segment->labelled[i]; }),
                        split.train.end());
      if (split.train.empty())
        throw ConfigError("--label-fraction " + std::to_string(s.segment.label_fraction) + " leaves none of the " +
                          std::to_string(before) + " training patches labelled");
      if (mpi.is_root())
        log::info("--label-fraction: " + std::to_string(split.train.size()) + " of " + std::to_string(before) +
                  " training patches keep their labels; batches are drawn from those");
    }
  } else if (ndvi_task) {
    ndvi = std::make_unique<NdviTask>(s, labels, spec, shard_begin, shard_end);
    task = ndvi.get();
  } else {
    classify_task = std::make_unique<ClassifyTask>(s, labels, spec, split, shard_begin, shard_end, mpi);
    task = classify_task.get();
  }
  double load_s = std::chrono::duration<double>(clock_type::now() - t_load).count();

  // ---- model, communicator, replicas in sync
  const int threads = threads_per_rank(s.threads, mpi.node_size());
  use_threads(threads);
  if (pretrain) pretrain->build(); else if (segment) segment->build(); else if (ndvi) ndvi->build(); else classify_task->build();
  torch::nn::Module& model = task->module();
  spec = task->spec();
  const std::vector<double> lr_scales = task->lr_scales();
  FlatModel flat = flatten(task->trainable_parameters());
  FusedAdamW opt;
  opt.init(flat.n);
  if (!lr_scales.empty()) {
    opt.lr_scale = torch::ones({flat.n});
    int64_t at = 0;
    size_t k = 0;
    for (auto& p : task->trainable_parameters()) {
      opt.lr_scale.narrow(0, at, p.numel()).fill_(lr_scales.at(k++));
      at += p.numel();
    }
  }
  auto choice = choose_backend(s.backend, nccl_built(), visible_gpus(), mpi.node_rank(), mpi.node_size());
  auto comm = make_communicator(choice, mpi);
  comm->broadcast(flat.param.data_ptr<float>(), static_cast<size_t>(flat.n), 0);
  torch::manual_seed(s.seed * 1000003ULL + static_cast<std::uint64_t>(mpi.rank()));  // dropout differs per rank

  TrainState st;
  st.best_param = flat.param.clone();
  const std::string fingerprint =
      fingerprint_text(s, spec, mpi.size(), fs::file_size(s.samples)) + task->fingerprint_extra();
  // A finished run of the same training (a resubmitted job chain) has nothing to do; any other model is kept.
  int already_done = 0;
  parallel::root_first(mpi.world(), [&] {
    if (!fs::exists(s.output) || s.overwrite) return;
    std::string previous;
    try {
      auto file = h5::File::open_read(s.output, MPI_COMM_SELF);
      if (file.has_attr("run_fingerprint")) previous = file.attr_string("run_fingerprint");
    } catch (const std::exception&) {
    }
    if (previous != fingerprint)
      throw OutputError(s.output, "exists from a different training run; pass --overwrite to replace it (nothing was "
                                  "changed)");
    already_done = 1;
  });
  MPI_Bcast(&already_done, 1, MPI_INT, 0, mpi.world());
  if (already_done) {
    if (mpi.is_root()) log::info(s.output + " is already trained with these data and settings: nothing to do");
    return;
  }
  bool resumed = false;
  parallel::root_first(mpi.world(), [&] {
    if (s.overwrite && fs::exists(ckpt_dir)) fs::remove_all(ckpt_dir);
    fs::create_directories(ckpt_dir);
    if (s.require_resume && !fs::exists(ckpt_dir + "/checkpoint.pt"))
      throw InputError(ckpt_dir + "/checkpoint.pt", "--resume given but there is no checkpoint to resume from");
  });
  {
    // Every rank validates and loads the same checkpoint file (shared file system), root first for one message.
    std::string error;
    try {
      resumed = load_checkpoint(ckpt_dir, fingerprint, flat, opt, st, mpi.size());
    } catch (const InputError& e) {
      error = e.what();
    }
    std::string root_error = parallel::broadcast_string(mpi.world(), error);
    if (!parallel::all_true(mpi.world(), error.empty())) throw AgreedError(root_error.empty() ? error : root_error);
    if (resumed) {
      auto generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(st.rng_states[static_cast<size_t>(mpi.rank())]);
    }
  }

  const size_t global_batch = static_cast<size_t>(s.batch_size) * static_cast<size_t>(mpi.size());
  const size_t steps_per_epoch = (split.train.size() + global_batch - 1) / global_batch;
  if (mpi.is_root()) {
    log::info("training set " + s.samples + ": " + std::to_string(n_all) + " samples, " +
              std::to_string(split.train.size()) + " training, " + std::to_string(split.val.size()) +
              " validation; " +
              (segment_task ? task->inputs_text()
                            : "features " + (ndvi_task ? "NDVI,visible,1,month sin/cos" + std::string(spec.bands.empty() ? "" : ",") : "") +
                                  join_items(spec.bands, ",") + (spec.ndvi && !ndvi_task ? ",NDVI" : "") + " x 12 months"));
    log::info(task->describe(flat.n) + "; " + comm->name() + ": " + choice.reason + "; " + std::to_string(mpi.size()) + " rank(s) x " +
              std::to_string(threads) + " thread(s); global batch " + std::to_string(global_batch) + ", " +
              std::to_string(steps_per_epoch) + " steps per epoch");
    char line[160];
    std::snprintf(line, sizeof line, "loaded and normalised the shards in %.2f s", load_s);
    log::info(line);
    if (auto blas_line = blas::describe(); !blas_line.empty()) log::info(blas_line);
    if (s.lr == 0)
      log::warn("--lr 0: the parameters are never updated; " + s.output + " will hold the initial weights");
    if (split.val.empty()) {
      std::ostringstream fraction;
      fraction << s.val_fraction;
      log::info("no validation set (--val-fraction " + fraction.str() +
                (s.val_tiles.empty() ? std::string() : ", --val-tiles " + join_items(s.val_tiles, ",")) +
                "): the model kept is the epoch with the lowest training loss" +
                (s.patience > 0 ? ", and early stopping (--patience " + std::to_string(s.patience) +
                                      ") counts epochs without a lower training loss"
                                : std::string()));
    }
    if (resumed)
      log::info("resumed from " + ckpt_dir + "/checkpoint.pt after epoch " + std::to_string(st.epoch));
  }
  std::ofstream step_log;
  if (mpi.is_root() && !s.step_log.empty()) {
    step_log.open(s.step_log, resumed ? std::ios::app : std::ios::trunc);
    if (!step_log) throw OutputError(s.step_log, "cannot write the step log");
    if (!resumed) step_log << "step\tepoch\tloss\tlr\tparam_sum\treplicas_identical\n";
  }

  // ---- epochs
  const size_t bucket = std::max<size_t>(1024, static_cast<size_t>(s.bucket_mb * 1024 * 1024 / sizeof(float)));
  std::vector<std::int64_t> local_pos;
  std::vector<std::uint32_t> local_global;
  torch::Tensor grad64 = s.reproducible ? torch::zeros({flat.n + 1}, torch::kFloat64) : torch::Tensor();
  bool stop = false;
  double train_seconds = 0;
  std::int64_t trained_samples = 0;
  for (int epoch = st.epoch; epoch < s.epochs && !stop; ++epoch) {
    auto t_epoch = clock_type::now();
    const double lr = learning_rate(s, epoch);
    model.train();
    auto order = permutation(split.train, s.seed, epoch);
    double epoch_loss = 0;
    for (size_t b = 0; b < steps_per_epoch; ++b) {
      const size_t begin = b * global_batch, end = std::min(order.size(), begin + global_batch);
      local_pos.clear();
      local_global.clear();
      double batch_weight = 0;
      for (size_t k = begin; k < end; ++k) {
        std::uint32_t i = order[k];
        batch_weight += task->weight(i, st.step);
        if (in_shard(i)) {
          local_pos.push_back(static_cast<std::int64_t>(i - shard_begin));
          local_global.push_back(i);
        }
      }
      flat.grad.zero_();
      const size_t total = static_cast<size_t>(flat.n) + 1;
      const bool poisoned = nan_step == st.step + 1 && (nan_rank < 0 || nan_rank == mpi.rank());
      if (s.reproducible) {
        // Each sample's gradient alone (computed the same way whatever the rank count), summed in double: the sum
        // hardly depends on the order of the additions, so neither does the step on how the batch is split.
        grad64.zero_();
        for (size_t k = 0; k < local_pos.size(); ++k) {
          flat.grad.zero_();
          auto loss = task->loss({local_pos[k]}, {local_global[k]}, st.step, batch_weight);
          if (poisoned) loss = loss * std::numeric_limits<double>::quiet_NaN();
          loss.backward();
          flat.grad[flat.n] = loss.detach();
          grad64.add_(flat.grad);
        }
        double* g = grad64.data_ptr<double>();
        for (size_t at = 0; at < total; at += bucket) comm->allreduce_sum(g + at, std::min(bucket, total - at));
        flat.grad.copy_(grad64);
      } else {
        if (!local_pos.empty()) {
          auto loss = task->loss(local_pos, local_global, st.step, batch_weight);
          if (poisoned) loss = loss * std::numeric_limits<double>::quiet_NaN();
          loss.backward();
          flat.grad[flat.n] = loss.detach();
        }
        float* g = flat.grad.data_ptr<float>();
        for (size_t at = 0; at < total; at += bucket) comm->allreduce_sum(g + at, std::min(bucket, total - at));
      }
      const double step_loss = flat.grad[flat.n].item<double>();
      // A loss or gradient that is not finite would make the parameters, the best model and the next checkpoint NaN:
      // stop before the update. Every rank holds the same all-reduced bits, so every rank stops at this step (no
      // other collective needed, none left waiting).
      const bool finite_loss = std::isfinite(step_loss);
      if (!finite_loss || !std::isfinite(flat.grad.narrow(0, 0, flat.n).sum(torch::kFloat64).item<double>())) {
        char what[200];
        std::snprintf(what, sizeof what,
                      finite_loss ? "the loss is %g but its gradient is not finite (learning rate %g)"
                                  : "the loss is %g (learning rate %g)",
                      step_loss, lr);
        throw AgreedError("training diverged in epoch " + std::to_string(epoch + 1) + "/" + std::to_string(s.epochs) +
                          ", step " + std::to_string(st.step + 1) + ": " + what + ". Stopped before the update: " +
                          s.output + " was not written, " +
                          (st.epoch > 0 ? "the checkpoint after epoch " + std::to_string(st.epoch) + " in " + ckpt_dir +
                                              " is kept as it was"
                                        : std::string("no checkpoint was written")) +
                          ". Lower --lr or check the training set");
      }
      opt.update(flat.param, flat.grad.narrow(0, 0, flat.n), lr, s.weight_decay);
      ++st.step;
      epoch_loss += step_loss * static_cast<double>(end - begin);
      trained_samples += static_cast<std::int64_t>(end - begin);
      if (s.check_replicas || step_log.is_open()) {
        int identical = 1;
        if (s.check_replicas) {
          std::uint64_t h = param_hash(flat.param), lo = h, hi = h;
          MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, mpi.world());
          MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, mpi.world());
          identical = lo == hi;
          if (!identical)
            parallel::fail_fast("replicas diverged at step " + std::to_string(st.step) +
                                ": parameters differ between ranks (bug in the gradient all-reduce)");
        }
        if (step_log.is_open()) {
          char line[200];
          std::snprintf(line, sizeof line, "%lld\t%d\t%.9g\t%.6g\t%.9g\t%d\n", static_cast<long long>(st.step), epoch,
                        step_loss, lr, flat.param.abs().sum().item<double>(), identical);
          step_log << line;
        }
      }
      if (s.max_steps > 0 && st.step >= s.max_steps) {
        stop = true;
        break;
      }
    }
    train_seconds += std::chrono::duration<double>(clock_type::now() - t_epoch).count();

    // ---- validation: each rank predicts its shard's validation samples; confusion and loss all-reduced
    std::vector<double> val_sums;
    // Without a validation set every epoch is scored by its training loss (the best epoch and early stopping follow
    // it); nothing is validated.
    const bool validating = split.val.empty() || (epoch + 1) % s.val_every == 0 || epoch + 1 == s.epochs ||
                            (s.max_steps > 0 && st.step >= s.max_steps);
    if (validating && !split.val.empty()) {
      torch::NoGradGuard no_grad;
      model.eval();
      local_pos.clear();
      local_global.clear();
      for (auto i : split.val)
        if (in_shard(i)) {
          local_pos.push_back(static_cast<std::int64_t>(i - shard_begin));
          local_global.push_back(i);
        }
      val_sums = task->validate(local_pos, local_global);
    }
    if (validating && !split.val.empty())
      MPI_Allreduce(MPI_IN_PLACE, val_sums.data(), static_cast<int>(val_sums.size()), MPI_DOUBLE, MPI_SUM, mpi.world());
    const double score = split.val.empty() ? -epoch_loss / std::max<double>(1, static_cast<double>(order.size()))
                         : validating     ? task->score(val_sums)
                                          : 0.0;
    if (!validating) {
    } else if (score > st.best_f1) {
      st.best_f1 = score;
      st.best_epoch = epoch;
      st.bad_epochs = 0;
      st.best_param = flat.param.clone();
      st.best_val_sums = split.val.empty() ? std::vector<double>{} : val_sums;
    } else {
      ++st.bad_epochs;
    }
    st.epoch = epoch + 1;
    double seconds = std::chrono::duration<double>(clock_type::now() - t_epoch).count();
    if (mpi.is_root()) {
      const std::string not_validated = split.val.empty()
                                            ? std::string("(no validation set)")
                                            : "(validation every " + std::to_string(s.val_every) + " epochs)";
      char line[300];
      std::snprintf(line, sizeof line,
                    "epoch %d/%d  loss %.4f  %s  lr %.2e  %.0f samples/s  "
                    "%.1f s%s",
                    epoch + 1, s.epochs, epoch_loss / std::max<double>(1, static_cast<double>(order.size())),
                    validating && !split.val.empty() ? task->val_text(val_sums).c_str() : not_validated.c_str(), lr,
                    static_cast<double>(order.size()) / std::max(1e-9, seconds), seconds,
                    st.best_epoch == epoch ? "  *best" : "");
      log::info(line);
    }
    if (s.patience > 0 && st.bad_epochs >= s.patience) {
      if (mpi.is_root())
        log::info(split.val.empty()
                      ? "early stopping: no lower training loss for " + std::to_string(s.patience) + " epochs"
                      : "early stopping: no validation improvement for " + std::to_string(s.patience) + " epochs");
      stop = true;
    }
    // ---- checkpoint (rank 0 writes; every rank's dropout RNG state goes with it)
    auto state = at::detail::getDefaultCPUGenerator().get_state();
    std::vector<std::uint8_t> all_states(static_cast<size_t>(state.numel() * mpi.size()));
    MPI_Gather(state.data_ptr(), static_cast<int>(state.numel()), MPI_BYTE, all_states.data(),
               static_cast<int>(state.numel()), MPI_BYTE, 0, mpi.world());
    parallel::root_first(mpi.world(), [&] {
      st.rng_states.clear();
      for (int r = 0; r < mpi.size(); ++r)
        st.rng_states.push_back(torch::from_blob(all_states.data() + static_cast<size_t>(r) * state.numel(),
                                                 {state.numel()}, torch::kUInt8)
                                    .clone());
      save_checkpoint(ckpt_dir, fingerprint, flat, opt, st, spec);
    });
  }

  // ---- the model file: the best epoch's parameters
  {
    torch::NoGradGuard no_grad;
    flat.param.copy_(st.best_param);
  }
  std::ostringstream provenance;
  // Without a validation set the best epoch is the one with the lowest training loss (the score is its negative).
  provenance << s.config_text << "best_epoch = " << st.best_epoch + 1 << "\n"
             << (split.val.empty() ? "best_training_loss" : task->provenance_key()) << " = "
             << (split.val.empty() ? -st.best_f1 : st.best_f1) << "\nranks = " << mpi.size() << "\n";
  parallel::root_first(mpi.world(), [&] {
    fs::path parent = fs::path(s.output).parent_path();
    if (!parent.empty()) fs::create_directories(parent);
    try {
      nn::save_model(s.output, spec, task->saved_module(), provenance.str(), fingerprint);
    } catch (const OutputError& e) {
      throw OutputError(e.path(), std::string(e.what()).substr(e.path().size() + 2) + ". The checkpoint after epoch " +
                                      std::to_string(st.epoch) + " in " + ckpt_dir +
                                      " is kept: the same command, run again, resumes from it and writes the model");
    }
    double total = std::chrono::duration<double>(clock_type::now() - t_start).count();
    char line[300];
    // The benchmark's measure (bench/lstm_bench.sh): samples per second over data loading plus the training steps.
    std::snprintf(line, sizeof line, "epoch throughput incl. data loading: %.1f samples/s (%.2f s loading, %.2f s training)",
                  static_cast<double>(trained_samples) / std::max(load_s + train_seconds, 1e-9), load_s, train_seconds);
    log::info(line);
    std::snprintf(line, sizeof line,
                  "wrote %s (best epoch %d, %s %.4f) in %s; training throughput %.0f samples/s (%lld steps)",
                  s.output.c_str(), st.best_epoch + 1, split.val.empty() ? "training loss" : task->score_name().c_str(),
                  split.val.empty() ? -st.best_f1 : task->score_display(st.best_f1), log::format_duration(total).c_str(),
                  static_cast<double>(trained_samples) / std::max(train_seconds, 1e-9),
                  static_cast<long long>(st.step));
    log::info(line);
    if (!st.best_val_sums.empty()) {
      const std::string report = task->best_report(st.best_val_sums);
      if (!report.empty()) {
        log::info("validation of the best epoch (" + std::to_string(st.best_epoch + 1) + "), per label:");
        std::istringstream lines(report);
        for (std::string l; std::getline(lines, l);) log::info("  " + l);
      }
    }
  });
}

}  // namespace s2crop::train
