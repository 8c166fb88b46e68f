// The LSTM classifier: the in-place inference path equals the autograd forward; features and NDVI are right; the
// model file round-trips.
#include <gtest/gtest.h>
#include <mpi.h>
#include <ATen/Version.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>

#include "s2crop/common/errors.hpp"
#include "s2crop/nn/bf16_gemm.hpp"
#include "s2crop/nn/fused_lstm.hpp"
#include "s2crop/nn/lstm_classifier.hpp"
#include "s2crop/nn/lstm_gates.hpp"
#include "s2crop/nn/model_file.hpp"

using namespace s2crop;

namespace {
nn::ModelSpec spec(int layers) {
  nn::ModelSpec s;
  s.bands = {"B02", "B03", "B04", "B08"};
  s.ndvi = true;
  s.ndvi_nir = "B08";
  s.hidden = 24;
  s.layers = layers;
  s.dropout = 0.0;
  s.class_names = {"a", "b", "c", "d", "e"};
  return s;
}
}  // namespace

TEST(LstmClassifier, InferenceEqualsForward) {
  for (int layers : {1, 2, 3}) {
    torch::manual_seed(layers);
    nn::LstmClassifier model(spec(layers));
    model->eval();
    auto x = torch::randn({37, 12, 5});
    torch::NoGradGuard no_grad;
    auto a = model->forward(x);
    auto b = model->infer(x);
    ASSERT_EQ(a.sizes(), b.sizes());
    EXPECT_LT((a - b).abs().max().item<float>(), 1e-5f) << layers << " layers";
    EXPECT_NEAR(a.exp().sum(1).mean().item<float>(), 1.f, 1e-5f);
  }
}

TEST(LstmGates, OneStepIsLibTorchsBitForBit) {
  // The fused gate step, with 8 lanes and with 16 where the CPU has AVX-512, against LibTorch's element-wise kernels
  // as infer() ran them before it (the reference), on 4000 rows of hidden 128 with cell and hidden states inside
  // larger rows (as infer's layer and sequence views), from gates near 0 to saturated ones.
  if (at::show_config().find("CPU capability usage: AVX2") == std::string::npos)
    GTEST_SKIP() << "LibTorch's element-wise kernels are not its AVX2 ones: infer() keeps them";
  ASSERT_TRUE(nn::LstmGates::supports(128));
  EXPECT_FALSE(nn::LstmGates::supports(24));
  int tested = 0;
  for (int lanes : {8, 16}) {
    const nn::LstmGates fused(lanes);
    if (!fused.ready()) GTEST_SKIP() << "fused LSTM gates unavailable: " << fused.unavailable();
    if (fused.lanes() != lanes) continue;  // no AVX-512
    ++tested;
    torch::NoGradGuard no_grad;
    torch::manual_seed(17);
    const int64_t batch = 4000, hidden = 128, layers = 2, steps = 3;
    for (double scale : {0.01, 0.5, 2.0, 8.0, 100.0}) {
      auto gates = torch::randn({batch, 4 * hidden}) * scale;
      auto c0 = torch::randn({batch, hidden}) * scale;
      // Reference: LibTorch's kernels in place, as infer() ran them.
      auto g = gates.clone(), c = c0.clone(), h = torch::empty({batch, hidden}), tanh_c = torch::empty_like(h);
      g.narrow(1, 0, 2 * hidden).sigmoid_();
      g.narrow(1, 2 * hidden, hidden).tanh_();
      g.narrow(1, 3 * hidden, hidden).sigmoid_();
      c.mul_(g.narrow(1, hidden, hidden)).addcmul_(g.narrow(1, 0, hidden), g.narrow(1, 2 * hidden, hidden));
      torch::tanh_out(tanh_c, c);
      torch::mul_out(h, g.narrow(1, 3 * hidden, hidden), tanh_c);
      // Fused, with c one layer of [batch][layers][hidden] and h one step of [batch][steps][hidden].
      auto state = torch::zeros({batch, layers, hidden}), sequence = torch::zeros({batch, steps, hidden});
      auto c2 = state.select(1, 1), h2 = sequence.select(1, 2);
      c2.copy_(c0);
      fused.step(gates.data_ptr<float>(), 4 * hidden, c2.data_ptr<float>(), c2.stride(0), h2.data_ptr<float>(),
                 h2.stride(0), batch, hidden);
      EXPECT_TRUE(torch::equal(c, c2)) << "cell states differ at scale " << scale << ", " << lanes << " lanes";
      EXPECT_TRUE(torch::equal(h, h2)) << "hidden states differ at scale " << scale << ", " << lanes << " lanes";
      // The training layer's cell update (nn/fused_lstm: c * f + i * g, both products rounded, no FMA).
      auto c3 = c0.clone(), h3 = torch::empty({batch, hidden});
      auto c_ref = c0 * g.narrow(1, hidden, hidden) + g.narrow(1, 0, hidden) * g.narrow(1, 2 * hidden, hidden);
      fused.step(gates.data_ptr<float>(), 4 * hidden, c3.data_ptr<float>(), hidden, h3.data_ptr<float>(), hidden,
                 batch, hidden, nn::LstmGates::CellUpdate::kSeparateProducts);
      EXPECT_TRUE(torch::equal(c3, c_ref)) << "separate products: cell states differ at scale " << scale;
      EXPECT_TRUE(torch::equal(h3, g.narrow(1, 3 * hidden, hidden) * c_ref.tanh())) << "at scale " << scale;
      EXPECT_EQ(state.select(1, 0).abs().sum().item<float>(), 0.f) << "wrote outside its layer";
      EXPECT_EQ(sequence.narrow(1, 0, 2).abs().sum().item<float>(), 0.f) << "wrote outside its step";
    }
  }
  EXPECT_GE(tested, 1);
}

TEST(LstmGates, Bf16StepIsWithinBf16OfTheExactOneAndRoundsHAsLibTorch) {
  // --precision bf16's step (exp-based tanh, reciprocals by estimate and Newton step) against the exact step, from
  // gates near 0 to saturated ones; its bf16 copy of h is LibTorch's float -> bf16 conversion of its float h.
  const nn::LstmGates fused;
  if (!fused.ready()) GTEST_SKIP() << "fused LSTM gates unavailable: " << fused.unavailable();
  torch::NoGradGuard no_grad;
  torch::manual_seed(23);
  const int64_t batch = 2000, hidden = 64;
  for (double scale : {0.001, 0.5, 3.0, 30.0, 1000.0}) {
    auto gates = torch::randn({batch, 4 * hidden}) * scale;
    auto c0 = torch::randn({batch, hidden}) * scale;
    auto c = c0.clone(), h = torch::empty({batch, hidden});
    fused.step(gates.data_ptr<float>(), 4 * hidden, c.data_ptr<float>(), hidden, h.data_ptr<float>(), hidden, batch,
               hidden);
    auto c2 = c0.clone(), h2 = torch::empty({batch, hidden});
    auto hb = torch::empty({batch, hidden}, torch::kBFloat16);
    fused.step_bf16(gates.data_ptr<float>(), 4 * hidden, c2.data_ptr<float>(), hidden, h2.data_ptr<float>(), hidden,
                    reinterpret_cast<std::uint16_t*>(hb.data_ptr<at::BFloat16>()), hidden, batch, hidden);
    EXPECT_LT(((c2 - c).abs() / (c.abs() + 1)).max().item<float>(), 1e-6f) << "scale " << scale;
    EXPECT_LT((h2 - h).abs().max().item<float>(), 1e-6f) << "scale " << scale;
    EXPECT_TRUE(torch::equal(hb, h2.to(torch::kBFloat16))) << "scale " << scale;
    auto c3 = c0.clone(), hb3 = torch::empty({batch, hidden}, torch::kBFloat16);  // without the float32 h
    fused.step_bf16(gates.data_ptr<float>(), 4 * hidden, c3.data_ptr<float>(), hidden, nullptr, 0,
                    reinterpret_cast<std::uint16_t*>(hb3.data_ptr<at::BFloat16>()), hidden, batch, hidden);
    EXPECT_TRUE(torch::equal(c3, c2) && torch::equal(hb3, hb)) << "scale " << scale;
  }
  for (float x : {0.f, 1.f, -1.5f, 1.00390625f, 1.01171875f, 3.4e38f, -1e-40f})
    EXPECT_EQ(nn::to_bf16(x), c10::BFloat16(x).x) << x;
  EXPECT_EQ(nn::to_bf16(std::nanf("")), c10::BFloat16(std::nanf("")).x);
}

TEST(Bf16Gemm, AddsTheFloatProductOfTheBf16Values) {
  const nn::Bf16Gemm gemm;
  if (!gemm.ready()) GTEST_SKIP() << "oneDNN's bf16 GEMM unavailable: " << gemm.unavailable();
  torch::manual_seed(5);
  const int64_t m = 37, n = 96, k = 48;
  // A and C as column slices of wider rows (strided), B rows contiguous.
  auto a = torch::randn({m, k + 8}).to(torch::kBFloat16), b = torch::randn({n, k}).to(torch::kBFloat16);
  auto c = torch::randn({m, n + 5});
  auto product = torch::matmul(a.narrow(1, 0, k).to(torch::kFloat64), b.t().to(torch::kFloat64)).to(torch::kFloat32);
  auto want = c.narrow(1, 0, n) + product;
  auto bits = [](const torch::Tensor& t) { return reinterpret_cast<const std::uint16_t*>(t.data_ptr<at::BFloat16>()); };
  gemm.multiply_add(m, n, k, bits(a), k + 8, bits(b), k, c.data_ptr<float>(), n + 5);
  EXPECT_LT((c.narrow(1, 0, n) - want).abs().max().item<float>(), 1e-4f);
  auto d = torch::full({m, n}, std::nanf(""));  // multiply() does not read C
  gemm.multiply(m, n, k, bits(a), k + 8, bits(b), k, d.data_ptr<float>(), n);
  EXPECT_LT((d - product).abs().max().item<float>(), 1e-4f);
}

TEST(LstmClassifier, Bf16InferenceStaysCloseToFloat32) {
  // infer() in bf16 (oneDNN's GEMM and the bf16 step where available, LibTorch's kernels otherwise) against float32:
  // probabilities within bf16's reach, on 2 and 3 layers of hidden 32 (fused-step sizes) and several slices.
  auto s = spec(2);
  s.hidden = 32;
  for (int layers : {2, 3}) {
    s.layers = layers;
    torch::manual_seed(40 + layers);
    nn::LstmClassifier model(s);
    model->eval();
    auto x = torch::randn({600, 12, 5});
    torch::NoGradGuard no_grad;
    auto p32 = model->infer(x).exp(), p16 = model->infer(x, torch::kBFloat16).exp();
    ASSERT_EQ(p32.sizes(), p16.sizes());
    EXPECT_LT((p32 - p16).abs().max().item<float>(), 0.03f) << layers << " layers";
    EXPECT_GT((p32 - p16).abs().max().item<float>(), 0.f) << "bf16 gave float32's bits: not run in bf16";
  }
}

TEST(FeatureMap, SelectsBandsAddsNdviAndNormalises) {
  auto s = spec(1);
  std::vector<std::string> source = {"B08", "B02", "B04", "B03"};  // another order than the model's
  std::vector<std::int16_t> series(12 * 4);
  for (int m = 0; m < 12; ++m) {
    series[m * 4 + 0] = 3000;  // B08
    series[m * 4 + 1] = 500;   // B02
    series[m * 4 + 2] = 1000;  // B04
    series[m * 4 + 3] = 700;   // B03
  }
  nn::FeatureMap raw(s, source, "test");
  std::vector<float> out(12 * 5);
  raw.apply(series.data(), 1, out.data());
  EXPECT_FLOAT_EQ(out[0], 0.05f);
  EXPECT_FLOAT_EQ(out[1], 0.07f);
  EXPECT_FLOAT_EQ(out[2], 0.10f);
  EXPECT_FLOAT_EQ(out[3], 0.30f);
  EXPECT_FLOAT_EQ(out[4], 0.5f);  // (3000-1000)/(3000+1000)
  s.mean = {0, 0, 0, 0, 0.25f};
  s.stddev = {1, 1, 1, 1, 0.5f};
  nn::FeatureMap norm(s, source, "test");
  norm.apply(series.data(), 1, out.data());
  EXPECT_FLOAT_EQ(out[4], 0.5f);  // (0.5 - 0.25) / 0.5
  EXPECT_THROW(nn::FeatureMap(s, {"B02", "B03", "B04"}, "composite"), s2crop::ConfigError);
}

TEST(ModelFile, RoundTripsArchitectureNormalisationAndWeights) {
  auto s = spec(2);
  s.mean = {1, 2, 3, 4, 5};
  s.stddev = {1, 1, 2, 2, 3};
  torch::manual_seed(3);
  nn::LstmClassifier model(s);
  auto path = (std::filesystem::temp_directory_path() / "s2crop_model_test.h5").string();
  nn::save_model(path, s, model, "test = 1\\n");
  nn::ModelSpec loaded;
  auto back = nn::load_model(path, loaded);
  EXPECT_EQ(loaded.bands, s.bands);
  EXPECT_EQ(loaded.class_names, s.class_names);
  EXPECT_EQ(loaded.mean, s.mean);
  EXPECT_EQ(loaded.layers, 2);
  auto x = torch::randn({4, 12, 5});
  model->eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(model->forward(x), back->forward(x)));
  std::remove(path.c_str());
  EXPECT_THROW(nn::read_model_spec(path), s2crop::InputError);
}

TEST(FusedLstm, MatchesTorchLstmForwardAndGradients) {
  torch::manual_seed(11);
  auto lstm = torch::nn::LSTM(torch::nn::LSTMOptions(5, 16).num_layers(1).bias(false).batch_first(true));
  auto x = torch::randn({9, 12, 5}, torch::requires_grad());
  auto ref = lstm->forward(x);
  auto ref_h = std::get<0>(ref), ref_c = std::get<1>(std::get<1>(ref))[0];
  auto w_ih = lstm->all_weights()[0], w_hh = lstm->all_weights()[1];
  auto ours = nn::fused_lstm_layer(x, w_ih, w_hh);
  EXPECT_LT((ours[0] - ref_h).abs().max().item<float>(), 1e-5f);
  EXPECT_LT((ours[1] - ref_c).abs().max().item<float>(), 1e-5f);
  // The same loss through both: gradients of input and both weights must agree.
  auto probe_h = torch::randn_like(ref_h), probe_c = torch::randn_like(ref_c);
  auto ref_grads = torch::autograd::grad({(ref_h * probe_h).sum() + (ref_c * probe_c).sum()}, {x, w_ih, w_hh});
  auto our_grads = torch::autograd::grad({(ours[0] * probe_h).sum() + (ours[1] * probe_c).sum()}, {x, w_ih, w_hh});
  for (size_t k = 0; k < 3; ++k)
    EXPECT_LT((ref_grads[k] - our_grads[k]).abs().max().item<float>(), 1e-4f) << "gradient " << k;
}
