#pragma once
// The training loop's phases before the epochs (refusals, the model spec, the start of the log) and after them (the
// model file). Private to src/train.
#include <chrono>
#include <cstdint>
#include <string>

#include "checkpoint.hpp"
#include "sampling.hpp"
#include "task.hpp"
#include "s2crop/nn/model_spec.hpp"
#include "s2crop/parallel/mpi.hpp"
#include "s2crop/samples/patch_set.hpp"
#include "s2crop/samples/training_set.hpp"
#include "s2crop/train/trainer.hpp"

namespace s2crop::train {

// Refusals before anything is read, on every rank alike: more threads per rank than a node has cores; an --output
// or checkpoint folder that cannot be written (tested by rank 0).
void check_run(const TrainSettings& s, const parallel::MpiContext& mpi, const std::string& ckpt_dir);

// Test hook: S2CROP_TEST_NAN_LOSS=STEP[:RANK] makes the loss of that optimiser step (1-based) NaN on that rank
// (every rank without one), to test that a diverged training stops on every rank with nothing written.
struct NanHook {
  std::int64_t step = 0;  // 0: none
  int rank = -1;          // -1: every rank
};
NanHook nan_hook();

// The model the settings ask for, on the training set described by `header` (for U-Net tasks, the patch set's
// `patch_header`). Every rank decides identically; a pre-trained encoder (--init) is checked by rank 0 first.
nn::ModelSpec model_spec(const TrainSettings& s, const samples::TrainingSetHeader& header,
                         const samples::PatchSetHeader& patch_header, const parallel::MpiContext& mpi);

// What the start of the log says about the run besides the settings, the split, the task and the model.
struct RunDescription {
  size_t samples = 0, global_batch = 0, steps_per_epoch = 0;
  std::string communicator;  // its name and why it was chosen
  int ranks = 0, threads = 0;
  double load_s = 0;
  bool resumed = false;
};
// Rank 0's lines at the start of the log.
void log_start(const TrainSettings& s, const Split& split, const Task& task, const nn::ModelSpec& spec,
               std::int64_t parameters, const RunDescription& run, const std::string& ckpt_dir, int resumed_epoch);

// True (on every rank) where s.output is already the model of this training (`fingerprint`); throws OutputError where
// it is another model and --overwrite is not given.
bool already_trained(const TrainSettings& s, const parallel::MpiContext& mpi, const std::string& fingerprint);

// Rank 0 writes the model file (with the parameters now in the model: the best epoch's) and the closing lines of the
// log; the other ranks wait for it.
void write_model(const TrainSettings& s, const parallel::MpiContext& mpi, const nn::ModelSpec& spec, Task& task,
                 const TrainState& st, bool no_validation, const std::string& fingerprint, const std::string& ckpt_dir,
                 std::chrono::steady_clock::time_point t_start, double load_s, double train_seconds,
                 std::int64_t trained_samples);

// One model, from the settings to the model file (the loop of trainer.cpp).
void train_model(const TrainSettings& s, const parallel::MpiContext& mpi);

// --ensemble auto: below this many training samples, this many members.
inline constexpr size_t kSmallTrainingSet = 1000;
inline constexpr int kSmallSetMembers = 5;

// `members` LSTMs trained one after the other with seeds derived from s.seed (member 0 keeps it), each into
// <output>.members/ with its own checkpoints (a rerun skips finished members and resumes the interrupted one), then
// joined by rank 0 into one model file (ModelSpec::ensemble; classify averages the members' probabilities).
void train_ensemble(const TrainSettings& s, int members, const samples::TrainingSetHeader& header,
                    const parallel::MpiContext& mpi);

}  // namespace s2crop::train
