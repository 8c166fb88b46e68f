#pragma once
// `s2crop train --model lstm`: the one data-parallel trainer. Torch-free interface.
//
// Data parallelism: every rank loads only its contiguous shard of the training set. Each step draws one global
// batch of batch_size x ranks samples from a seeded, portable permutation of all training samples (the same on
// every rank and for every rank count); each rank computes the loss of the batch members in its shard, normalised
// by the weight of the whole global batch, so the all-reduced (summed) gradient equals the single-process gradient
// of that batch. Parameters and gradients live in one flat buffer each (bucketed all-reduce, fused AdamW), rank 0's
// initial parameters are broadcast. A run on R ranks with per-rank batch B/R follows the run on 1 rank with batch B.
#include <string>
#include <vector>

#include "s2crop/parallel/mpi.hpp"

namespace s2crop::train {

struct TrainSettings {
  // classify: crop-type LSTM classifier (`s2crop train`); forecast | gapfill: NDVI LSTM (`s2crop ndvi train`);
  // segment: U-Net (`s2crop segment train`): the same loop with another task (model, per-sample weight, masked
  // loss, validation score).
  std::string task = "classify";
  // classify: lstm (the LSTM of this file's loop) | rf (a random forest: forest_train.cpp, nn/random_forest.hpp)
  std::string model = "lstm";
  struct Forest {
    int trees = 500;         // grown in parallel over the ranks, tree t from seed and t alone
    int max_depth = 25;      // Sen2Agri's default
    int min_samples = 2;     // a node with fewer training samples is not split
    int active_features = 0; // values tried at each split; 0: the square root of the values per sample
  } forest;
  int horizon = 1;                   // forecast: months predicted after the last observed one
  int t_min = 3, t_max = 9;          // forecast: origins (months observed) the model learns to start from
  double mask_fraction = 0.25;       // gapfill: probability of hiding an observed month from the input
  bool assume_clear = false;         // NDVI tasks: accept a training set without per-month clear flags
  // segment: the U-Net (`s2crop segment train`) on a patch set (samples/patch_set.hpp) given as `samples`;
  // pretrain: its encoder (and decoder), self-supervised (`s2crop pretrain`), on the same kind of patch set.
  struct Segment {
    std::string head = "multiclass";   // multiclass (softmax over crop classes) | multilabel (a sigmoid per label)
    std::vector<std::string> targets;  // multilabel: label layers; crop_type expands to one label per class
    int depth = 3, width = 16, blocks = 2;
    std::string norm = "group", encoder = "plain", upsampling = "transpose";
    std::vector<int> months;           // season months stacked into the input (empty: all 12)
    double label_fraction = 1.0;       // labels of only this share of the training patches (seeded by patch)
    bool augment = true;               // flips, 90-degree rotations, band-wise brightness jitter
    double jitter = 0.1;               // brightness factor in [1 - jitter, 1 + jitter] per band
    std::string init_encoder;          // encoder weights from `s2crop pretrain` (or another U-Net's)
    bool freeze_encoder = false;
    double encoder_lr = 1.0;           // with init_encoder: the encoder's learning rate as a share of --lr
    // Patches per forward/backward pass within a rank's batch (0: the whole batch). Batched convolutions round
    // differently for different batch splits, which Adam amplifies over many steps; with 1, every patch's forward
    // and backward is the same whatever the rank count (the data-parallel equivalence test), at half the speed.
    // Smaller values also bound the activation memory of large patches.
    int micro_batch = 0;
    int projection = 128;              // pretrain: SimSiam projector size
    std::string objective = "dense";   // pretrain: dense (per-pixel embeddings, aligned views) | global (pooled)
    double drop_months = 0.4;          // pretrain: probability of each month being dropped from a view
    double reconstruction = 10.0;      // pretrain, dense: weight of the masked-month reconstruction (0: off)
  } segment;
  // classify (lstm): members of an ensemble averaged by classify (0: 5 below 1000 training samples, else 1)
  int ensemble = 0;
  // classify (lstm): augmentation of each training series, drawn per (sample, step, seed) (train/augment.hpp)
  struct Series {
    int augment = -1;          // -1 auto (on below 1000 training samples: resolved by run_train), 0 off, 1 on
    double jitter = 0.1;       // gain per reflectance band in [1 - jitter, 1 + jitter]
    double mask_months = 0.15; // probability of a month lost to clouds and gap-filled
    double shift = 0.25;       // season shifted by up to this share of a month
  } series;
  std::string samples;               // training set (HDF5)
  std::string output;                // model file to write
  std::string checkpoint_dir;        // default: <output>.ckpt
  std::vector<std::string> tiles;    // use only samples of these tiles (empty: all)
  std::vector<std::string> val_tiles;  // validation = these tiles; else val_fraction of parcels
  double val_fraction = 0.1;
  std::vector<std::string> bands;    // input bands (empty: all bands of the set); NDVI tasks: covariates (empty: none)
  bool ndvi = true;
  int hidden = 128, layers = 2;
  double dropout = 0.2;
  int epochs = 30;
  int batch_size = 128;              // per rank
  double lr = 2e-3, weight_decay = 1e-4;
  std::string lr_schedule = "cosine";  // cosine | step | none
  int patience = 6;                  // early stopping on validation macro-F1 (0: off), counted in validations
  int val_every = 1;                 // validate every this many epochs and after the last
  std::string loss = "ce";           // ce | focal
  double focal_gamma = 2.0;
  // none | inverse | sqrt (inverse square root of frequency) | auto (classify: none below 1000 training samples,
  // where the weights would multiply the noise of a few minority samples; else sqrt; resolved by run_train)
  std::string class_weights = "auto";
  std::string device = "auto";       // auto | cpu | cuda | cuda:N (nn/device.hpp)
  std::string backend = "auto";      // auto | mpi | nccl
  double bucket_mb = 8.0;            // all-reduce bucket size
  std::uint64_t seed = 42;
  int threads = 0;                   // intra-op threads per rank; 0: cores of the node / ranks on the node
  bool overwrite = false;
  bool require_resume = false;       // --resume: a matching checkpoint must exist
  long max_steps = 0;                // stop after this many steps (tests, benchmarks); 0: no limit
  std::string step_log;              // TSV per step (rank 0): step, epoch, loss, lr, parameter checksum, replicas
  bool check_replicas = false;       // compare parameters across ranks after every step (abort if they differ)
  // Each sample's gradient computed alone and the batch's sum formed in double precision (also across ranks), so
  // that a step hardly depends on how the global batch is split over ranks; slower (no batched kernels).
  bool reproducible = false;
  std::string config_text;
};

void run_train(const TrainSettings& settings, const parallel::MpiContext& mpi);
// `train --model rf` (run_train calls it): the random forest on the same inputs, split and normalisation as the LSTM.
// Each rank grows its share of the trees on bootstrap samples of the whole training set; tree t is seeded by the seed
// and t alone, so the forest does not depend on the rank count. Rank 0 writes the model file (kind "rf").
void run_train_forest(const TrainSettings& settings, const parallel::MpiContext& mpi);

// Intra-op threads per rank: `requested` if > 0, else SLURM_CPUS_PER_TASK / OMP_NUM_THREADS, else the node's cores
// shared by the ranks on it.
int threads_per_rank(int requested, int ranks_on_node);
// Sets LibTorch's intra-op threads and OpenBLAS's pool (when OpenBLAS is the BLAS) to `n`.
void use_threads(int n);

}  // namespace s2crop::train
