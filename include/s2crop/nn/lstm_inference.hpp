#pragma once
// LSTM layers for inference on the CPU, without autograd: one layer's recurrence over a batch in slices of rows,
// each step one GEMM (h W_hh^T added to the step's input projection) and the fused gate step of nn/lstm_gates where
// it gives LibTorch's bits (else LibTorch's element-wise kernels). Shared by the classifier and the NDVI model.
// Includes LibTorch: only for nn/train/infer sources.
#include <torch/torch.h>

#include "s2crop/nn/lstm_gates.hpp"

namespace s2crop::nn {

// The fused gate step if this process's LibTorch computes a step with the same bits (checked once per process
// against its kernels; the log says which runs), else null. S2CROP_LIBTORCH_GATES=1 keeps LibTorch's kernels.
const LstmGates* checked_lstm_gates();

// Rows of a batch that one thread's recurrence takes at a time: 256 (the slice's gates, states and the recurrent
// weights stay in L2 from step to step); a rank with several threads takes the whole batch, each step split over
// them. Rows are independent and BLAS computes each row of a GEMM the same way whatever the row count and threads,
// so the slicing does not change results.
int64_t recurrence_slice(int64_t batch);

struct LstmLayerRun {
  torch::Tensor projected;                   // [B][T][4H] float32: x W_ih^T for every step, any strides
  torch::Tensor w_hh;                        // [4H][H]
  torch::ScalarType gemm = torch::kFloat32;  // the recurrent GEMM's type (reduced: h cast, product added in float32)
  bool reverse = false;                      // steps T-1 .. 0 (the backward direction of a bidirectional layer)
  LstmGates::CellUpdate cell = LstmGates::CellUpdate::kLibTorch;
  torch::Tensor h_seq;                       // [B][T][H] view receiving every step's h; undefined: not kept
  torch::Tensor c_last;                      // [B][H] view receiving the last cell state (also the working state)
};

// One layer, zero initial state, PyTorch's gate order (i, f, g, o), no bias.
void run_lstm_layer(const LstmLayerRun& layer);

}  // namespace s2crop::nn
