#pragma once
// One LSTM layer (no bias, zero initial state, PyTorch's gate order i, f, g, o) as a single autograd node for
// training on CPU. Same function as torch::nn::LSTM's layer; faster because
//   - the backward pass is one fused element-wise loop per step instead of a dozen small kernels and graph nodes;
//   - the weight gradients are two large GEMMs over all steps (dW_hh = dGates^T . h_prev, dW_ih = dGates^T . x)
//     instead of one small GEMM per step, as cuDNN does.
#include <torch/torch.h>

namespace s2crop::nn {

// x [batch][steps][in], w_ih [4H][in], w_hh [4H][H] -> {h of every step [batch][steps][H], last c [batch][H]}.
// Float32 on the CPU takes the fused node above; any other device or type LibTorch's LSTM (cuDNN on a GPU).
std::vector<torch::Tensor> fused_lstm_layer(const torch::Tensor& x, const torch::Tensor& w_ih,
                                            const torch::Tensor& w_hh);

}  // namespace s2crop::nn
