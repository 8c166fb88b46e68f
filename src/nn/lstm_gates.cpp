#include "s2crop/nn/lstm_gates.hpp"

#include <dlfcn.h>

#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace s2crop::nn {

namespace {
// The three steps: LibTorch's kernels' order, the training layer's (c = c * f + i * g, both products rounded), bf16.
enum class Mode { kLibTorch, kSeparateProducts, kBf16 };
}  // namespace

#if defined(__x86_64__)
namespace {

// SLEEF's functions take and return __m256 in registers; only AVX2 code below calls them.
#pragma GCC diagnostic ignored "-Wpsabi"
// GCC 12 flags the _mm512_undefined_* inside its own shift and narrowing intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
using Vec8Fn = __m256 (*)(__m256);
using Vec16Fn = __m512 (*)(__m512);

// LibTorch's sigmoid: 0 - x, exp, + 1, reciprocal (a division).
__attribute__((target("avx2,fma"), always_inline)) inline __m256 sigmoid8(Vec8Fn exp8, __m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(exp8(_mm256_sub_ps(_mm256_setzero_ps(), x)), one));
}
__attribute__((target("avx512f"), always_inline)) inline __m512 sigmoid16(Vec16Fn exp16, __m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(exp16(_mm512_sub_ps(_mm512_setzero_ps(), x)), one));
}

// bf16 precision: the activations inline, without divisions. exp as Cephes' expf (argument clamped to +-80, a
// degree-5 polynomial on x - n ln2, times 2^n: within 2 ULP), the reciprocals as the CPU's estimate refined by one
// Newton step (within 2 ULP), sigmoid(x) = 1 / (1 + exp(-x)), tanh(x) = 1 - 2 / (1 + exp(2x)). Their error, a few
// 1e-7 absolute, is far under bf16's rounding (2^-9 relative); SLEEF's 1-ULP tanh alone cost more than the whole
// step does this way.
struct FastExp {
  static constexpr float kClamp = 80.0f, kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  static constexpr float kP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                  4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
};
__attribute__((target("avx2,fma"), always_inline)) inline __m256 fast_exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-FastExp::kClamp)), _mm256_set1_ps(FastExp::kClamp));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(FastExp::kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(FastExp::kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(FastExp::kLn2Lo), r);
  __m256 p = _mm256_set1_ps(FastExp::kP[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(FastExp::kP[i]));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
  const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(scale));
}
__attribute__((target("avx512f"), always_inline)) inline __m512 fast_exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-FastExp::kClamp)), _mm512_set1_ps(FastExp::kClamp));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(FastExp::kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(FastExp::kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(FastExp::kLn2Lo), r);
  __m512 p = _mm512_set1_ps(FastExp::kP[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(FastExp::kP[i]));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(y, n);
}
// 1 / d for d in [1, e^80 + 1]: the estimate (12 bits on AVX2, 14 on AVX-512) and one Newton step r (2 - d r).
__attribute__((target("avx2,fma"), always_inline)) inline __m256 reciprocal8(__m256 d) {
  const __m256 r = _mm256_rcp_ps(d);
  return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0f)));
}
__attribute__((target("avx512f"), always_inline)) inline __m512 reciprocal16(__m512 d) {
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

template <Mode kMode>
__attribute__((target("avx2,fma"), always_inline)) inline __m256 step_sigmoid8(Vec8Fn exp8, __m256 x) {
  if constexpr (kMode == Mode::kBf16)
    return reciprocal8(_mm256_add_ps(fast_exp8(_mm256_sub_ps(_mm256_setzero_ps(), x)), _mm256_set1_ps(1.0f)));
  return sigmoid8(exp8, x);
}
template <Mode kMode>
__attribute__((target("avx512f"), always_inline)) inline __m512 step_sigmoid16(Vec16Fn exp16, __m512 x) {
  if constexpr (kMode == Mode::kBf16)
    return reciprocal16(_mm512_add_ps(fast_exp16(_mm512_sub_ps(_mm512_setzero_ps(), x)), _mm512_set1_ps(1.0f)));
  return sigmoid16(exp16, x);
}
template <Mode kMode>
__attribute__((target("avx2,fma"), always_inline)) inline __m256 step_tanh8(Vec8Fn tanh8, __m256 x) {
  if constexpr (kMode == Mode::kBf16) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 q = reciprocal8(_mm256_add_ps(fast_exp8(_mm256_add_ps(x, x)), one));
    return _mm256_fnmadd_ps(_mm256_set1_ps(2.0f), q, one);
  }
  return tanh8(x);
}
template <Mode kMode>
__attribute__((target("avx512f"), always_inline)) inline __m512 step_tanh16(Vec16Fn tanh16, __m512 x) {
  if constexpr (kMode == Mode::kBf16) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 q = reciprocal16(_mm512_add_ps(fast_exp16(_mm512_add_ps(x, x)), one));
    return _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), q, one);
  }
  return tanh16(x);
}

// float32 -> bf16 rounded to nearest even, NaN to 0x7FC0 (c10::BFloat16's rule, nn/bf16_gemm.hpp), as 32-bit lanes.
__attribute__((target("avx2,fma"), always_inline)) inline __m256i bf16_bits8(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
  return _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)));
}
__attribute__((target("avx2,fma"), always_inline)) inline void store_bf16x8(std::uint16_t* out, __m256 x) {
  const __m256i r = bf16_bits8(x);  // each value < 2^16: packing without saturation, lanes back in order
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_castsi256_si128(packed));
}
__attribute__((target("avx512f"), always_inline)) inline void store_bf16x16(std::uint16_t* out, __m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_cvtepi32_epi16(r));
}

// Per row, each function over consecutive vectors in its own loop (as LibTorch's kernels run them, but on one row
// in L1 cache instead of the whole batch): back-to-back calls of one SLEEF function overlap in the out-of-order
// core, where interleaving the five calls of an element serialises them (measured: 7.5 against 5.6 ns per element).
// kSeparateProducts: the cell update without FMA. kBf16: tanh from exp, and h also written as bf16 (h_bf16, the next
// step's GEMM input).
template <Mode kMode>
__attribute__((target("avx2,fma"))) void step_avx2(Vec8Fn exp8, Vec8Fn tanh8, const float* gates,
                                                   std::int64_t gates_stride, float* c, std::int64_t c_stride,
                                                   float* h, std::int64_t h_stride, std::uint16_t* h_bf16,
                                                   std::int64_t hb_stride, std::int64_t batch, std::int64_t hidden,
                                                   float* act) {
  for (std::int64_t b = 0; b < batch; ++b) {
    const float* row = gates + b * gates_stride;
    float* cb = c + b * c_stride;
    float* hb = h == nullptr ? nullptr : h + b * h_stride;  // null: bf16 steps that need h in bf16 only
    for (std::int64_t k = 0; k < 2 * hidden; k += 8)
      _mm256_storeu_ps(act + k, step_sigmoid8<kMode>(exp8, _mm256_loadu_ps(row + k)));
    for (std::int64_t k = 2 * hidden; k < 3 * hidden; k += 8)
      _mm256_storeu_ps(act + k, step_tanh8<kMode>(tanh8, _mm256_loadu_ps(row + k)));
    for (std::int64_t k = 3 * hidden; k < 4 * hidden; k += 8)
      _mm256_storeu_ps(act + k, step_sigmoid8<kMode>(exp8, _mm256_loadu_ps(row + k)));
    for (std::int64_t k = 0; k < hidden; k += 8) {
      const __m256 cf = _mm256_mul_ps(_mm256_loadu_ps(cb + k), _mm256_loadu_ps(act + hidden + k));
      const __m256 i = _mm256_loadu_ps(act + k), g = _mm256_loadu_ps(act + 2 * hidden + k);
      if constexpr (kMode == Mode::kSeparateProducts)
        _mm256_storeu_ps(cb + k, _mm256_add_ps(cf, _mm256_mul_ps(i, g)));
      else
        _mm256_storeu_ps(cb + k, _mm256_fmadd_ps(i, g, cf));
    }
    for (std::int64_t k = 0; k < hidden; k += 8) {
      const __m256 tc = step_tanh8<kMode>(tanh8, _mm256_loadu_ps(cb + k));
      const __m256 hv = _mm256_mul_ps(_mm256_loadu_ps(act + 3 * hidden + k), tc);
      if (hb != nullptr) _mm256_storeu_ps(hb + k, hv);
      if constexpr (kMode == Mode::kBf16) store_bf16x8(h_bf16 + b * hb_stride + k, hv);
    }
  }
}

// The same with 16 lanes: SLEEF's 16-lane exp and tanh give the 8-lane ones' results for every float (checked
// exhaustively over all 2^32 inputs on an AVX-512 CPU, 2026-12-07) and the rest is IEEE arithmetic per lane.
template <Mode kMode>
__attribute__((target("avx512f"))) void step_avx512(Vec16Fn exp16, Vec16Fn tanh16, const float* gates,
                                                   std::int64_t gates_stride, float* c, std::int64_t c_stride,
                                                   float* h, std::int64_t h_stride, std::uint16_t* h_bf16,
                                                   std::int64_t hb_stride, std::int64_t batch, std::int64_t hidden,
                                                   float* act) {
  for (std::int64_t b = 0; b < batch; ++b) {
    const float* row = gates + b * gates_stride;
    float* cb = c + b * c_stride;
    float* hb = h == nullptr ? nullptr : h + b * h_stride;  // null: bf16 steps that need h in bf16 only
    for (std::int64_t k = 0; k < 2 * hidden; k += 16)
      _mm512_storeu_ps(act + k, step_sigmoid16<kMode>(exp16, _mm512_loadu_ps(row + k)));
    for (std::int64_t k = 2 * hidden; k < 3 * hidden; k += 16)
      _mm512_storeu_ps(act + k, step_tanh16<kMode>(tanh16, _mm512_loadu_ps(row + k)));
    for (std::int64_t k = 3 * hidden; k < 4 * hidden; k += 16)
      _mm512_storeu_ps(act + k, step_sigmoid16<kMode>(exp16, _mm512_loadu_ps(row + k)));
    for (std::int64_t k = 0; k < hidden; k += 16) {
      const __m512 cf = _mm512_mul_ps(_mm512_loadu_ps(cb + k), _mm512_loadu_ps(act + hidden + k));
      const __m512 i = _mm512_loadu_ps(act + k), g = _mm512_loadu_ps(act + 2 * hidden + k);
      if constexpr (kMode == Mode::kSeparateProducts)
        _mm512_storeu_ps(cb + k, _mm512_add_ps(cf, _mm512_mul_ps(i, g)));
      else
        _mm512_storeu_ps(cb + k, _mm512_fmadd_ps(i, g, cf));
    }
    for (std::int64_t k = 0; k < hidden; k += 16) {
      const __m512 tc = step_tanh16<kMode>(tanh16, _mm512_loadu_ps(cb + k));
      const __m512 hv = _mm512_mul_ps(_mm512_loadu_ps(act + 3 * hidden + k), tc);
      if (hb != nullptr) _mm512_storeu_ps(hb + k, hv);
      if constexpr (kMode == Mode::kBf16) store_bf16x16(h_bf16 + b * hb_stride + k, hv);
    }
  }
}

}  // namespace
#endif

LstmGates::LstmGates(int max_lanes) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    why_ = "the CPU lacks AVX2 or FMA";
    return;
  }
  // The dispatching entry points, as LibTorch calls them: the same variant is chosen for this CPU.
  if (max_lanes >= 16 && __builtin_cpu_supports("avx512f")) {
    exp_ = dlsym(RTLD_DEFAULT, "Sleef_expf16_u10");
    tanh_ = dlsym(RTLD_DEFAULT, "Sleef_tanhf16_u10");
    lanes_ = 16;
  }
  if (!ready()) {
    exp_ = dlsym(RTLD_DEFAULT, "Sleef_expf8_u10");
    tanh_ = dlsym(RTLD_DEFAULT, "Sleef_tanhf8_u10");
    lanes_ = 8;
  }
  if (!ready()) {
    exp_ = tanh_ = nullptr;
    lanes_ = 0;
    why_ = "LibTorch does not export SLEEF's functions (linked statically)";
  }
#else
  (void)max_lanes;
  why_ = "not an x86-64 CPU";
#endif
}

void LstmGates::step(const float* gates, std::int64_t gates_stride, float* c, std::int64_t c_stride, float* h,
                     std::int64_t h_stride, std::int64_t batch, std::int64_t hidden, CellUpdate cell) const {
  if (cell == CellUpdate::kSeparateProducts)
    run<static_cast<int>(Mode::kSeparateProducts)>(gates, gates_stride, c, c_stride, h, h_stride, nullptr, 0, batch,
                                                   hidden);
  else
    run<static_cast<int>(Mode::kLibTorch)>(gates, gates_stride, c, c_stride, h, h_stride, nullptr, 0, batch, hidden);
}

void LstmGates::step_bf16(const float* gates, std::int64_t gates_stride, float* c, std::int64_t c_stride, float* h,
                          std::int64_t h_stride, std::uint16_t* h_bf16, std::int64_t hb_stride, std::int64_t batch,
                          std::int64_t hidden) const {
  run<static_cast<int>(Mode::kBf16)>(gates, gates_stride, c, c_stride, h, h_stride, h_bf16, hb_stride, batch, hidden);
}

template <int kModeIndex>
void LstmGates::run(const float* gates, std::int64_t gates_stride, float* c, std::int64_t c_stride, float* h,
                    std::int64_t h_stride, std::uint16_t* h_bf16, std::int64_t hb_stride, std::int64_t batch,
                    std::int64_t hidden) const {
#if defined(__x86_64__)
  constexpr Mode kMode = static_cast<Mode>(kModeIndex);
  thread_local std::vector<float> act;  // one row's activated gates
  act.resize(static_cast<size_t>(4 * hidden));
  if (lanes_ == 16)
    step_avx512<kMode>(reinterpret_cast<Vec16Fn>(exp_), reinterpret_cast<Vec16Fn>(tanh_), gates, gates_stride, c,
                       c_stride, h, h_stride, h_bf16, hb_stride, batch, hidden, act.data());
  else
    step_avx2<kMode>(reinterpret_cast<Vec8Fn>(exp_), reinterpret_cast<Vec8Fn>(tanh_), gates, gates_stride, c,
                     c_stride, h, h_stride, h_bf16, hb_stride, batch, hidden, act.data());
#else
  (void)gates, (void)gates_stride, (void)c, (void)c_stride, (void)h, (void)h_stride, (void)h_bf16, (void)hb_stride;
  (void)batch, (void)hidden;
#endif
}

}  // namespace s2crop::nn
