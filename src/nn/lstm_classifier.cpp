#include "s2crop/nn/lstm_classifier.hpp"

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
  auto out = lstm->forward(input_norm->forward(x));
  const auto& cell = std::get<1>(std::get<1>(out));  // [layers][batch][hidden]
  auto state = cell.transpose(0, 1).reshape({x.size(0), -1});
  return torch::log_softmax(head->forward(state_norm->forward(state)), 1);
}

}  // namespace s2crop::nn
