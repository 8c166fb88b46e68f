// The training loop: one data-parallel loop for every task (task.hpp), from the settings to the model file.
#include "s2crop/train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>

#include "checkpoint.hpp"
#include "flat_model.hpp"
#include "sampling.hpp"
#include "setup.hpp"
#include "task.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/hash.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/train/communicator.hpp"
#include "s2crop/train/settings.hpp"

namespace fs = std::filesystem;

namespace s2crop::train {

namespace {

using clock_type = std::chrono::steady_clock;

// Bitwise checksum of the parameters: equal on every rank iff the replicas are identical (with overwhelming odds).
std::uint64_t param_hash(const torch::Tensor& param) {
  auto c = param.to(torch::kCPU).contiguous();
  return hash::fnv1a(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
}

}  // namespace

// One model: the loop from the settings to the model file.
void train_model(const TrainSettings& s, const parallel::MpiContext& mpi) {
  auto t_start = clock_type::now();
  const bool pretrain_task = s.task == "pretrain";
  const bool segment_task = s.task == "segment" || pretrain_task;
  const bool ndvi_task = s.task != "classify" && !segment_task;
  check_settings(s);
  const std::string ckpt_dir = s.checkpoint_dir.empty() ? s.output + ".ckpt" : s.checkpoint_dir;
  check_run(s, mpi, ckpt_dir);
  const NanHook nan = nan_hook();
  const nn::DeviceChoice device = nn::resolve_device(s.device, mpi, "training");

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
  nn::ModelSpec spec = model_spec(s, header, patch_labels.header, mpi);
  Split split = segment_task ? make_split(header.tiles, patch_labels.tile, {}, s)
                             : make_split(header.tiles, labels.tile, labels.parcel, s);
  if (split.train.empty()) throw ConfigError("no training samples left after the tile selection and split");

  // ---- this rank's shard: a contiguous slice of the file
  const size_t n_all = segment_task ? patch_labels.size() : labels.size();
  const size_t shard_begin = n_all * static_cast<size_t>(mpi.rank()) / static_cast<size_t>(mpi.size());
  const size_t shard_end = n_all * static_cast<size_t>(mpi.rank() + 1) / static_cast<size_t>(mpi.size());
  auto in_shard = [&](std::uint32_t i) { return i >= shard_begin && i < shard_end; };
  auto t_load = clock_type::now();
  std::unique_ptr<Task> task;
  if (pretrain_task) {
    task = make_pretrain_task(s, patch_labels.header, spec, split.train, shard_begin, shard_end, mpi);
    patch_labels = {};
  } else if (segment_task) {
    task = make_segment_task(s, patch_labels.header, patch_labels, spec, split.train, shard_begin, shard_end, mpi);
    patch_labels = {};
    if (s.segment.label_fraction < 1.0) {
      // Patches whose labels are withheld add nothing to the loss: batches hold only the labelled ones (their
      // images still counted in the normalisation statistics above).
      const size_t before = split.train.size();
      split.train.erase(std::remove_if(split.train.begin(), split.train.end(),
                                       [&](std::uint32_t i) { return !task->keeps_labels(i); }),
                        split.train.end());
      if (split.train.empty())
        throw ConfigError("--label-fraction " + std::to_string(s.segment.label_fraction) + " leaves none of the " +
                          std::to_string(before) + " training patches labelled");
      if (mpi.is_root())
        log::info("--label-fraction: " + std::to_string(split.train.size()) + " of " + std::to_string(before) +
                  " training patches keep their labels; batches are drawn from those");
    }
  } else if (ndvi_task) {
    task = make_ndvi_task(s, labels, spec, shard_begin, shard_end);
  } else {
    task = make_classify_task(s, labels, spec, split, shard_begin, shard_end, mpi);
  }
  double load_s = std::chrono::duration<double>(clock_type::now() - t_load).count();

  // ---- model, communicator, replicas in sync
  const int threads = threads_per_rank(s.threads, mpi.node_size());
  use_threads(threads);
  task->build();
  task->place(nn::torch_device(device));
  torch::nn::Module& model = task->module();
  spec = task->spec();
  const std::vector<double> lr_scales = task->lr_scales();
  FlatModel flat = flatten(task->trainable_parameters());
  FusedAdamW opt;
  opt.init(flat.n, flat.param.device());
  if (!lr_scales.empty()) {
    opt.lr_scale = torch::ones({flat.n}, flat.param.options());
    int64_t at = 0;
    size_t k = 0;
    for (auto& p : task->trainable_parameters()) {
      opt.lr_scale.narrow(0, at, p.numel()).fill_(lr_scales.at(k++));
      at += p.numel();
    }
  }
  const BackendChoice choice =
      choose_backend(s.backend, device, nccl_built(), visible_gpus(), mpi.node_rank(), mpi.node_size());
  auto comm = make_communicator(choice, mpi);
  broadcast(*comm, flat.param, 0);
  torch::manual_seed(s.seed * 1000003ULL + static_cast<std::uint64_t>(mpi.rank()));  // dropout differs per rank

  TrainState st;
  st.best_param = flat.param.clone();
  const std::string fingerprint =
      fingerprint_text(s, spec, mpi.size(), fs::file_size(s.samples)) + task->fingerprint_extra();
  if (already_trained(s, mpi, fingerprint)) return;
  const bool resumed = resume(s, mpi, ckpt_dir, fingerprint, flat, opt, st);

  const size_t global_batch = static_cast<size_t>(s.batch_size) * static_cast<size_t>(mpi.size());
  const size_t steps_per_epoch = (split.train.size() + global_batch - 1) / global_batch;
  RunDescription run;
  run.samples = n_all;
  run.global_batch = global_batch;
  run.steps_per_epoch = steps_per_epoch;
  run.communicator = comm->name() + ": " + choice.reason;
  run.ranks = mpi.size();
  run.threads = threads;
  run.load_s = load_s;
  run.resumed = resumed;
  if (mpi.is_root()) log_start(s, split, *task, spec, flat.n, run, ckpt_dir, st.epoch);
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
  torch::Tensor grad64 =
      s.reproducible ? torch::zeros({flat.n + 1}, flat.grad.options().dtype(torch::kFloat64)) : torch::Tensor();
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
      const bool poisoned = nan.step == st.step + 1 && (nan.rank < 0 || nan.rank == mpi.rank());
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
        allreduce_sum(*comm, grad64, bucket);
        flat.grad.copy_(grad64);
      } else {
        if (!local_pos.empty()) {
          auto loss = task->loss(local_pos, local_global, st.step, batch_weight);
          if (poisoned) loss = loss * std::numeric_limits<double>::quiet_NaN();
          loss.backward();
          flat.grad[flat.n] = loss.detach();
        }
        allreduce_sum(*comm, flat.grad, bucket);
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
    checkpoint_epoch(ckpt_dir, fingerprint, flat, opt, st, spec, mpi);
  }

  // ---- the model file: the best epoch's parameters
  {
    torch::NoGradGuard no_grad;
    flat.param.copy_(st.best_param);
  }
  write_model(s, mpi, spec, *task, st, split.val.empty(), fingerprint, ckpt_dir, t_start, load_s, train_seconds,
              trained_samples);
}

void run_train(const TrainSettings& s, const parallel::MpiContext& mpi) {
  if (s.task == "classify" && s.model == "rf") return run_train_forest(s, mpi);
  if (s.task != "classify") return train_model(s, mpi);
  check_settings(s);
  // The members: --ensemble, or (0) chosen from the number of training samples.
  samples::TrainingSet labels;
  parallel::root_first(mpi.world(), [&] { labels = samples::read_training_set_labels(s.samples); });
  if (!mpi.is_root()) labels = samples::read_training_set_labels(s.samples);
  const Split split = make_split(labels.header.tiles, labels.tile, labels.parcel, s);
  TrainSettings r = s;  // the auto choices resolved
  const bool small = split.train.size() < kSmallTrainingSet;
  if (r.series.augment < 0) {
    r.series.augment = small ? 1 : 0;
    if (mpi.is_root())
      log::info(std::string("--augment auto: ") + (small ? "on" : "off") + " for " +
                std::to_string(split.train.size()) + " training samples (on below " +
                std::to_string(kSmallTrainingSet) + ": it helps where samples are few, and slows learning where "
                "they are many; bench/RESULTS.md)");
  }
  if (r.class_weights == "auto") {
    r.class_weights = small ? "none" : "sqrt";
    if (mpi.is_root())
      log::info("--class-weights auto: " + r.class_weights + " for " + std::to_string(split.train.size()) +
                " training samples (none below " + std::to_string(kSmallTrainingSet) + ": weights would multiply "
                "the noise of a few minority samples)");
  }
  int members = s.ensemble;
  if (members == 0) {
    members = small ? kSmallSetMembers : 1;
    if (mpi.is_root())
      log::info("--ensemble auto: " + std::to_string(members) + " member(s) for " + std::to_string(split.train.size()) +
                " training samples (" + std::to_string(kSmallSetMembers) + " below " +
                std::to_string(kSmallTrainingSet) + (members > 1 ? ": on a set this small a model's accuracy depends "
                                                                   "on its seed, the members' average much less)"
                                                                 : ")"));
  }
  r.ensemble = members;
  if (members == 1) return train_model(r, mpi);
  train_ensemble(r, members, labels.header, mpi);
}

}  // namespace s2crop::train
