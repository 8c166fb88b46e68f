#include "setup.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>

#include "s2crop/common/allocator.hpp"
#include "s2crop/common/blas.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/nn/model_file.hpp"

namespace fs = std::filesystem;

namespace s2crop::train {

void check_run(const TrainSettings& s, const parallel::MpiContext& mpi, const std::string& ckpt_dir) {
  // More threads per rank than a node has cores is a typo (--threads 1000), not a setting: refused on every rank
  // alike (the smallest node decides), before anything is read.
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  MPI_Allreduce(MPI_IN_PLACE, &cores, 1, MPI_INT, MPI_MIN, mpi.world());
  if (s.threads > cores)
    throw ConfigError("--threads " + std::to_string(s.threads) + ": more threads per rank than the " +
                      std::to_string(cores) + " cores of a node (0: the node's cores shared by its ranks)");
  parallel::root_first(mpi.world(), [&] {
    // An existing model is either this training's, finished (nothing to write), or refused below.
    if (fs::exists(s.output) && !s.overwrite) return;
    check_writable_folder(fs::path(s.output).parent_path().string(), "the model file (--output " + s.output + ")");
    check_writable_folder(ckpt_dir, s.checkpoint_dir.empty() ? "checkpoints (--output " + s.output + ", + .ckpt)"
                                                             : std::string("checkpoints (--checkpoint-dir)"));
  });
}

NanHook nan_hook() {
  NanHook out;
  if (const char* hook = std::getenv("S2CROP_TEST_NAN_LOSS"); hook && *hook) {
    long long step = 0;
    int rank = -1;
    if (std::sscanf(hook, "%lld:%d", &step, &rank) < 1 || step < 1)
      throw ConfigError(std::string("S2CROP_TEST_NAN_LOSS=") + hook + ": expected STEP[:RANK]");
    out.step = step;
    out.rank = rank;
  }
  return out;
}

nn::ModelSpec model_spec(const TrainSettings& s, const samples::TrainingSetHeader& header,
                         const samples::PatchSetHeader& patch_header, const parallel::MpiContext& mpi) {
  const bool pretrain_task = s.task == "pretrain";
  const bool segment_task = s.task == "segment" || pretrain_task;
  const bool ndvi_task = s.task != "classify" && !segment_task;
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
      spec.class_names = segment_target_names(s, patch_header);
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
  return spec;
}

void log_start(const TrainSettings& s, const Split& split, const Task& task, const nn::ModelSpec& spec,
               std::int64_t parameters, const RunDescription& run, const std::string& ckpt_dir, int resumed_epoch) {
  const bool segment_task = s.task == "segment" || s.task == "pretrain";
  const bool ndvi_task = s.task != "classify" && !segment_task;
  log::info("training set " + s.samples + ": " + std::to_string(run.samples) + " samples, " +
            std::to_string(split.train.size()) + " training, " + std::to_string(split.val.size()) +
            " validation; " +
            (segment_task ? task.inputs_text()
                          : "features " + (ndvi_task ? "NDVI,visible,1,month sin/cos" + std::string(spec.bands.empty() ? "" : ",") : "") +
                                join_items(spec.bands, ",") + (spec.ndvi && !ndvi_task ? ",NDVI" : "") + " x 12 months"));
  log::info(task.describe(parameters) + "; " + run.communicator + "; " + std::to_string(run.ranks) + " rank(s) x " +
            std::to_string(run.threads) + " thread(s); global batch " + std::to_string(run.global_batch) + ", " +
            std::to_string(run.steps_per_epoch) + " steps per epoch");
  char line[160];
  std::snprintf(line, sizeof line, "loaded and normalised the shards in %.2f s", run.load_s);
  log::info(line);
  if (auto blas_line = blas::describe(); !blas_line.empty()) log::info(blas_line);
  if (auto malloc_line = allocator::describe(); !malloc_line.empty()) log::info(malloc_line);
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
  if (run.resumed)
    log::info("resumed from " + ckpt_dir + "/checkpoint.pt after epoch " + std::to_string(resumed_epoch));
}

bool already_trained(const TrainSettings& s, const parallel::MpiContext& mpi, const std::string& fingerprint) {
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
    return true;
  }
  return false;
}

void write_model(const TrainSettings& s, const parallel::MpiContext& mpi, const nn::ModelSpec& spec, Task& task,
                 const TrainState& st, bool no_validation, const std::string& fingerprint, const std::string& ckpt_dir,
                 std::chrono::steady_clock::time_point t_start, double load_s, double train_seconds,
                 std::int64_t trained_samples) {
  std::ostringstream provenance;
  // Without a validation set the best epoch is the one with the lowest training loss (the score is its negative).
  provenance << s.config_text << "best_epoch = " << st.best_epoch + 1 << "\n"
             << (no_validation ? "best_training_loss" : task.provenance_key()) << " = "
             << (no_validation ? -st.best_f1 : st.best_f1) << "\nranks = " << mpi.size() << "\n";
  parallel::root_first(mpi.world(), [&] {
    fs::path parent = fs::path(s.output).parent_path();
    if (!parent.empty()) fs::create_directories(parent);
    try {
      nn::save_model(s.output, spec, task.saved_module(), provenance.str(), fingerprint);
    } catch (const OutputError& e) {
      throw OutputError(e.path(), std::string(e.what()).substr(e.path().size() + 2) + ". The checkpoint after epoch " +
                                      std::to_string(st.epoch) + " in " + ckpt_dir +
                                      " is kept: the same command, run again, resumes from it and writes the model");
    }
    double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    char line[300];
    // The benchmark's measure (bench/lstm_bench.sh): samples per second over data loading plus the training steps.
    std::snprintf(line, sizeof line, "epoch throughput incl. data loading: %.1f samples/s (%.2f s loading, %.2f s training)",
                  static_cast<double>(trained_samples) / std::max(load_s + train_seconds, 1e-9), load_s, train_seconds);
    log::info(line);
    std::snprintf(line, sizeof line,
                  "wrote %s (best epoch %d, %s %.4f) in %s; training throughput %.0f samples/s (%lld steps)",
                  s.output.c_str(), st.best_epoch + 1, no_validation ? "training loss" : task.score_name().c_str(),
                  no_validation ? -st.best_f1 : task.score_display(st.best_f1), log::format_duration(total).c_str(),
                  static_cast<double>(trained_samples) / std::max(train_seconds, 1e-9),
                  static_cast<long long>(st.step));
    log::info(line);
    if (!st.best_val_sums.empty()) {
      const std::string report = task.best_report(st.best_val_sums);
      if (!report.empty()) {
        log::info("validation of the best epoch (" + std::to_string(st.best_epoch + 1) + "), per label:");
        std::istringstream lines(report);
        for (std::string l; std::getline(lines, l);) log::info("  " + l);
      }
    }
  });
}

}  // namespace s2crop::train
