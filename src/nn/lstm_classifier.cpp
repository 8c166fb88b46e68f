#include "s2crop/nn/lstm_classifier.hpp"

#include "s2crop/nn/fused_lstm.hpp"

namespace s2crop::nn {

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
  auto gates = torch::empty({batch, 4 * hidden}, like);
  auto zeros = torch::zeros({batch, hidden}, like);
  auto h_last = torch::empty({batch, hidden}, like);
  auto tanh_c = torch::empty({batch, hidden}, like);
  const auto& weights = lstm->all_weights();  // per layer: weight_ih, weight_hh (no bias)
  for (int64_t l = 0; l < layers; ++l) {
    // Every step's input projection in one GEMM, [batch][steps][4H], in float32: it is the smaller GEMM (features x
    // 4H against H x 4H per step), and the features' full precision keeps reduced-precision maps closest to float32.
    const auto w_ih_t = weights[static_cast<size_t>(2 * l)].t();
    const auto w_hh_t = weights[static_cast<size_t>(2 * l + 1)].t().to(gemm);
    auto projected = torch::matmul(input, w_ih_t);
    const bool last = l == layers - 1;
    auto sequence = last ? torch::Tensor() : torch::empty({batch, steps, hidden}, like);
    auto c = state.select(1, l);
    c.zero_();
    torch::Tensor h = zeros;
    auto i_f = gates.narrow(1, 0, 2 * hidden), g = gates.narrow(1, 2 * hidden, hidden);
    auto i = gates.narrow(1, 0, hidden), f = gates.narrow(1, hidden, hidden), o = gates.narrow(1, 3 * hidden, hidden);
    for (int64_t t = 0; t < steps; ++t) {
      if (reduced) gates.copy_(torch::mm(h.to(gemm), w_hh_t)).add_(projected.select(1, t));
      else torch::addmm_out(gates, projected.select(1, t), h, w_hh_t);
      i_f.sigmoid_();  // PyTorch's gate order: input, forget, cell, output
      g.tanh_();
      o.sigmoid_();
      c.mul_(f).addcmul_(i, g);
      torch::tanh_out(tanh_c, c);
      auto h_next = last ? h_last : sequence.select(1, t);
      torch::mul_out(h_next, o, tanh_c);
      h = h_next;
    }
    if (!last) input = sequence;
  }
  auto flat = state.reshape({batch, layers * hidden});
  return torch::log_softmax(head->forward(state_norm->forward(flat)), 1);
}

}  // namespace s2crop::nn
