#pragma once
// Checkpoints of the training loop (resume at an epoch boundary) and the text that identifies a run. Private to
// src/train.
#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "flat_model.hpp"
#include "s2crop/nn/model_spec.hpp"
#include "s2crop/parallel/mpi.hpp"
#include "s2crop/train/trainer.hpp"

namespace s2crop::train {

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

std::string fingerprint_text(const TrainSettings& s, const nn::ModelSpec& spec, int ranks, std::uintmax_t samples_size);

// Rank 0, before anything is read: `folder` exists (or is created) and takes a new file, so that an unwritable
// --output or --checkpoint-dir stops the run before the training rather than after it. A folder created only for
// this test is removed again (the run creates it when it writes there).
void check_writable_folder(const std::string& folder, const std::string& what);

void save_checkpoint(const std::string& dir, const std::string& fingerprint, const FlatModel& flat,
                     const FusedAdamW& opt, const TrainState& st, const nn::ModelSpec& spec);

// Loads the checkpoint into `flat`, `opt`, `st`. False if there is none; throws InputError if it is damaged or
// from other settings (nothing is modified then).
bool load_checkpoint(const std::string& dir, const std::string& fingerprint, FlatModel& flat, FusedAdamW& opt,
                     TrainState& st, int ranks);

// Prepares the checkpoint folder (emptied with --overwrite) and loads its checkpoint where there is one, on every
// rank, with this rank's dropout RNG state. True if resumed; a damaged or foreign checkpoint, or none with --resume,
// stops every rank with one message.
bool resume(const TrainSettings& s, const parallel::MpiContext& mpi, const std::string& ckpt_dir,
            const std::string& fingerprint, FlatModel& flat, FusedAdamW& opt, TrainState& st);

// The checkpoint at the end of an epoch: rank 0 writes it, with every rank's dropout RNG state (collective).
void checkpoint_epoch(const std::string& ckpt_dir, const std::string& fingerprint, const FlatModel& flat,
                      const FusedAdamW& opt, TrainState& st, const nn::ModelSpec& spec,
                      const parallel::MpiContext& mpi);

}  // namespace s2crop::train
