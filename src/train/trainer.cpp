// The training loop: one data-parallel loop for every task (task.hpp), from the settings to the model file.
#include "s2crop/train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "checkpoint.hpp"
#include "flat_model.hpp"
#include "sampling.hpp"
#include "task.hpp"
#include "s2crop/common/blas.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/hash.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/nn/model_file.hpp"
#include "s2crop/train/communicator.hpp"
#include "s2crop/train/settings.hpp"

namespace fs = std::filesystem;

namespace s2crop::train {

namespace {

using clock_type = std::chrono::steady_clock;

// Bitwise checksum of the parameters: equal on every rank iff the replicas are identical (with overwhelming odds).
std::uint64_t param_hash(const torch::Tensor& param) {
  auto c = param.contiguous();
  return hash::fnv1a(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
}

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
      spec.class_names = segment_target_names(s, patch_labels.header);
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
      parallel::root_first(mpi.world(), [&] { check_init_encoder(g.init_encoder, spec); });
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
