#pragma once
// The NDVI prediction LSTM (`s2crop ndvi`). Input per month: [NDVI x visible, visible, 1, sin and cos of the
// calendar month, covariate bands x 1e-4 x visible] (a month that is not observed enters as zeros with visible = 0: gap-filled composite values never reach
// the model, since linear interpolation would leak future months into a forecast). The constant 1 plays the role
// of the LSTM bias (the fused layer has none).
//   forecast: a causal LSTM; the state after month t (t months observed) -> linear head -> NDVI of months
//             t+1..t+horizon. One forward pass gives the forecasts from every origin t.
//   gapfill:  a bidirectional LSTM; the states around month m -> linear head -> NDVI of month m.
// Output [batch][12][horizon] (forecast; entry [b][t-1][k] predicts month t+k, 0-based t+k) or [batch][12][1].
// Includes LibTorch: only for nn/train/infer sources.
#include <torch/torch.h>

#include "s2crop/nn/model_spec.hpp"

namespace s2crop::nn {

struct NdviLstmImpl : torch::nn::Module {
  explicit NdviLstmImpl(const ModelSpec& spec);
  torch::Tensor forward(const torch::Tensor& x);
  // forward() without autograd for inference: float32 on the CPU runs the layers through nn/lstm_inference (the same
  // bits as forward, in a fraction of its time), anything else forward() itself.
  torch::Tensor infer(const torch::Tensor& x);

  int64_t hidden = 0, layers = 0, directions = 1;
  double dropout = 0;
  std::vector<torch::Tensor> w_ih, w_hh;  // [layer * directions + direction]
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(NdviLstm);

// Features of `n` series (see above): ndvi and visible [series][12], covariates [series][12][n_cov] int16 (may be
// null when n_cov == 0), the season's first calendar month (1-12) -> out [series][12][5 + n_cov].
void ndvi_features(const float* ndvi, const std::uint8_t* visible, const std::int16_t* covariates, int n_cov, size_t n,
                   int season_start_month, float* out);

}  // namespace s2crop::nn
