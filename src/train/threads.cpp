#include <dlfcn.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "s2crop/train/trainer.hpp"

namespace s2crop::train {

int threads_per_rank(int requested, int ranks_on_node) {
  if (requested > 0) return requested;
  for (const char* var : {"SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"})
    if (const char* v = std::getenv(var))
      if (int n = std::atoi(v); n > 0) return n;
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, cores / std::max(1, ranks_on_node));
}

void use_threads(int n) {
  torch::set_num_threads(n);
  // OpenBLAS keeps its own pool (one thread per core in every rank unless told): match the intra-op count.
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(n);
}

}  // namespace s2crop::train
