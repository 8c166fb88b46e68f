#include "s2crop/nn/lstm_classifier.hpp"

#include <ATen/Version.h>

#include <cstdlib>

#include "s2crop/common/log.hpp"
#include "s2crop/nn/bf16_gemm.hpp"
#include "s2crop/nn/fused_lstm.hpp"
#include "s2crop/nn/lstm_gates.hpp"

namespace s2crop::nn {

namespace {

// Rows per slice of infer()'s recurrence on one thread (see there).
constexpr int64_t kRecurrenceRows = 256;

// One step's element-wise half with LibTorch's kernels on [batch][4H] gates: c, h and tanh_c are [batch][H] views.
void libtorch_gate_step(torch::Tensor& gates, torch::Tensor& c, torch::Tensor& h, torch::Tensor& tanh_c,
                        int64_t hidden) {
  gates.narrow(1, 0, 2 * hidden).sigmoid_();  // PyTorch's gate order: input, forget, cell, output
  gates.narrow(1, 2 * hidden, hidden).tanh_();
  gates.narrow(1, 3 * hidden, hidden).sigmoid_();
  c.mul_(gates.narrow(1, hidden, hidden)).addcmul_(gates.narrow(1, 0, hidden), gates.narrow(1, 2 * hidden, hidden));
  torch::tanh_out(tanh_c, c);
  torch::mul_out(h, gates.narrow(1, 3 * hidden, hidden), tanh_c);
}

// The fused gate step (nn/lstm_gates) where it gives LibTorch's bits, else null: LibTorch's element-wise kernels
// run at AVX2 (at::show_config) and the fused step agrees with them bit for bit on random gates and cell states at
// several scales, checked once per process. S2CROP_LIBTORCH_GATES=1 keeps LibTorch's kernels (for comparisons).
const LstmGates* fused_gates() {
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
      auto g = gates.clone(), c = c0.clone(), h = torch::empty({batch, hidden}), tanh_c = torch::empty_like(h);
      libtorch_gate_step(g, c, h, tanh_c, hidden);
      auto c2 = c0.clone(), h2 = torch::empty_like(h);
      fused.step(gates.data_ptr<float>(), 4 * hidden, c2.data_ptr<float>(), hidden, h2.data_ptr<float>(), hidden,
                 batch, hidden);
      if (!torch::equal(c, c2) || !torch::equal(h, h2))
        return libtorchs("the fused step does not give their bits in this LibTorch build");
    }
    log::root("LSTM gates: one fused pass per step (" + std::to_string(fused.lanes()) +
              " lanes), bit for bit LibTorch's AVX2 kernels (checked)");
    return &fused;
  }();
  return chosen;
}

// oneDNN's bf16 GEMM called directly (nn/bf16_gemm) for --precision bf16, else null; checked once per process.
const Bf16Gemm* bf16_gemm() {
  static const Bf16Gemm* chosen = []() -> const Bf16Gemm* {
    static const Bf16Gemm gemm;
    if (!gemm.ready()) {
      log::root("bf16 LSTM steps through LibTorch's kernels: " + gemm.unavailable());
      return nullptr;
    }
    log::root("bf16 LSTM steps: oneDNN's bf16 GEMM accumulating in float32, the fused gate step");
    return &gemm;
  }();
  return chosen;
}

// --precision bf16 with the fused step and oneDNN's GEMM (LstmClassifierImpl::infer's slices and threads): per layer
// the input projection in one GEMM into float32 (the first layer's from the float32 features with LibTorch's), then
// per step h (bf16) times W_hh (bf16) added in float32 to the step's slice of the projection in place, and the fused
// step writes the cell state, h in bf16 for the next step's GEMM and, below the last layer, the layer's output
// sequence in bf16 (the next layer's projection input). LibTorch's bf16 matmul instead rounds each product to bf16,
// and costs a cast, a dispatch and an allocation per step. `state`: [batch][layers][hidden], the last cell states.
void bf16_recurrence(const torch::Tensor& features, const std::vector<torch::Tensor>& weights, int64_t hidden,
                     int64_t slice, const LstmGates& fused, const Bf16Gemm& gemm, torch::Tensor& state) {
  const int64_t batch = features.size(0), steps = features.size(1), layers = state.size(1), G = 4 * hidden;
  const auto bf16 = features.options().dtype(torch::kBFloat16);
  auto bits = [](const torch::Tensor& t) { return reinterpret_cast<std::uint16_t*>(t.data_ptr<at::BFloat16>()); };
  auto h_scratch = torch::empty({slice, hidden}, features.options());  // h in float32: not needed, written anyway
  auto h_step = torch::empty({slice, hidden}, bf16);                   // the last layer's h between steps
  torch::Tensor below;  // the previous layer's output sequence, bf16 [batch][steps][hidden]
  for (int64_t l = 0; l < layers; ++l) {
    const bool last = l == layers - 1;
    const auto w_ih = weights[static_cast<size_t>(2 * l)], w_hh = weights[static_cast<size_t>(2 * l + 1)].to(bf16);
    torch::Tensor projected;  // [batch][steps][4H], float32, contiguous
    if (l == 0) {
      projected = torch::matmul(features, w_ih.t()).contiguous();
    } else {
      projected = torch::empty({batch, steps, G}, features.options());
      const auto w = w_ih.to(bf16);
      gemm.multiply(batch * steps, G, hidden, bits(below), hidden, bits(w), hidden, projected.data_ptr<float>(), G);
    }
    auto sequence = last ? torch::Tensor() : torch::empty({batch, steps, hidden}, bf16);
    for (int64_t r0 = 0; r0 < batch; r0 += slice) {
      const int64_t rows = std::min(slice, batch - r0);
      auto c = state.select(1, l).narrow(0, r0, rows);
      c.zero_();
      float* cp = c.data_ptr<float>();
      const int64_t cs = c.stride(0);
      float* g0 = projected.data_ptr<float>() + r0 * steps * G;  // step t of row r at (r * steps + t) * 4H
      // h_t of row r: in the output sequence at (r * steps + t) * H, else in h_step (overwritten each step).
      std::uint16_t* hb0 = last ? bits(h_step) : bits(sequence) + r0 * steps * hidden;
      const int64_t hb_row = last ? hidden : steps * hidden, hb_step = last ? 0 : hidden;
      for (int64_t t = 0; t < steps; ++t) {
        float* g_t = g0 + t * G;
        if (t > 0)  // h_0 = 0 adds nothing
          gemm.multiply_add(rows, G, hidden, hb0 + (t - 1) * hb_step, hb_row, bits(w_hh), hidden, g_t, steps * G);
        std::uint16_t* hb_t = hb0 + t * hb_step;
        float* hp = h_scratch.data_ptr<float>();
        at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / G), [&](int64_t b0, int64_t b1) {
          fused.step_bf16(g_t + b0 * steps * G, steps * G, cp + b0 * cs, cs, hp + b0 * hidden, hidden,
                          hb_t + b0 * hb_row, hb_row, b1 - b0, hidden);
        });
      }
    }
    below = sequence;
  }
}

}  // namespace

LstmClassifierImpl::LstmClassifierImpl(const ModelSpec& spec) {
  const int64_t features = spec.n_features(), hidden = spec.hidden, layers = spec.layers;
  input_norm = register_module("input_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({features})));
  // No LSTM bias (as BreizhCrops): the input LayerNorm already centres the features.
  lstm = register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(features, hidden)
                                                     .num_layers(layers)
                                                     .dropout(layers > 1 ? spec.dropout : 0.0)
                                                     .bias(false)
                                                     .batch_first(true)));
  state_norm = register_module("state_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden * layers})));
  head = register_module("head", torch::nn::Linear(hidden * layers, spec.n_classes()));
}

torch::Tensor LstmClassifierImpl::forward(const torch::Tensor& x) {
  auto input = input_norm->forward(x);
  const auto& weights = lstm->all_weights();  // per layer: weight_ih, weight_hh (no bias)
  const int64_t layers = lstm->options.num_layers();
  const double dropout = lstm->options.dropout();
  std::vector<torch::Tensor> cells;
  for (int64_t l = 0; l < layers; ++l) {
    auto out = fused_lstm_layer(input, weights[static_cast<size_t>(2 * l)], weights[static_cast<size_t>(2 * l + 1)]);
    cells.push_back(out[1]);
    // Between layers, as torch::nn::LSTM: dropout on the hidden sequence while training.
    input = (l + 1 < layers && dropout > 0) ? torch::dropout(out[0], dropout, is_training()) : out[0];
  }
  auto state = torch::stack(cells, 1).reshape({x.size(0), -1});  // [batch][layers * hidden], layer-major
  return torch::log_softmax(head->forward(state_norm->forward(state)), 1);
}

torch::Tensor LstmClassifierImpl::infer(const torch::Tensor& x, torch::ScalarType gemm) {
  // On a GPU the per-step loop below would be a dozen kernel launches per step: cuDNN's LSTM does it in one.
  if (!x.is_cpu()) return forward(x);
  const int64_t batch = x.size(0), steps = x.size(1);
  const int64_t hidden = lstm->options.hidden_size(), layers = lstm->options.num_layers();
  auto input = input_norm->forward(x);
  const auto like = input.options();
  const bool reduced = gemm != like.dtype().toScalarType();
  auto state = torch::empty({batch, layers, hidden}, like);  // last cell state of every layer
  // On one thread the recurrence runs over slices of 256 rows: the slice's gates and states and the recurrent weights
  // stay in the core's L2 cache from step to step (2048 rows of hidden 128 are 4 MB of gates alone; 1.25x with the
  // fused gates). Several threads take the whole batch, each step's GEMM and gates split over them (slices of 256
  // per thread ran at 5 300 px/s on 2 threads, the whole batch at 11 500). Rows are independent and BLAS computes
  // each row of a GEMM the same way whatever the row count and the threads, so the results do not change.
  const int64_t slice = at::get_num_threads() > 1 ? batch : std::min<int64_t>(batch, kRecurrenceRows);
  const auto& weights = lstm->all_weights();  // per layer: weight_ih, weight_hh (no bias)
  // The element-wise half of each step in one pass where that gives LibTorch's bits (float32 gates on the CPU).
  const LstmGates* fused = LstmGates::supports(hidden) && like.dtype() == torch::kFloat32 ? fused_gates() : nullptr;
  auto classes = [&] {
    auto flat = state.reshape({batch, layers * hidden});
    return torch::log_softmax(head->forward(state_norm->forward(flat)), 1);
  };
  if (reduced && gemm == torch::kBFloat16 && fused != nullptr && bf16_gemm() != nullptr) {
    bf16_recurrence(input, weights, hidden, slice, *fused, *bf16_gemm(), state);
    return classes();
  }
  auto gates = torch::empty({slice, 4 * hidden}, like);
  auto zeros = torch::zeros({slice, hidden}, like);
  auto h_last = torch::empty({batch, hidden}, like);
  auto tanh_c = torch::empty({slice, hidden}, like);
  // Reduced precision: h cast into, and the recurrent product written into, buffers of the GEMM type.
  auto h_reduced = reduced ? torch::empty({slice, hidden}, like.dtype(gemm)) : torch::Tensor();
  auto product = reduced ? torch::empty({slice, 4 * hidden}, like.dtype(gemm)) : torch::Tensor();
  for (int64_t l = 0; l < layers; ++l) {
    // Every step's input projection in one GEMM, [batch][steps][4H]. The first layer's in float32: the features'
    // full precision keeps reduced-precision maps closest to float32. A later layer's input is the hidden states of
    // reduced-precision recurrences: its projection (H x 4H, as large as the recurrent GEMM) takes the GEMM type
    // too (bf16, 128 x 2: 1.14x faster, classes agreeing with float32 on 99.949 % of pixels against 99.963 %).
    const auto w_ih_t = weights[static_cast<size_t>(2 * l)].t();
    const auto w_hh_t = weights[static_cast<size_t>(2 * l + 1)].t().to(gemm);
    auto projected = (reduced && l > 0) ? torch::matmul(input.to(gemm), w_ih_t.to(gemm)).to(like.dtype())
                                        : torch::matmul(input, w_ih_t);
    const bool last = l == layers - 1;
    auto sequence = last ? torch::Tensor() : torch::empty({batch, steps, hidden}, like);
    for (int64_t r0 = 0; r0 < batch; r0 += slice) {
      const int64_t rows = std::min(slice, batch - r0);
      auto g = gates.narrow(0, 0, rows), tc = tanh_c.narrow(0, 0, rows);
      auto c = state.select(1, l).narrow(0, r0, rows);
      auto p = projected.narrow(0, r0, rows);
      c.zero_();
      torch::Tensor h = zeros.narrow(0, 0, rows);
      for (int64_t t = 0; t < steps; ++t) {
        if (reduced) {  // the projection plus the product, in float32 (the sum is the same in either order)
          auto hr = h_reduced.narrow(0, 0, rows), pr = product.narrow(0, 0, rows);
          hr.copy_(h);
          torch::mm_out(pr, hr, w_hh_t);
          torch::add_out(g, p.select(1, t), pr);
        } else {
          torch::addmm_out(g, p.select(1, t), h, w_hh_t);
        }
        auto h_next = last ? h_last.narrow(0, r0, rows) : sequence.narrow(0, r0, rows).select(1, t);
        if (fused) {
          // Rows over the rank's threads, as LibTorch's element-wise kernels split them (same grain, 32768 values).
          float *gp = g.data_ptr<float>(), *cp = c.data_ptr<float>(), *hp = h_next.data_ptr<float>();
          const int64_t cs = c.stride(0), hs = h_next.stride(0);
          at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / (4 * hidden)), [&](int64_t b0, int64_t b1) {
            fused->step(gp + b0 * 4 * hidden, 4 * hidden, cp + b0 * cs, cs, hp + b0 * hs, hs, b1 - b0, hidden);
          });
        } else
          libtorch_gate_step(g, c, h_next, tc, hidden);
        h = h_next;
      }
    }
    if (!last) input = sequence;
  }
  return classes();
}

}  // namespace s2crop::nn
