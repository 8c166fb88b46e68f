#include "s2crop/nn/bf16_gemm.hpp"

#include <dlfcn.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "s2crop/common/errors.hpp"

namespace s2crop::nn {

namespace {

// dnnl.h (oneDNN 1.x-3.x): row-major, C = alpha op(A) op(B) + beta C; dnnl_dim_t is int64_t, 0 is dnnl_success.
using GemmFn = int (*)(char transa, char transb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                       const std::uint16_t* a, std::int64_t lda, const std::uint16_t* b, std::int64_t ldb, float beta,
                       float* c, std::int64_t ldc);

float from_bf16(std::uint16_t b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace

std::uint16_t to_bf16(float x) {
  if (std::isnan(x)) return 0x7FC0;
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

Bf16Gemm::Bf16Gemm() {
  void* fn = dlsym(RTLD_DEFAULT, "dnnl_gemm_bf16bf16f32");
  if (fn == nullptr) {
    why_ = "oneDNN's dnnl_gemm_bf16bf16f32 is not in the process (LibTorch built without oneDNN, or linked statically)";
    return;
  }
  // 5 x 24 x 40 with values whose float products and sums are exact: any transposition or layout mix-up shows.
  const std::int64_t m = 5, n = 24, k = 40;
  std::vector<std::uint16_t> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(n * k));
  for (std::int64_t i = 0; i < m * k; ++i) a[static_cast<size_t>(i)] = to_bf16(static_cast<float>(i % 7 - 3) * 0.5f);
  for (std::int64_t i = 0; i < n * k; ++i) b[static_cast<size_t>(i)] = to_bf16(static_cast<float>(i % 5 - 2) * 0.25f);
  std::vector<float> c(static_cast<size_t>(m * n), 1.0f);
  const int status = reinterpret_cast<GemmFn>(fn)('N', 'T', m, n, k, 1.0f, a.data(), k, b.data(), k, 1.0f, c.data(), n);
  if (status != 0) {
    why_ = "oneDNN's bf16 GEMM refuses on this CPU (status " + std::to_string(status) + ")";
    return;
  }
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      float want = 1.0f;
      for (std::int64_t q = 0; q < k; ++q)
        want += from_bf16(a[static_cast<size_t>(i * k + q)]) * from_bf16(b[static_cast<size_t>(j * k + q)]);
      if (c[static_cast<size_t>(i * n + j)] != want) {
        why_ = "oneDNN's bf16 GEMM gave a wrong product in the check at first use";
        return;
      }
    }
  gemm_ = fn;
}

void Bf16Gemm::multiply(std::int64_t m, std::int64_t n, std::int64_t k, const std::uint16_t* a, std::int64_t lda,
                        const std::uint16_t* b, std::int64_t ldb, float* c, std::int64_t ldc) const {
  call(0.0f, m, n, k, a, lda, b, ldb, c, ldc);
}

void Bf16Gemm::multiply_add(std::int64_t m, std::int64_t n, std::int64_t k, const std::uint16_t* a, std::int64_t lda,
                            const std::uint16_t* b, std::int64_t ldb, float* c, std::int64_t ldc) const {
  call(1.0f, m, n, k, a, lda, b, ldb, c, ldc);
}

void Bf16Gemm::call(float beta, std::int64_t m, std::int64_t n, std::int64_t k, const std::uint16_t* a,
                    std::int64_t lda, const std::uint16_t* b, std::int64_t ldb, float* c, std::int64_t ldc) const {
  if (m == 0) return;
  const int status = reinterpret_cast<GemmFn>(gemm_)('N', 'T', m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  if (status != 0)
    throw Error("oneDNN's bf16 GEMM failed (status " + std::to_string(status) + ", " + std::to_string(m) + " x " +
                std::to_string(n) + " x " + std::to_string(k) + ")");
}

}  // namespace s2crop::nn
