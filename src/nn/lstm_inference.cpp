#include "s2crop/nn/lstm_inference.hpp"

#include <ATen/Version.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "s2crop/common/log.hpp"

namespace s2crop::nn {

namespace {

constexpr int64_t kRecurrenceRows = 256;

// One step's element-wise half with LibTorch's kernels on [batch][4H] gates: c, h and tanh_c are [batch][H] views.
void libtorch_gate_step(torch::Tensor& gates, torch::Tensor& c, torch::Tensor& h, torch::Tensor& tanh_c,
                        int64_t hidden, LstmGates::CellUpdate cell) {
  gates.narrow(1, 0, 2 * hidden).sigmoid_();  // PyTorch's gate order: input, forget, cell, output
  gates.narrow(1, 2 * hidden, hidden).tanh_();
  gates.narrow(1, 3 * hidden, hidden).sigmoid_();
  const auto i = gates.narrow(1, 0, hidden), f = gates.narrow(1, hidden, hidden);
  const auto g = gates.narrow(1, 2 * hidden, hidden);
  if (cell == LstmGates::CellUpdate::kSeparateProducts)
    c.mul_(f).add_(i * g);
  else
    c.mul_(f).addcmul_(i, g);
  torch::tanh_out(tanh_c, c);
  torch::mul_out(h, gates.narrow(1, 3 * hidden, hidden), tanh_c);
}

}  // namespace

// The fused step is used where LibTorch's element-wise kernels run at AVX2 (at::show_config) and it agrees with them
// bit for bit on random gates and cell states at several scales.
const LstmGates* checked_lstm_gates() {
  static const LstmGates* chosen = []() -> const LstmGates* {
    static const LstmGates fused;
    const char* env = std::getenv("S2CROP_LIBTORCH_GATES");
    auto libtorchs = [](const std::string& why) -> const LstmGates* {
      log::root("LSTM gates: LibTorch's kernels (" + why + ")");
      return nullptr;
    };
    if (env != nullptr && std::string(env) == "1") return libtorchs("S2CROP_LIBTORCH_GATES=1");
    if (!fused.ready()) return libtorchs(fused.unavailable());
    if (at::show_config().find("CPU capability usage: AVX2") == std::string::npos)
      return libtorchs("its element-wise kernels are not the AVX2 ones");
    torch::NoGradGuard no_grad;
    const int64_t batch = 64, hidden = 32;
    auto generator = at::detail::createCPUGenerator(20261207);
    for (double scale : {0.3, 3.0, 30.0}) {
      auto gates = torch::randn({batch, 4 * hidden}, generator) * scale;
      auto c0 = torch::randn({batch, hidden}, generator) * scale;
      for (auto cell : {LstmGates::CellUpdate::kLibTorch, LstmGates::CellUpdate::kSeparateProducts}) {
        auto g = gates.clone(), c = c0.clone(), h = torch::empty({batch, hidden}), tanh_c = torch::empty_like(h);
        libtorch_gate_step(g, c, h, tanh_c, hidden, cell);
        auto c2 = c0.clone(), h2 = torch::empty_like(h);
        fused.step(gates.data_ptr<float>(), 4 * hidden, c2.data_ptr<float>(), hidden, h2.data_ptr<float>(), hidden,
                   batch, hidden, cell);
        if (!torch::equal(c, c2) || !torch::equal(h, h2))
          return libtorchs("the fused step does not give their bits in this LibTorch build");
      }
    }
    log::root("LSTM gates: one fused pass per step (" + std::to_string(fused.lanes()) +
              " lanes), bit for bit LibTorch's AVX2 kernels (checked)");
    return &fused;
  }();
  return chosen;
}

int64_t recurrence_slice(int64_t batch) {
  return at::get_num_threads() > 1 ? batch : std::min<int64_t>(batch, kRecurrenceRows);
}

void run_lstm_layer(const LstmLayerRun& layer) {
  const auto& projected = layer.projected;
  const int64_t batch = projected.size(0), steps = projected.size(1), hidden = layer.w_hh.size(1);
  const auto like = projected.options();
  const bool reduced = layer.gemm != like.dtype().toScalarType();
  const int64_t slice = recurrence_slice(batch);
  const auto w_hh_t = layer.w_hh.t().to(layer.gemm);
  auto gates = torch::empty({slice, 4 * hidden}, like);
  auto zeros = torch::zeros({slice, hidden}, like);
  auto h_scratch = layer.h_seq.defined() ? torch::Tensor() : torch::empty({slice, hidden}, like);
  auto tanh_c = torch::empty({slice, hidden}, like);
  // Reduced precision: h cast into, and the recurrent product written into, buffers of the GEMM type.
  auto h_reduced = reduced ? torch::empty({slice, hidden}, like.dtype(layer.gemm)) : torch::Tensor();
  auto product = reduced ? torch::empty({slice, 4 * hidden}, like.dtype(layer.gemm)) : torch::Tensor();
  const LstmGates* fused =
      LstmGates::supports(hidden) && like.dtype() == torch::kFloat32 ? checked_lstm_gates() : nullptr;
  for (int64_t r0 = 0; r0 < batch; r0 += slice) {
    const int64_t rows = std::min(slice, batch - r0);
    auto g = gates.narrow(0, 0, rows), tc = tanh_c.narrow(0, 0, rows);
    auto c = layer.c_last.narrow(0, r0, rows);
    auto p = projected.narrow(0, r0, rows);
    c.zero_();
    torch::Tensor h = zeros.narrow(0, 0, rows);
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = layer.reverse ? steps - 1 - s : s;
      if (reduced) {  // the projection plus the product, in float32 (the sum is the same in either order)
        auto hr = h_reduced.narrow(0, 0, rows), pr = product.narrow(0, 0, rows);
        hr.copy_(h);
        torch::mm_out(pr, hr, w_hh_t);
        torch::add_out(g, p.select(1, t), pr);
      } else {
        torch::addmm_out(g, p.select(1, t), h, w_hh_t);
      }
      auto h_next = layer.h_seq.defined() ? layer.h_seq.narrow(0, r0, rows).select(1, t) : h_scratch.narrow(0, 0, rows);
      if (fused) {
        // Rows over the rank's threads, as LibTorch's element-wise kernels split them (same grain, 32768 values).
        float *gp = g.data_ptr<float>(), *cp = c.data_ptr<float>(), *hp = h_next.data_ptr<float>();
        const int64_t cs = c.stride(0), hs = h_next.stride(0);
        at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / (4 * hidden)), [&](int64_t b0, int64_t b1) {
          fused->step(gp + b0 * 4 * hidden, 4 * hidden, cp + b0 * cs, cs, hp + b0 * hs, hs, b1 - b0, hidden,
                      layer.cell);
        });
      } else {
        libtorch_gate_step(g, c, h_next, tc, hidden, layer.cell);
      }
      h = h_next;
    }
  }
}

}  // namespace s2crop::nn
