#include "s2crop/nn/fused_lstm.hpp"

#include <cstdint>

namespace s2crop::nn {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct FusedLstmLayer : public torch::autograd::Function<FusedLstmLayer> {
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w_ih,
                               const torch::Tensor& w_hh) {
    const int64_t B = x.size(0), T = x.size(1), H = w_hh.size(1);
    // Per step, kept for the backward pass: activated gates, cell states (c_0 = 0) and hidden states (h_0 = 0).
    auto projected = torch::matmul(x, w_ih.t()).transpose(0, 1).contiguous();  // [T][B][4H]
    auto gates = torch::empty({T, B, 4 * H});
    auto cells = torch::zeros({T + 1, B, H});
    auto hiddens = torch::zeros({T + 1, B, H});
    auto tanh_cells = torch::empty({T, B, H});
    const auto w_hh_t = w_hh.t();
    for (int64_t t = 0; t < T; ++t) {
      auto g = gates[t];
      torch::addmm_out(g, projected[t], hiddens[t], w_hh_t);
      // ATen's activations are vectorised for the CPU found at run time (AVX2 and up); the cell update is ours.
      g.narrow(1, 0, 2 * H).sigmoid_();
      g.narrow(1, 2 * H, H).tanh_();
      g.narrow(1, 3 * H, H).sigmoid_();
      const float* gp = g.data_ptr<float>();
      const float* c_prev = cells[t].data_ptr<float>();
      float* c = cells[t + 1].data_ptr<float>();
      for (int64_t b = 0; b < B; ++b) {
        const float* row = gp + b * 4 * H;
        for (int64_t k = 0; k < H; ++k) c[b * H + k] = row[H + k] * c_prev[b * H + k] + row[k] * row[2 * H + k];
      }
      auto tc = tanh_cells[t];
      torch::tanh_out(tc, cells[t + 1]);
      auto h = hiddens[t + 1];
      torch::mul_out(h, g.narrow(1, 3 * H, H), tc);
    }
    ctx->save_for_backward({x, w_ih, w_hh, gates, cells, hiddens, tanh_cells});
    auto h_seq = hiddens.narrow(0, 1, T).transpose(0, 1).contiguous();
    return {h_seq, cells[T].clone()};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w_ih = saved[1], &w_hh = saved[2], &gates = saved[3], &cells = saved[4],
               &hiddens = saved[5], &tanh_cells = saved[6];
    const int64_t B = x.size(0), T = x.size(1), H = w_hh.size(1);
    auto grad_h_seq = grads[0].defined() ? grads[0].transpose(0, 1).contiguous() : torch::zeros({T, B, H});
    auto dc_next = grads[1].defined() ? grads[1].contiguous().clone() : torch::zeros({B, H});
    auto dh_next = torch::zeros({B, H});
    auto d_gates = torch::empty({T, B, 4 * H});  // gradient w.r.t. the pre-activation gates
    for (int64_t t = T - 1; t >= 0; --t) {
      const float* g = gates[t].data_ptr<float>();
      const float* c_prev = cells[t].data_ptr<float>();
      const float* tc = tanh_cells[t].data_ptr<float>();
      const float* gh = grad_h_seq[t].data_ptr<float>();
      float* dh = dh_next.data_ptr<float>();
      float* dc = dc_next.data_ptr<float>();
      float* dg = d_gates[t].data_ptr<float>();
      for (int64_t b = 0; b < B; ++b) {
        const float* row = g + b * 4 * H;
        float* drow = dg + b * 4 * H;
        for (int64_t k = 0; k < H; ++k) {
          const int64_t j = b * H + k;
          const float i = row[k], f = row[H + k], gg = row[2 * H + k], o = row[3 * H + k];
          const float h_grad = gh[j] + dh[j];
          const float c_grad = dc[j] + h_grad * o * (1.f - tc[j] * tc[j]);
          drow[k] = c_grad * gg * i * (1.f - i);
          drow[H + k] = c_grad * c_prev[j] * f * (1.f - f);
          drow[2 * H + k] = c_grad * i * (1.f - gg * gg);
          drow[3 * H + k] = h_grad * tc[j] * o * (1.f - o);
          dc[j] = c_grad * f;
        }
      }
      torch::mm_out(dh_next, d_gates[t], w_hh);
    }
    auto dg_flat = d_gates.view({T * B, 4 * H});
    auto grad_w_hh = torch::mm(dg_flat.t(), hiddens.narrow(0, 0, T).reshape({T * B, H}));
    auto x_steps = x.transpose(0, 1).reshape({T * B, x.size(2)});
    auto grad_w_ih = torch::mm(dg_flat.t(), x_steps);
    auto grad_x = torch::mm(dg_flat, w_ih).view({T, B, x.size(2)}).transpose(0, 1).contiguous();
    return {grad_x, grad_w_ih, grad_w_hh};
  }
};

}  // namespace

std::vector<torch::Tensor> fused_lstm_layer(const torch::Tensor& x, const torch::Tensor& w_ih,
                                            const torch::Tensor& w_hh) {
  if (x.is_cpu() && x.scalar_type() == torch::kFloat32) return FusedLstmLayer::apply(x.contiguous(), w_ih, w_hh);
  // GPUs (cuDNN) and reduced precision: LibTorch's own LSTM layer, the same function.
  auto zeros = torch::zeros({1, x.size(0), w_hh.size(1)}, x.options());
  auto out = torch::lstm(x, {zeros, zeros}, {w_ih, w_hh}, /*has_biases=*/false, /*num_layers=*/1, /*dropout=*/0.0,
                         /*train=*/torch::GradMode::is_enabled(), /*bidirectional=*/false, /*batch_first=*/true);
  return {std::get<0>(out), std::get<2>(out)[0]};
}

}  // namespace s2crop::nn
