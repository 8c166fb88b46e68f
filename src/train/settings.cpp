// The range of every TrainSettings value, checked in one place for the four training commands (train, ndvi train,
// segment train, pretrain): run_train calls check_settings before it reads or computes anything, so a value out of
// range (NaN and infinities included) stops the run with the option's name instead of training into NaN.
#include <cmath>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/train/settings.hpp"

namespace s2crop::train {

namespace {

std::string number_text(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

// The interval [lo, hi] with open ends where asked, as the message writes it: "(0, 1]", ">= 0".
std::string interval_text(double lo, bool lo_open, double hi, bool hi_open) {
  if (std::isinf(hi)) return std::string(lo_open ? "above " : "at least ") + number_text(lo);
  return std::string(lo_open ? "in (" : "in [") + number_text(lo) + ", " + number_text(hi) + (hi_open ? ")" : "]");
}

// A finite number within the interval; NaN fails every comparison and so every check written this way.
void check_number(const char* option, double v, double lo, bool lo_open, double hi, bool hi_open,
                  const std::string& why = "") {
  const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (!ok)
    throw ConfigError(std::string("--") + option + " " + number_text(v) + ": must be a finite number " +
                      interval_text(lo, lo_open, hi, hi_open) + (why.empty() ? "" : " (" + why + ")"));
}

void check_at_least(const char* option, long long v, long long min, const std::string& why = "") {
  if (v < min)
    throw ConfigError(std::string("--") + option + " " + std::to_string(v) + ": must be at least " +
                      std::to_string(min) + (why.empty() ? "" : " (" + why + ")"));
}

constexpr double kInf = HUGE_VAL;

}  // namespace

void check_settings(const TrainSettings& s) {
  const bool pretrain_task = s.task == "pretrain";
  const bool segment_task = s.task == "segment" || pretrain_task;
  const bool ndvi_task = s.task != "classify" && !segment_task;
  if (s.samples.empty()) throw ConfigError("train: no training set given (--samples FILE.h5)");
  if (s.output.empty()) throw ConfigError("train: no output model given (--output MODEL.h5)");

  if (s.model != "lstm" && s.model != "rf")
    throw ConfigError("--model " + s.model + ": must be lstm (the LSTM classifier) or rf (a random forest)");
  if (s.model == "rf") {
    check_at_least("trees", s.forest.trees, 1);
    check_at_least("max-depth", s.forest.max_depth, 1);
    if (s.forest.max_depth > 64) throw ConfigError("--max-depth " + std::to_string(s.forest.max_depth) + ": at most 64");
    check_at_least("min-samples", s.forest.min_samples, 1);
    check_at_least("active-features", s.forest.active_features, 0, "0: the square root of the values per sample");
    check_number("val-fraction", s.val_fraction, 0, false, 1, true, "0: no validation set");
    check_at_least("threads", s.threads, 0, "0: the node's cores shared by its ranks");
    return;  // the loop's options do not apply
  }

  // ---- the loop (every command)
  check_at_least("epochs", s.epochs, 1);
  check_at_least("batch-size", s.batch_size, 1, "samples per rank and step");
  // 0 is allowed on purpose: no update, the model file holds the initial weights (bench/unet_bench.sh's parity
  // check; the log warns); AdamW moves each weight by about lr per step, so above 1 nothing is learnt.
  check_number("lr", s.lr, 0, false, 1, false, "0: no update, the initial weights are written");
  check_number("weight-decay", s.weight_decay, 0, false, kInf, false);
  if (!(s.lr * s.weight_decay < 1))
    throw ConfigError("--weight-decay " + number_text(s.weight_decay) + " with --lr " + number_text(s.lr) +
                      ": lr x weight-decay must be below 1 (each step multiplies the weights by 1 - lr x weight-decay)");
  check_at_least("patience", s.patience, 0, "0: no early stopping");
  check_at_least("val-every", s.val_every, 1);
  check_number("val-fraction", s.val_fraction, 0, false, 1, true, "0: no validation set");
  check_at_least("threads", s.threads, 0, "0: the node's cores shared by its ranks");
  check_number("bucket-mb", s.bucket_mb, 0, true, 1024, false);
  check_at_least("max-steps", s.max_steps, 0, "0: no limit");
  if (s.lr_schedule != "cosine" && s.lr_schedule != "step" && s.lr_schedule != "none")
    throw ConfigError("--lr-schedule must be cosine, step or none");

  if (s.task == "classify") {
    check_at_least("ensemble", s.ensemble, 0, "0: 5 members below 1000 training samples, else 1");
    if (s.ensemble > 100) throw ConfigError("--ensemble " + std::to_string(s.ensemble) + ": at most 100 members");
    check_number("jitter", s.series.jitter, 0, false, 1, true);
    check_number("mask-months", s.series.mask_months, 0, false, 1, true);
    check_number("shift", s.series.shift, 0, false, 1, false, "a share of a month");
  }

  // ---- the models' shared options
  if (s.hidden < 1 || s.layers < 1) throw ConfigError("--hidden and --layers must be positive");
  check_number("dropout", s.dropout, 0, false, 1, true);
  check_number("focal-gamma", s.focal_gamma, 0, false, kInf, false, "0: cross-entropy");
  if (!segment_task && s.loss != "ce" && s.loss != "focal") throw ConfigError("--loss must be ce or focal");
  if (s.class_weights != "none" && s.class_weights != "inverse" && s.class_weights != "sqrt" &&
      s.class_weights != "auto")
    throw ConfigError("--class-weights must be auto, none, inverse or sqrt");

  if (ndvi_task) {
    if (s.task != "forecast" && s.task != "gapfill") throw ConfigError("--task must be forecast or gapfill");
    if (s.task == "forecast" && (s.horizon < 1 || s.horizon > 11))
      throw ConfigError("--horizon must be between 1 and 11 months");
    if (s.task == "forecast" && (s.t_min < 1 || s.t_max > 11 || s.t_min > s.t_max))
      throw ConfigError("--t-min/--t-max: months observed before a forecast must satisfy 1 <= t-min <= t-max <= 11");
    if (s.task == "gapfill") check_number("mask-fraction", s.mask_fraction, 0, true, 1, true);
  }
  if (segment_task) {
    const auto& g = s.segment;
    if (g.head != "multiclass" && g.head != "multilabel") throw ConfigError("--head must be multiclass or multilabel");
    if (g.norm == "batch")
      throw ConfigError("--norm batch: batch-norm statistics would differ between ranks and are not checkpointed; use "
                        "group (default) or none");
    check_number("label-fraction", g.label_fraction, 0, true, 1, false);
    check_number("jitter", g.jitter, 0, false, 1, true);
    if (g.freeze_encoder && g.init_encoder.empty()) throw ConfigError("--freeze-encoder needs --init ENCODER.h5");
    check_number("encoder-lr", g.encoder_lr, 0, true, 1, false, "a share of --lr");
    check_at_least("micro-batch", g.micro_batch, 0, "0: the whole batch");
    if (pretrain_task && (s.batch_size < 2 || s.reproducible))
      throw ConfigError("pretrain normalises the projections over each rank's batch: --batch-size must be at least 2 "
                        "per rank, and --reproducible (one patch at a time) does not apply");
  }
  if (pretrain_task) {
    const auto& g = s.segment;
    if (g.objective != "dense" && g.objective != "global") throw ConfigError("--objective must be dense or global");
    check_number("drop-months", g.drop_months, 0, false, 1, true);
    check_at_least("projection", g.projection, 4);
    check_number("reconstruction", g.reconstruction, 0, false, kInf, false, "0: VICReg alone");
    if (g.objective == "dense" && g.reconstruction > 0 && g.drop_months == 0.0)
      throw ConfigError("--reconstruction needs --drop-months above 0 (no month would be left to reconstruct)");
    if (g.objective == "dense" && g.reconstruction > 0 && g.months.size() == 1)
      throw ConfigError("--reconstruction needs at least 2 --months (a single month has no others to be filled in "
                        "from); pass --reconstruction 0 for VICReg alone");
  }
}

}  // namespace s2crop::train
