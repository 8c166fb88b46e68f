#pragma once
// oneDNN's bf16 GEMM with float32 accumulation and output (dnnl_gemm_bf16bf16f32 of the libdnnl LibTorch is linked
// with), called directly: LibTorch's bf16 matmul rounds its result to bf16, and each call pays a dispatch, a cast and
// an allocation that cost more than the product at an LSTM step's size (256 x 512 x 128). Torch-free: callers hand
// raw rows (bf16 as its bit pattern, the upper half of a float32).
#include <cstddef>
#include <cstdint>
#include <string>

namespace s2crop::nn {

class Bf16Gemm {
 public:
  // Finds the function in the process and checks one small product against float arithmetic on the same bf16
  // values; ready() is false otherwise, and unavailable() says why.
  Bf16Gemm();
  bool ready() const { return gemm_ != nullptr; }
  const std::string& unavailable() const { return why_; }
  // C[m][n] = A[m][k] B[n][k]^T, row-major, strides in elements (C is not read); throws Error if oneDNN refuses.
  void multiply(std::int64_t m, std::int64_t n, std::int64_t k, const std::uint16_t* a, std::int64_t lda,
                const std::uint16_t* b, std::int64_t ldb, float* c, std::int64_t ldc) const;
  // C[m][n] += A[m][k] B[n][k]^T.
  void multiply_add(std::int64_t m, std::int64_t n, std::int64_t k, const std::uint16_t* a, std::int64_t lda,
                    const std::uint16_t* b, std::int64_t ldb, float* c, std::int64_t ldc) const;

 private:
  void call(float beta, std::int64_t m, std::int64_t n, std::int64_t k, const std::uint16_t* a, std::int64_t lda,
            const std::uint16_t* b, std::int64_t ldb, float* c, std::int64_t ldc) const;
  void* gemm_ = nullptr;
  std::string why_;
};

// float32 -> bf16 bit patterns rounded to nearest even, NaN to 0x7FC0 (c10::BFloat16's conversion).
std::uint16_t to_bf16(float x);

}  // namespace s2crop::nn
