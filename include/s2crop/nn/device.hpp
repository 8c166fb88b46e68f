#pragma once
// Where a rank's model runs (`--device auto|cpu|cuda|cuda:N`) and in which precision it infers
// (`--precision fp32|bf16|fp16`). Torch-free: the CLI validates the options with it; nn/device_torch.hpp turns a
// choice into a torch::Device.
#include <cstddef>
#include <string>

#include "s2crop/common/errors.hpp"
#include "s2crop/parallel/mpi.hpp"

namespace s2crop::nn {

struct DeviceChoice {
  bool cuda = false;
  int index = -1;       // CUDA device ordinal (cuda only)
  int sharing = 1;      // ranks of this node on the same GPU (cuda only)
  std::string reason;   // one line for the log: why this device
  std::string name() const { return cuda ? "cuda:" + std::to_string(index) : "cpu"; }
};

// N of "cuda:N", -1 for "cuda", -2 for anything else. Inline (with check_device_option): the option parsers, also
// built into the fuzz targets without LibTorch, use them.
inline int cuda_ordinal(const std::string& text) {
  if (text == "cuda") return -1;
  if (text.rfind("cuda:", 0) != 0 || text.size() == 5 || text.size() > 9) return -2;
  int n = 0;
  for (size_t i = 5; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return -2;
    n = n * 10 + (text[i] - '0');
  }
  return n;
}

// Throws ConfigError unless `requested` is auto, cpu, cuda or cuda:N (N >= 0).
inline void check_device_option(const std::string& requested) {
  if (requested == "auto" || requested == "cpu" || cuda_ordinal(requested) >= -1) return;
  throw ConfigError("--device must be auto, cpu, cuda or cuda:N (got '" + requested + "')");
}

enum class Precision { Fp32, Bf16, Fp16 };

// fp32 | bf16 | fp16; ConfigError otherwise (int8 with the measured reason s2crop does not offer it). Inline, like
// check_device_option: --precision's parser in the fuzz targets has no LibTorch.
inline Precision parse_precision(const std::string& text) {
  if (text == "fp32") return Precision::Fp32;
  if (text == "bf16") return Precision::Bf16;
  if (text == "fp16") return Precision::Fp16;
  if (text == "int8")
    // Measured (bench/inference_bench.sh, bench/RESULTS.md) with bench/pytorch_lstm.py --int8: LibTorch's dynamic int8
    // LSTM on its quantized engines onednn and qnnpack (Debian's LibTorch 1.13 has no FBGEMM).
    throw ConfigError("--precision int8 is not offered: LibTorch's dynamic int8 LSTM agreed with fp32 on only 99.09 % "
                      "of the demo's held-out pixels (s2crop requires 99.9 %) and ran at 0.27-0.96x of s2crop's fp32 "
                      "speed (bench/RESULTS.md); use bf16 (GPUs, CPUs with AVX512-BF16 or AMX) or fp32");
  throw ConfigError("--precision must be fp32, bf16 or fp16 (got '" + text + "')");
}

// Picks the device of one rank. Pure: unit-tested without GPUs.
//   auto:   the GPU of the node-local rank (node_rank mod gpus: ranks share GPUs when there are more ranks than GPUs
//           on the node) when LibTorch has CUDA and a GPU is visible, else the CPU;
//   cpu:    the CPU;
//   cuda:   like auto, but a ConfigError where LibTorch has no CUDA or the node shows no GPU;
//   cuda:N: GPU N on every rank (ConfigError where there is no GPU N).
DeviceChoice choose_device(const std::string& requested, bool torch_has_cuda, int gpus_on_node, int node_rank,
                           int node_size);

// Whether this LibTorch was built with CUDA, and how many GPUs it sees (0 without CUDA).
bool torch_has_cuda();
int torch_gpus();

// choose_device for this rank with this LibTorch (collective over mpi.world()): a rank that cannot use the device
// asked for stops every rank with the same message (AgreedError), naming the rank and its node, never a hang. Rank
// 0 logs the choice; every rank whose device differs from rank 0's kind logs its own.

// `precision`, when given, is checked against the device chosen (check_precision) inside the same agreement: a node
// whose CPU lacks bf16 stops every rank with one message.
DeviceChoice resolve_device(const std::string& requested, const parallel::MpiContext& mpi, const std::string& stage,
                            Precision precision = Precision::Fp32);

std::string precision_name(Precision p);
// Whether /proc/cpuinfo's text (`cpuinfo`) names a CPU with native bf16 arithmetic: AVX512_BF16 or AMX-BF16 on x86,
// the BF16 extension on Arm.
bool cpu_has_native_bf16(const std::string& cpuinfo);
// ConfigError where the precision cannot run on the device: fp16 needs a GPU (LibTorch's CPU kernels lack it); bf16
// on a CPU needs native bf16 (cpu_has_native_bf16 of `cpuinfo`), else LibTorch emulates it, slower than fp32.
void check_precision(Precision p, const DeviceChoice& device, const std::string& cpuinfo);
// The same with this machine's /proc/cpuinfo.
void check_precision(Precision p, const DeviceChoice& device);

// Free and total memory of a GPU in bytes (false where this build cannot tell: no CUDA runtime linked).
bool gpu_memory(int index, std::size_t& free_bytes, std::size_t& total_bytes);

}  // namespace s2crop::nn
