#pragma once
// Gradient communicators of the data-parallel trainer. Debian's LibTorch (1.13, CPU) ships neither ProcessGroupMPI
// nor ProcessGroupNCCL, so these are ours, over MPI and NCCL directly. Every rank calls the same collectives in the
// same order on buffers of the same size (one fused buffer per bucket). Torch-free.
#include <cstddef>
#include <memory>
#include <string>

#include "s2crop/nn/device.hpp"
#include "s2crop/parallel/mpi.hpp"

namespace s2crop::train {

enum class Backend { Mpi, Nccl };

struct BackendChoice {
  Backend backend = Backend::Mpi;
  int gpu = -1;         // CUDA device of this rank (NCCL only)
  std::string reason;   // one line for the log: why this backend
};

// Picks the backend. requested: "auto" (NCCL when built with it and every rank of the node has its own GPU, else
// MPI), "mpi", or "nccl" (ConfigError if it cannot work). One rank per GPU: the GPU is the node-local rank (from
// MPI_Comm_split_type, never SLURM_LOCALID). Pure function: unit-tested without GPUs.
BackendChoice choose_backend(const std::string& requested, bool nccl_built, int gpus_on_node, int node_rank,
                             int node_size);

// The backend for a model on `device`: "auto" takes MPI when the model is on the CPU (the CPU path), else as above;
// NCCL then all-reduces the device buffers in place on the model's GPU, unless ranks share that GPU (MPI through
// host memory then; a ConfigError with "nccl"). Pure.
BackendChoice choose_backend(const std::string& requested, const nn::DeviceChoice& device, bool nccl_built,
                             int gpus_on_node, int node_rank, int node_size);

// GPUs visible to this process (0 when built without CUDA or when the driver reports none).
int visible_gpus();
bool nccl_built();

class Communicator {
 public:
  virtual ~Communicator() = default;
  // In-place sum over all ranks of `count` floats in host memory, or in device memory where takes_device_memory().
  virtual void allreduce_sum(float* data, size_t count) = 0;
  // The same in double precision: the reproducible mode sums per-sample gradients in double, so that the result
  // hardly depends on the order of the additions (and so on how the batch is split over ranks).
  virtual void allreduce_sum(double* data, size_t count) = 0;
  // `count` floats from `root` to every rank.
  virtual void broadcast(float* data, size_t count, int root) = 0;
  // Whether the collectives take buffers in GPU memory as they are (NCCL); else the caller stages them through host
  // memory (MPI: the CPU path).
  virtual bool takes_device_memory() const { return false; }
  virtual std::string name() const = 0;
};

// Collective over mpi.world() (NCCL shares its ncclUniqueId from rank 0 over MPI).
std::unique_ptr<Communicator> make_communicator(const BackendChoice& choice, const parallel::MpiContext& mpi);

#ifdef S2CROP_HAVE_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(int gpu, const parallel::MpiContext& mpi);
#endif

}  // namespace s2crop::train
