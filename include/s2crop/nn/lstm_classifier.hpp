#pragma once
// The LSTM crop-type classifier (BreizhCrops' reference architecture): LayerNorm on the input features, a
// multi-layer LSTM over the 12 months, the last cell states of all layers concatenated -> LayerNorm -> linear ->
// log-softmax. Includes LibTorch: only for nn/train/infer sources.
#include <torch/torch.h>

#include "s2crop/nn/model_spec.hpp"

namespace s2crop::nn {

struct LstmClassifierImpl : torch::nn::Module {
  explicit LstmClassifierImpl(const ModelSpec& spec);
  // x: [batch][months][features] (normalised) -> log-probabilities [batch][classes]. The LSTM layers run through
  // fused_lstm_layer (same function as torch::nn::LSTM, whose module holds the parameters and their names).
  torch::Tensor forward(const torch::Tensor& x);
  // The same function for inference only (no autograd): the recurrence runs (on one thread) over slices of 256 rows in
  // preallocated buffers, one GEMM and one fused element-wise pass per step (nn/lstm_gates, bit for bit LibTorch's
  // kernels; LibTorch's five in-place kernels where it cannot be). Equal to forward() up to float rounding; callers
  // hold an InferenceMode guard.
  // `gemm`: the type of the recurrent GEMMs on the CPU (bfloat16 for --precision bf16: their weights and inputs are
  // cast, and those of the input projections after the first layer; the first layer's input projection, the cell
  // state and the element-wise gates stay float32).
  torch::Tensor infer(const torch::Tensor& x, torch::ScalarType gemm = torch::kFloat32);

  torch::nn::LayerNorm input_norm{nullptr};
  torch::nn::LSTM lstm{nullptr};
  torch::nn::LayerNorm state_norm{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(LstmClassifier);

}  // namespace s2crop::nn
