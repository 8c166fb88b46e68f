#include "s2crop/common/allocator.hpp"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace s2crop::allocator {

namespace {
constexpr int kMmapThreshold = 256 << 20;
constexpr int kTrimThreshold = 1 << 30;
bool changed = false;

bool user_tuned() {
  if (std::getenv("S2CROP_MALLOC_DEFAULTS") || std::getenv("MALLOC_MMAP_THRESHOLD_") ||
      std::getenv("MALLOC_TRIM_THRESHOLD_"))
    return true;
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  return tunables && std::strstr(tunables, "glibc.malloc.");
}
}  // namespace

void keep_large_buffers() {
  if (user_tuned()) return;
  // Both or neither: a fixed threshold alone disables glibc's dynamic trim threshold, and the freed blocks would be
  // returned to the kernel from the heap instead.
  if (mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1 && mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1) changed = true;
}

std::string describe() {
  return changed ? "malloc: blocks up to 256 MiB from the heap, up to 1 GiB of freed memory kept for reuse "
                   "(S2CROP_MALLOC_DEFAULTS=1 keeps glibc's defaults)"
                 : "";
}

}  // namespace s2crop::allocator
