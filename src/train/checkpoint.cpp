#include "checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/staged_file.hpp"
#include "s2crop/common/text.hpp"

namespace fs = std::filesystem;

namespace s2crop::train {

std::string fingerprint_text(const TrainSettings& s, const nn::ModelSpec& spec, int ranks, std::uintmax_t samples_size) {
  std::ostringstream o;
  o << "samples=" << fs::absolute(s.samples).string() << " size=" << samples_size << " ranks=" << ranks
    << " bands=" << join_items(spec.bands, ",") << " ndvi=" << spec.ndvi << " hidden=" << spec.hidden << " layers=" << spec.layers
    << " dropout=" << spec.dropout << " epochs=" << s.epochs << " batch=" << s.batch_size << " lr=" << s.lr
    << " wd=" << s.weight_decay << " sched=" << s.lr_schedule << " loss=" << s.loss << " gamma=" << s.focal_gamma
    << " cw=" << s.class_weights << " seed=" << s.seed << " tiles=" << join_items(s.tiles, ",") << " val=" << join_items(s.val_tiles, ",")
    << " valf=" << s.val_fraction << " patience=" << s.patience << (s.val_every > 1 ? " val_every=" + std::to_string(s.val_every) : std::string()) << (s.reproducible ? " reproducible" : "");
  if (s.task == "classify" && s.series.augment > 0)
    o << " augment=" << s.series.jitter << "," << s.series.mask_months << "," << s.series.shift;
  return o.str();
}

namespace {

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

}  // namespace

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
  // Host copies: a checkpoint written on a GPU resumes on a CPU and the other way round.
  auto host = [](const torch::Tensor& t) { return t.to(torch::kCPU); };
  torch::serialize::OutputArchive a;
  a.write("fingerprint", string_tensor(fingerprint));
  a.write("param", host(flat.param));
  a.write("adam_m", host(opt.m));
  a.write("adam_v", host(opt.v));
  a.write("adam_step", torch::tensor(opt.step, torch::kInt64));
  a.write("epoch", torch::tensor(static_cast<int64_t>(st.epoch), torch::kInt64));
  a.write("step", torch::tensor(st.step, torch::kInt64));
  a.write("best_f1", torch::tensor(st.best_f1, torch::kFloat64));
  a.write("best_epoch", torch::tensor(static_cast<int64_t>(st.best_epoch), torch::kInt64));
  a.write("bad_epochs", torch::tensor(static_cast<int64_t>(st.bad_epochs), torch::kInt64));
  a.write("best_param", host(st.best_param));
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
  const auto device = flat.param.device();  // the run's device, whichever device wrote the checkpoint
  flat.param.copy_(param);
  opt.m = m.to(device).clone();
  opt.v = v.to(device).clone();
  opt.step = adam_step.item<int64_t>();
  st.epoch = static_cast<int>(epoch.item<int64_t>());
  st.step = step.item<int64_t>();
  st.best_f1 = best_f1.item<double>();
  st.best_epoch = static_cast<int>(best_epoch.item<int64_t>());
  st.bad_epochs = static_cast<int>(bad.item<int64_t>());
  st.best_param = best_param.to(device).clone();
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

bool resume(const TrainSettings& s, const parallel::MpiContext& mpi, const std::string& ckpt_dir,
            const std::string& fingerprint, FlatModel& flat, FusedAdamW& opt, TrainState& st) {
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
    // Dropout on a GPU draws from the GPU's generator, whose state is not portable across devices: a resumed GPU run
    // continues with dropout seeded by (seed, rank, epoch) instead of the interrupted run's exact masks.
    if (resumed && !flat.param.is_cpu())
      torch::cuda::manual_seed(s.seed * 1000003ULL + static_cast<std::uint64_t>(mpi.rank()) +
                               7919ULL * static_cast<std::uint64_t>(st.epoch));
  }
  return resumed;
}

void checkpoint_epoch(const std::string& ckpt_dir, const std::string& fingerprint, const FlatModel& flat,
                      const FusedAdamW& opt, TrainState& st, const nn::ModelSpec& spec,
                      const parallel::MpiContext& mpi) {
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

}  // namespace s2crop::train
