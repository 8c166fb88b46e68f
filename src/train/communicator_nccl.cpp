// NCCL gradient communicator (built with -DS2CROP_WITH_NCCL=ON). Talks to CUDA and NCCL directly, without torch, so
// that it builds against any LibTorch. Buffers in device memory (a model trained on the GPU: --device cuda) are
// all-reduced in place; buffers in host memory (a CPU LibTorch on a GPU node) are staged through one device buffer.
#include <cuda_runtime.h>
#include <nccl.h>

#include <string>

#include "s2crop/common/errors.hpp"
#include "s2crop/nn/device.hpp"
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
  void allreduce_sum(float* data, size_t count) override { allreduce(data, count, ncclFloat, sizeof(float)); }
  void allreduce_sum(double* data, size_t count) override { allreduce(data, count, ncclDouble, sizeof(double)); }
  void broadcast(float* data, size_t count, int root) override {
    if (on_device(data)) {
      check_nccl(ncclBroadcast(data, data, count, ncclFloat, root, comm_, stream_), "ncclBroadcast");
      check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
      return;
    }
    stage_in(data, count * sizeof(float));
    check_nccl(ncclBroadcast(buffer_, buffer_, count, ncclFloat, root, comm_, stream_), "ncclBroadcast");
    stage_out(data, count * sizeof(float));
  }
  bool takes_device_memory() const override { return true; }
  std::string name() const override { return "NCCL (GPU " + std::to_string(gpu_) + ")"; }

 private:
  // Device memory of any GPU (the caller's tensors): NCCL reads and writes it in place. Our stream is a blocking
  // stream, so it starts after the kernels LibTorch queued on the legacy default stream that wrote the gradients.
  static bool on_device(const void* p) {
    cudaPointerAttributes a{};
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
      (void)cudaGetLastError();  // plain host memory on old runtimes: clear the sticky error
      return false;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
  }
  void allreduce(void* data, size_t count, ncclDataType_t type, size_t element) {
    if (on_device(data)) {
      check_nccl(ncclAllReduce(data, data, count, type, ncclSum, comm_, stream_), "ncclAllReduce");
      check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
      return;
    }
    stage_in(data, count * element);
    check_nccl(ncclAllReduce(buffer_, buffer_, count, type, ncclSum, comm_, stream_), "ncclAllReduce");
    stage_out(data, count * element);
  }
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

}  // namespace s2crop::train

namespace s2crop::nn {

bool gpu_memory(int index, std::size_t& free_bytes, std::size_t& total_bytes) {
  free_bytes = total_bytes = 0;
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess || cudaSetDevice(index) != cudaSuccess) return false;
  const bool ok = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
  cudaSetDevice(previous);
  return ok;
}

}  // namespace s2crop::nn

namespace s2crop::train {

std::unique_ptr<Communicator> make_nccl_communicator(int gpu, const parallel::MpiContext& mpi) {
  return std::make_unique<NcclCommunicator>(gpu, mpi);
}

}  // namespace s2crop::train
