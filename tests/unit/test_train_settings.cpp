// train::check_settings: the one range check of the training settings shared by train, ndvi train, segment train
// and pretrain. Every value out of range (NaN and infinities included) is a ConfigError naming the option and the
// value given; the defaults of every command pass.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "s2crop/common/errors.hpp"
#include "s2crop/train/settings.hpp"

using namespace s2crop;
using train::TrainSettings;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TrainSettings settings(const std::string& task = "classify") {
  TrainSettings s;
  s.task = task;
  s.samples = "set.h5";
  s.output = "model.h5";
  if (task == "segment" || task == "pretrain") s.loss = "ce";
  return s;
}

// The ConfigError's message, or "" when the settings pass.
std::string refusal(const TrainSettings& s) {
  try {
    train::check_settings(s);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

void expect_refused(const TrainSettings& s, const std::string& option, const std::string& value) {
  const std::string message = refusal(s);
  EXPECT_NE(message.find("--" + option + " " + value), std::string::npos)
      << "expected a refusal naming --" << option << " " << value << ", got: '" << message << "'";
}

}  // namespace

TEST(TrainSettings, DefaultsOfEveryCommandPass) {
  for (const char* task : {"classify", "forecast", "gapfill", "segment", "pretrain"})
    EXPECT_EQ(refusal(settings(task)), "") << task;
}

TEST(TrainSettings, LearningRateMustBeFiniteAndInZeroToOne) {
  for (double lr : {kNaN, kInf, -kInf, -1.0, -1e-9, 2.0}) {
    auto s = settings();
    s.lr = lr;
    expect_refused(s, "lr", std::isnan(lr) ? "nan" : std::isinf(lr) ? (lr > 0 ? "inf" : "-inf") : "");
  }
  auto s = settings();
  s.lr = 1.0;
  EXPECT_EQ(refusal(s), "");
  s.lr = 0.0;  // no update: the initial weights (bench/unet_bench.sh), with a warning in the log
  EXPECT_EQ(refusal(s), "");
  s.lr = 1e-6;
  EXPECT_EQ(refusal(s), "");
}

TEST(TrainSettings, LoopOptionsOutOfRange) {
  const std::vector<std::pair<std::string, std::function<void(TrainSettings&)>>> cases = {
      {"epochs 0", [](TrainSettings& s) { s.epochs = 0; }},
      {"batch-size 0", [](TrainSettings& s) { s.batch_size = 0; }},
      {"weight-decay -1", [](TrainSettings& s) { s.weight_decay = -1; }},
      {"weight-decay nan", [](TrainSettings& s) { s.weight_decay = kNaN; }},
      {"weight-decay 1000", [](TrainSettings& s) { s.weight_decay = 1000; }},  // lr 2e-3 x 1000 >= 1
      {"patience -1", [](TrainSettings& s) { s.patience = -1; }},
      {"val-every 0", [](TrainSettings& s) { s.val_every = 0; }},
      {"val-fraction -0.5", [](TrainSettings& s) { s.val_fraction = -0.5; }},
      {"val-fraction 1", [](TrainSettings& s) { s.val_fraction = 1; }},
      {"val-fraction nan", [](TrainSettings& s) { s.val_fraction = kNaN; }},
      {"threads -1", [](TrainSettings& s) { s.threads = -1; }},
      {"bucket-mb 0", [](TrainSettings& s) { s.bucket_mb = 0; }},
      {"bucket-mb inf", [](TrainSettings& s) { s.bucket_mb = kInf; }},
      {"max-steps -1", [](TrainSettings& s) { s.max_steps = -1; }},
      {"dropout nan", [](TrainSettings& s) { s.dropout = kNaN; }},
      {"dropout 1", [](TrainSettings& s) { s.dropout = 1; }},
      {"focal-gamma nan", [](TrainSettings& s) { s.focal_gamma = kNaN; }},
      {"focal-gamma -1", [](TrainSettings& s) { s.focal_gamma = -1; }},
  };
  for (auto& [expected, change] : cases) {
    auto s = settings();
    change(s);
    const std::string message = refusal(s);
    EXPECT_NE(message.find("--" + expected), std::string::npos) << expected << ": got '" << message << "'";
  }
}

TEST(TrainSettings, ValidationFractionZeroMeansNoValidationSet) {
  auto s = settings();
  s.val_fraction = 0;
  s.patience = 0;
  EXPECT_EQ(refusal(s), "");
}

TEST(TrainSettings, TaskOptionsOutOfRange) {
  auto gapfill = settings("gapfill");
  gapfill.mask_fraction = kNaN;
  expect_refused(gapfill, "mask-fraction", "nan");

  const std::vector<std::pair<std::string, std::function<void(TrainSettings&)>>> segment_cases = {
      {"label-fraction nan", [](TrainSettings& s) { s.segment.label_fraction = kNaN; }},
      {"label-fraction 0", [](TrainSettings& s) { s.segment.label_fraction = 0; }},
      {"jitter nan", [](TrainSettings& s) { s.segment.jitter = kNaN; }},
      {"jitter -0.1", [](TrainSettings& s) { s.segment.jitter = -0.1; }},
      {"encoder-lr 0", [](TrainSettings& s) { s.segment.encoder_lr = 0; }},
      {"encoder-lr nan", [](TrainSettings& s) { s.segment.encoder_lr = kNaN; }},
      {"micro-batch -1", [](TrainSettings& s) { s.segment.micro_batch = -1; }},
  };
  for (auto& [expected, change] : segment_cases) {
    auto s = settings("segment");
    change(s);
    const std::string message = refusal(s);
    EXPECT_NE(message.find("--" + expected), std::string::npos) << expected << ": got '" << message << "'";
  }
  const std::vector<std::pair<std::string, std::function<void(TrainSettings&)>>> pretrain_cases = {
      {"drop-months 1.5", [](TrainSettings& s) { s.segment.drop_months = 1.5; }},
      {"drop-months nan", [](TrainSettings& s) { s.segment.drop_months = kNaN; }},
      {"reconstruction inf", [](TrainSettings& s) { s.segment.reconstruction = kInf; }},
      {"projection 2", [](TrainSettings& s) { s.segment.projection = 2; }},
  };
  for (auto& [expected, change] : pretrain_cases) {
    auto s = settings("pretrain");
    change(s);
    const std::string message = refusal(s);
    EXPECT_NE(message.find("--" + expected), std::string::npos) << expected << ": got '" << message << "'";
  }
}
