#include "s2crop/nn/ndvi_lstm.hpp"

#include <cmath>

#include "s2crop/nn/fused_lstm.hpp"
#include "s2crop/nn/lstm_inference.hpp"

namespace s2crop::nn {

NdviLstmImpl::NdviLstmImpl(const ModelSpec& spec)
    : hidden(spec.hidden), layers(spec.layers), directions(spec.task == "gapfill" ? 2 : 1), dropout(spec.dropout) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden));
  for (int64_t l = 0; l < layers; ++l)
    for (int64_t d = 0; d < directions; ++d) {
      const int64_t in = l == 0 ? spec.n_features() : hidden * directions;
      const std::string suffix = "_l" + std::to_string(l) + (d ? "_reverse" : "");
      w_ih.push_back(register_parameter("weight_ih" + suffix, (torch::rand({4 * hidden, in}) * 2 - 1) * bound));
      w_hh.push_back(register_parameter("weight_hh" + suffix, (torch::rand({4 * hidden, hidden}) * 2 - 1) * bound));
    }
  const int64_t out = spec.task == "forecast" ? spec.horizon : 1;
  head = register_module("head", torch::nn::Linear(hidden * directions, out));
}

torch::Tensor NdviLstmImpl::forward(const torch::Tensor& x) {
  torch::Tensor input = x;
  for (int64_t l = 0; l < layers; ++l) {
    std::vector<torch::Tensor> outs;
    for (int64_t d = 0; d < directions; ++d) {
      const size_t k = static_cast<size_t>(l * directions + d);
      if (d == 0) {
        outs.push_back(fused_lstm_layer(input, w_ih[k], w_hh[k])[0]);
      } else {
        auto rev = fused_lstm_layer(input.flip({1}), w_ih[k], w_hh[k])[0];
        outs.push_back(rev.flip({1}));
      }
    }
    auto h = directions == 1 ? outs[0] : torch::cat(outs, 2);
    input = (l + 1 < layers && dropout > 0) ? torch::dropout(h, dropout, is_training()) : h;
  }
  return head->forward(input);
}

torch::Tensor NdviLstmImpl::infer(const torch::Tensor& x) {
  if (!x.is_cpu() || x.scalar_type() != torch::kFloat32 || is_training()) return forward(x);
  const int64_t batch = x.size(0), steps = x.size(1);
  torch::Tensor input = x.contiguous();
  auto c_last = torch::empty({batch, hidden});
  for (int64_t l = 0; l < layers; ++l) {
    // Both directions' h side by side, as forward()'s concatenation; the backward direction runs its steps in
    // reverse over the same projection (forward() flips the input: the same rows, so the same GEMM results).
    auto out = torch::empty({batch, steps, hidden * directions});
    for (int64_t d = 0; d < directions; ++d) {
      const size_t k = static_cast<size_t>(l * directions + d);
      LstmLayerRun run;
      run.projected = torch::matmul(input, w_ih[k].t());
      run.w_hh = w_hh[k];
      run.reverse = d == 1;
      run.cell = LstmGates::CellUpdate::kSeparateProducts;  // fused_lstm_layer's cell update
      run.h_seq = out.narrow(2, d * hidden, hidden);
      run.c_last = c_last;
      run_lstm_layer(run);
    }
    input = out;
  }
  return head->forward(input);
}

void ndvi_features(const float* ndvi, const std::uint8_t* visible, const std::int16_t* covariates, int n_cov, size_t n,
                   int season_start_month, float* out) {
  const size_t nf = 5 + static_cast<size_t>(n_cov);
  for (size_t i = 0; i < n * 12; ++i) {
    const float v = visible[i] ? 1.f : 0.f;
    float* o = out + i * nf;
    o[0] = v * ndvi[i];
    o[1] = v;
    o[2] = 1.f;
    const double angle = 2.0 * M_PI * static_cast<double>((season_start_month - 1 + static_cast<int>(i % 12)) % 12) / 12.0;
    o[3] = static_cast<float>(std::sin(angle));
    o[4] = static_cast<float>(std::cos(angle));
    for (int c = 0; c < n_cov; ++c) o[5 + c] = v * 1e-4f * static_cast<float>(covariates[i * n_cov + c]);
  }
}

}  // namespace s2crop::nn
