#pragma once
// The interface between the training loop and a task, and the four tasks: crop-type classification (task_classify),
// NDVI forecast and gap-fill (task_ndvi), U-Net segmentation (task_segment) and its self-supervised pre-training
// (task_pretrain). Private to src/train.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sampling.hpp"
#include "s2crop/nn/device_torch.hpp"
#include "s2crop/nn/model_spec.hpp"
#include "s2crop/parallel/mpi.hpp"
#include "s2crop/samples/patch_set.hpp"
#include "s2crop/samples/training_set.hpp"
#include "s2crop/train/trainer.hpp"

namespace s2crop::train {

// What the one training loop needs from a task (crop-type classification, NDVI forecast or gap-fill, segmentation,
// pre-training): the model, the weight of a sample in a global batch (known on every rank for every sample, so the
// loss can be normalised by the whole global batch), the loss of this rank's batch members, and the validation sums.
struct Task {
  virtual ~Task() = default;
  // Builds the model (seeded: the same initial weights on every rank) once the data are loaded.
  virtual void build() = 0;
  virtual torch::nn::Module& module() = 0;
  // Moves the model (after build()) and the task's device-resident data to `device`; the batches follow them there.
  virtual void place(const torch::Device& to) {
    module().to(to);
    device = to;
  }
  torch::Device device{torch::kCPU};
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
  // Whether training sample i keeps its labels (segmentation with --label-fraction; the others are left out of
  // the batches).
  virtual bool keeps_labels(std::uint32_t) const { return true; }
};

// The tasks, each reading this rank's shard [shard_begin, shard_end) of the training set (the constructors of
// classify, segment and pretrain all-reduce normalisation statistics: every rank calls them).
std::unique_ptr<Task> make_classify_task(const TrainSettings& settings, const samples::TrainingSet& labels,
                                         nn::ModelSpec spec, const Split& split, size_t shard_begin, size_t shard_end,
                                         const parallel::MpiContext& mpi);
std::unique_ptr<Task> make_ndvi_task(const TrainSettings& settings, const samples::TrainingSet& labels,
                                     nn::ModelSpec spec, size_t shard_begin, size_t shard_end);
std::unique_ptr<Task> make_segment_task(const TrainSettings& settings, samples::PatchSetHeader header,
                                        const samples::PatchSet& all_labels, nn::ModelSpec spec,
                                        const std::vector<std::uint32_t>& train, size_t shard_begin, size_t shard_end,
                                        const parallel::MpiContext& mpi);
std::unique_ptr<Task> make_pretrain_task(const TrainSettings& settings, samples::PatchSetHeader header,
                                         nn::ModelSpec spec, const std::vector<std::uint32_t>& train,
                                         size_t shard_begin, size_t shard_end, const parallel::MpiContext& mpi);

// Segmentation: the names of the U-Net's outputs for the settings and patch set.
std::vector<std::string> segment_target_names(const TrainSettings& s, const samples::PatchSetHeader& h);
// A pre-trained encoder must fit the U-Net being trained. Throws ConfigError naming the file.
void check_init_encoder(const std::string& path, const nn::ModelSpec& spec);

}  // namespace s2crop::train
