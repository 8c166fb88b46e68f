#pragma once
// glibc's malloc serves blocks above its mmap threshold (at most 32 MiB with the dynamic threshold) from fresh
// mappings and unmaps them on free. A tensor of that size allocated per batch (the LSTM's input projection of 2048
// series: 50 MB) is then page-faulted in and zeroed by the kernel at every batch: on the VMs of these clusters that
// was half of classify's time. Keeping such blocks in the heap makes the steady state allocation-free without
// changing a single arithmetic operation.
#include <string>

namespace s2crop::allocator {

// Call first thing in main(). Raises the mmap threshold to 256 MiB (larger buffers, such as a composite block,
// still get their own mapping) and keeps up to 1 GiB of freed heap instead of returning it to the kernel. Leaves
// glibc alone where the user tuned it (GLIBC_TUNABLES with glibc.malloc, MALLOC_MMAP_THRESHOLD_,
// MALLOC_TRIM_THRESHOLD_) or set S2CROP_MALLOC_DEFAULTS=1.
void keep_large_buffers();

// One line for the log ("" where nothing was changed).
std::string describe();

}  // namespace s2crop::allocator
