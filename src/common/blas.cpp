#include "s2crop/common/blas.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace s2crop::blas {

namespace {

const char* core_name() {
  using CoreName = char* (*)();
  auto fn = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return fn ? fn() : nullptr;
}

// Kernel sets OpenBLAS falls back to when it does not recognise the CPU model.
bool is_fallback(const char* name) {
  for (const char* old : {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Katmai", "Banias"})
    if (!strcasecmp(name, old)) return true;
  return false;
}

constexpr const char* kMarker = "S2CROP_BLAS_CORETYPE_SET";

}  // namespace

void ensure_matching_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("S2CROP_KEEP_BLAS_CORETYPE") || std::getenv(kMarker)) return;
  const char* name = core_name();
  if (!name || !is_fallback(name)) return;
  __builtin_cpu_init();
  const char* better = nullptr;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    better = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    better = "Haswell";
  if (!better) return;
  setenv("OPENBLAS_CORETYPE", better, 1);
  setenv(kMarker, name, 1);
  execv("/proc/self/exe", argv);  // only returns on failure: carry on with the kernels we have
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv(kMarker);
}

std::string describe() {
  const char* name = core_name();
  if (!name) return "";
  std::string line = std::string("OpenBLAS kernels: ") + name;
  if (const char* was = std::getenv(kMarker))
    line += std::string(" (OpenBLAS had chosen ") + was + " for this CPU, which has " +
            (std::strcmp(name, "SkylakeX") == 0 ? "AVX-512" : "AVX2/FMA") +
            ": set OPENBLAS_CORETYPE; S2CROP_KEEP_BLAS_CORETYPE=1 keeps OpenBLAS's choice)";
  return line;
}

}  // namespace s2crop::blas
