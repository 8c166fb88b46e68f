// The NDVI LSTM: a forecast never sees months after its origin (causal), a not-visible month reaches the model as
// zeros whatever its (gap-filled) value, the gap-fill model sees both directions, and output shapes follow the task.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "s2crop/nn/ndvi_lstm.hpp"

using namespace s2crop;

namespace {
nn::ModelSpec ndvi_spec(const std::string& task) {
  nn::ModelSpec s;
  s.kind = "ndvi_lstm";
  s.task = task;
  s.horizon = task == "forecast" ? 3 : 0;
  s.t_min = 2, s.t_max = 9;
  s.hidden = 16, s.layers = 2, s.dropout = 0;
  return s;
}
}  // namespace

TEST(NdviLstm, FeaturesHideUnobservedMonths) {
  float ndvi[12], out[12 * 5], out2[12 * 5];
  std::uint8_t vis[12];
  for (int m = 0; m < 12; ++m) ndvi[m] = 0.05f * m, vis[m] = m % 3 != 0;
  nn::ndvi_features(ndvi, vis, nullptr, 0, 1, 9, out);
  for (int m = 0; m < 12; ++m) ndvi[m] = vis[m] ? ndvi[m] : 0.99f;  // other gap-filled values
  nn::ndvi_features(ndvi, vis, nullptr, 0, 1, 9, out2);
  for (int i = 0; i < 12 * 5; ++i) EXPECT_EQ(out[i], out2[i]);
  EXPECT_EQ(out[0 * 5 + 0], 0.f);
  EXPECT_EQ(out[0 * 5 + 1], 0.f);
  EXPECT_FLOAT_EQ(out[1 * 5 + 0], 0.05f);
  EXPECT_EQ(out[1 * 5 + 1], 1.f);
  EXPECT_NEAR(out[4 * 5 + 4], 1.0, 1e-6);  // season from September: month 4 is January, cos = 1
}

TEST(NdviLstm, ForecastIsCausal) {
  torch::manual_seed(1);
  nn::NdviLstm model(ndvi_spec("forecast"));
  model->eval();
  auto x = torch::rand({4, 12, 5});
  auto y = model->forward(x);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{4, 12, 3}));
  auto x2 = x.clone();
  x2.narrow(1, 6, 6).uniform_();  // change months 7..12
  auto y2 = model->forward(x2);
  EXPECT_TRUE(torch::equal(y.narrow(1, 0, 6), y2.narrow(1, 0, 6))) << "a forecast from months 1..6 saw later months";
  EXPECT_FALSE(torch::equal(y.narrow(1, 6, 6), y2.narrow(1, 6, 6)));
}

TEST(NdviLstm, GapfillSeesBothDirections) {
  torch::manual_seed(2);
  nn::NdviLstm model(ndvi_spec("gapfill"));
  model->eval();
  auto x = torch::rand({2, 12, 5});
  auto y = model->forward(x);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 12, 1}));
  auto x2 = x.clone();
  x2.narrow(1, 11, 1).uniform_();  // change the last month only
  auto y2 = model->forward(x2);
  EXPECT_FALSE(torch::equal(y.narrow(1, 0, 1), y2.narrow(1, 0, 1))) << "month 1 must see later months";
}

TEST(NdviLstm, GradientsReachEveryParameter) {
  torch::manual_seed(3);
  nn::NdviLstm model(ndvi_spec("gapfill"));
  auto y = model->forward(torch::rand({3, 12, 5}));
  y.pow(2).sum().backward();
  for (auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

TEST(NdviLstm, InferenceGivesForwardsBits) {
  // infer() (nn/lstm_inference, the fused step with separate products where available) against the autograd forward
  // it replaces in `ndvi predict`: bit for bit, both tasks, 1 and 2 layers, hidden 16 and 64 (fused step sizes) and
  // 24 (LibTorch's kernels), batches across several recurrence slices.
  for (const char* task : {"forecast", "gapfill"})
    for (int64_t hidden : {16, 24, 64})
      for (int64_t layers : {1, 2}) {
        auto spec = ndvi_spec(task);
        spec.hidden = hidden, spec.layers = layers;
        torch::manual_seed(hidden + layers);
        nn::NdviLstm model(spec);
        model->eval();
        auto x = torch::randn({600, 12, 5});
        torch::NoGradGuard no_grad;
        EXPECT_TRUE(torch::equal(model->forward(x), model->infer(x)))
            << task << ", hidden " << hidden << ", " << layers << " layers";
      }
}
