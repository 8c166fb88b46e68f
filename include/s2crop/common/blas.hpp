#pragma once
// OpenBLAS picks its kernels from the CPU model; on virtual machines that hide the model (a "generic Intel Xeon
// Processor") it falls back to its Prescott (SSE3) kernels although the CPU has AVX2 and FMA: the LSTM's SGEMMs then
// run at half speed or less. OpenBLAS reads OPENBLAS_CORETYPE only when it is loaded, so the fix is to set it and
// re-execute the program before anything else runs.
#include <string>

namespace s2crop::blas {

// Call first thing in main(), before MPI_Init: if OpenBLAS chose a kernel set older than the CPU supports and the
// user did not set OPENBLAS_CORETYPE (or S2CROP_KEEP_BLAS_CORETYPE), sets it and execs the program again with the
// same arguments. Returns normally otherwise.
void ensure_matching_kernels(char** argv);

// One line for the log: which kernels OpenBLAS uses and, after a re-exec, why (empty without OpenBLAS).
std::string describe();

}  // namespace s2crop::blas
