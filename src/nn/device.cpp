#include "s2crop/nn/device.hpp"

#include <unistd.h>

#include <climits>
#include <fstream>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/nn/device_torch.hpp"

namespace s2crop::nn {

DeviceChoice choose_device(const std::string& requested, bool has_cuda, int gpus_on_node, int node_rank,
                           int node_size) {
  check_device_option(requested);
  DeviceChoice d;
  if (requested == "cpu") {
    d.reason = "CPU (requested)";
    return d;
  }
  std::string why_not;
  if (!has_cuda)
    why_not = "this s2crop's LibTorch has no CUDA (build against a CUDA LibTorch: see README, 'GPUs')";
  else if (gpus_on_node <= 0)
    why_not = "no GPU visible on this node (CUDA_VISIBLE_DEVICES, or no --gres=gpu in the job?)";
  const int ordinal = cuda_ordinal(requested);
  if (why_not.empty() && ordinal >= gpus_on_node)
    why_not = "there is no GPU " + std::to_string(ordinal) + " on this node (" + std::to_string(gpus_on_node) +
              " visible)";
  if (!why_not.empty()) {
    if (requested != "auto") throw ConfigError("--device " + requested + ": " + why_not);
    d.reason = "CPU (" + why_not + ")";
    return d;
  }
  d.cuda = true;
  if (ordinal >= 0) {
    d.index = ordinal;
    d.sharing = node_size;
    d.reason = "GPU " + std::to_string(ordinal) + " (requested)";
  } else {
    d.index = node_rank % gpus_on_node;
    d.sharing = node_size / gpus_on_node + (node_size % gpus_on_node > d.index ? 1 : 0);
    d.reason = "GPU " + std::to_string(d.index) + " of " + std::to_string(gpus_on_node) + " on this node (node-local rank " +
               std::to_string(node_rank) + ")";
  }
  if (d.sharing > 1)
    d.reason += ", shared by " + std::to_string(d.sharing) + " ranks of this node (one rank per GPU is faster)";
  return d;
}

bool torch_has_cuda() { return torch::cuda::is_available(); }
int torch_gpus() { return torch_has_cuda() ? static_cast<int>(torch::cuda::device_count()) : 0; }

DeviceChoice resolve_device(const std::string& requested, const parallel::MpiContext& mpi, const std::string& stage,
                            Precision precision) {
  DeviceChoice d;
  std::string error;
  try {
    d = choose_device(requested, torch_has_cuda(), torch_gpus(), mpi.node_rank(), mpi.node_size());
    check_precision(precision, d);
  } catch (const ConfigError& e) {
    char host[HOST_NAME_MAX + 1] = {0};
    ::gethostname(host, sizeof host - 1);
    error = std::string(e.what()) + " (rank " + std::to_string(mpi.rank()) + " on " + host + ")";
  }
  // The first failing rank's message goes to every rank: all stop together, with one message.
  int first = error.empty() ? mpi.size() : mpi.rank();
  MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, mpi.world());
  if (first < mpi.size()) throw AgreedError(parallel::broadcast_string(mpi.world(), error, first));
  const std::int64_t cuda_ranks = parallel::sum(mpi.world(), d.cuda ? 1 : 0);
  if (mpi.is_root())
    log::info(stage + ": device " + d.name() + " on rank 0: " + d.reason + "; " + std::to_string(cuda_ranks) + " of " +
              std::to_string(mpi.size()) + " rank(s) on a GPU");
  else
    log::info(stage + ": rank " + std::to_string(mpi.rank()) + " on device " + d.name() + ": " + d.reason);
  return d;
}

std::string precision_name(Precision p) {
  return p == Precision::Bf16 ? "bf16" : p == Precision::Fp16 ? "fp16" : "fp32";
}

bool cpu_has_native_bf16(const std::string& cpuinfo) {
  std::istringstream lines(cpuinfo);
  std::string line;
  while (std::getline(lines, line)) {
    // x86: "flags : ... avx512_bf16 ... amx_bf16"; Arm: "Features : ... bf16 ..."
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    key.erase(key.find_last_not_of(" \t") + 1);
    if (key != "flags" && key != "Features") continue;
    std::istringstream words(line.substr(colon + 1));
    for (std::string w; words >> w;)
      if (w == "avx512_bf16" || w == "amx_bf16" || w == "bf16") return true;
    return false;  // every core of a node is the same kind: the first flags line tells
  }
  return false;
}

void check_precision(Precision p, const DeviceChoice& device, const std::string& cpuinfo) {
  if (p == Precision::Fp16 && !device.cuda)
    throw ConfigError("--precision fp16 needs a GPU (LibTorch's CPU kernels have no fp16 LSTM/convolutions); on the "
                      "CPU use bf16 or fp32");
  if (p == Precision::Bf16 && !device.cuda && !cpu_has_native_bf16(cpuinfo))
    throw ConfigError("--precision bf16 on the CPU needs AVX512-BF16 or AMX (x86) or BF16 (Arm), which this node's CPU "
                      "lacks (/proc/cpuinfo): LibTorch would emulate bf16, slower than fp32 and less exact; use fp32 "
                      "here, or bf16 on a GPU");
}

void check_precision(Precision p, const DeviceChoice& device) {
  if (p != Precision::Bf16 || device.cuda) return check_precision(p, device, "");
  std::ifstream in("/proc/cpuinfo");
  std::ostringstream text;
  text << in.rdbuf();
  check_precision(p, device, text.str());
}

#ifndef S2CROP_HAVE_NCCL
bool gpu_memory(int, std::size_t& free_bytes, std::size_t& total_bytes) {
  free_bytes = total_bytes = 0;
  return false;
}
#endif

}  // namespace s2crop::nn
