#pragma once
// The element-wise half of an LSTM step on the CPU, fused into one pass over the batch: the gate activations, the
// cell update and the hidden state. LibTorch runs them as five kernels, each a pass over memory with its own
// dispatch; fused, the gates are read once while in cache. Torch-free: callers hand raw float32 rows.
#include <cstdint>
#include <string>

namespace s2crop::nn {

class LstmGates {
 public:
  // Finds SLEEF's exp and tanh in the process (LibTorch's AVX2 kernels call its 8-lane ones from the shared libsleef
  // it is linked with) on an x86-64 CPU with AVX2 and FMA: the 16-lane ones where the CPU has AVX-512 and max_lanes
  // allows (the same results, faster). ready() is false otherwise, and unavailable() says why.
  explicit LstmGates(int max_lanes = 16);
  bool ready() const { return exp_ != nullptr && tanh_ != nullptr; }
  int lanes() const { return lanes_; }
  const std::string& unavailable() const { return why_; }
  // hidden: a multiple of 16 (LibTorch's vector loops then have no scalar tail, whose libm results differ).
  static bool supports(std::int64_t hidden) { return hidden > 0 && hidden % 16 == 0; }

  // One step for `batch` rows. gates: rows of 4H pre-activations in PyTorch's order (input, forget, cell, output),
  // gates_stride floats apart; c: cell states, updated in place; h: hidden states, written. Per element, the
  // operations of LibTorch's AVX2 kernels in their order: i, f, o = 1 / (exp(0 - x) + 1), g = tanh(x),
  // c = fma(i, g, c * f) (its addcmul_ after mul_), h = o * tanh(c).
  // kSeparateProducts instead: c = c * f + i * g with both products rounded (the order of the training layer,
  // nn/fused_lstm, which the NDVI model's predictions follow).
  enum class CellUpdate { kLibTorch, kSeparateProducts };
  void step(const float* gates, std::int64_t gates_stride, float* c, std::int64_t c_stride, float* h,
            std::int64_t h_stride, std::int64_t batch, std::int64_t hidden,
            CellUpdate cell = CellUpdate::kLibTorch) const;
  // The step of --precision bf16: tanh(x) computed as 1 - 2 / (exp(2x) + 1) (within 1e-7 of SLEEF's, at a tenth of
  // its cost), and h also written as bf16 bit patterns (rounded to nearest even) into h_bf16, the next step's GEMM
  // input. h may be null (only the bf16 copy is written).
  void step_bf16(const float* gates, std::int64_t gates_stride, float* c, std::int64_t c_stride, float* h,
                 std::int64_t h_stride, std::uint16_t* h_bf16, std::int64_t hb_stride, std::int64_t batch,
                 std::int64_t hidden) const;

 private:
  template <int kMode>
  void run(const float* gates, std::int64_t gates_stride, float* c, std::int64_t c_stride, float* h,
           std::int64_t h_stride, std::uint16_t* h_bf16, std::int64_t hb_stride, std::int64_t batch,
           std::int64_t hidden) const;

  void* exp_ = nullptr;
  void* tanh_ = nullptr;
  int lanes_ = 0;
  std::string why_;
};

}  // namespace s2crop::nn
