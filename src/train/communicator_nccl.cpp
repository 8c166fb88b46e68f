// NCCL gradient communicator (built with -DS2CROP_WITH_NCCL=ON). Talks to CUDA and NCCL directly, without torch:
// Debian's LibTorch is CPU-only, so gradients live in host memory and are staged through one device buffer per
// communicator; with a CUDA LibTorch the same collectives would take the device pointers directly.
#include <cuda_runtime.h>
#include <nccl.h>

#include <string>

#include "s2crop/common/errors.hpp"
#include "s2crop/train/communicator.hpp"

namespace s2crop::train {

namespace {

void check_cuda(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) throw Error(std::string("CUDA ") + what + ": " + cudaGetErrorString(rc));
}
void check_nccl(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess) throw Error(std::string("NCCL ") + what + ": " + ncclGetErrorString(rc));
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(int gpu, const parallel::MpiContext& mpi) : gpu_(gpu) {
    check_cuda(cudaSetDevice(gpu_), "cudaSetDevice");
    ncclUniqueId id;
    if (mpi.is_root()) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, mpi.world());
    check_nccl(ncclCommInitRank(&comm_, mpi.size(), id, mpi.rank()), "ncclCommInitRank");
    check_cuda(cudaStreamCreate(&stream_), "cudaStreamCreate");
  }
  ~NcclCommunicator() override {
    if (buffer_) cudaFree(buffer_);
    if (stream_) cudaStreamDestroy(stream_);
    if (comm_) ncclCommDestroy(comm_);
  }
  void allreduce_sum(float* data, size_t count) override {
    stage_in(data, count * sizeof(float));
    check_nccl(ncclAllReduce(buffer_, buffer_, count, ncclFloat, ncclSum, comm_, stream_), "ncclAllReduce");
    stage_out(data, count * sizeof(float));
  }
  void allreduce_sum(double* data, size_t count) override {
    stage_in(data, count * sizeof(double));
    check_nccl(ncclAllReduce(buffer_, buffer_, count, ncclDouble, ncclSum, comm_, stream_), "ncclAllReduce");
    stage_out(data, count * sizeof(double));
  }
  void broadcast(float* data, size_t count, int root) override {
    stage_in(data, count * sizeof(float));
    check_nccl(ncclBroadcast(buffer_, buffer_, count, ncclFloat, root, comm_, stream_), "ncclBroadcast");
    stage_out(data, count * sizeof(float));
  }
  std::string name() const override { return "NCCL (GPU " + std::to_string(gpu_) + ")"; }

 private:
  void stage_in(const void* data, size_t bytes) {
    if (bytes > capacity_) {
      if (buffer_) cudaFree(buffer_);
      check_cuda(cudaMalloc(&buffer_, bytes), "cudaMalloc");
      capacity_ = bytes;
    }
    check_cuda(cudaMemcpyAsync(buffer_, data, bytes, cudaMemcpyHostToDevice, stream_), "copy in");
  }
  void stage_out(void* data, size_t bytes) {
    check_cuda(cudaMemcpyAsync(data, buffer_, bytes, cudaMemcpyDeviceToHost, stream_), "copy out");
    check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }
  int gpu_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* buffer_ = nullptr;
  size_t capacity_ = 0;  // bytes
};

}  // namespace

int visible_gpus() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;  // no driver / no device: CPU fallback
  return n;
}

std::unique_ptr<Communicator> make_nccl_communicator(int gpu, const parallel::MpiContext& mpi) {
  return std::make_unique<NcclCommunicator>(gpu, mpi);
}

}  // namespace s2crop::train
