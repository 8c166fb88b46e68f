// The U-Net and its losses: output shapes for any band count, depth and patch size (padding and cropping), both
// encoders, every norm and upsampling; a frozen encoder stays put while the decoder learns; the model file round-trips
// weights and batch-norm statistics, and an encoder file loads into a fresh U-Net; masked pixels never reach a loss
// or its gradient; focal with gamma 0 is BCE / CE; Dice of a perfect prediction is 0; a small U-Net overfits a tiny
// square-segmentation problem.
#include <gtest/gtest.h>
#include <mpi.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "s2crop/common/errors.hpp"
#include "s2crop/nn/model_file.hpp"
#include "s2crop/nn/segmentation_loss.hpp"
#include "s2crop/nn/simsiam.hpp"
#include "s2crop/nn/unet.hpp"

using namespace s2crop;

namespace {
nn::UNetSpec small_spec(int bands, int outputs, int depth, const std::string& encoder, const std::string& norm) {
  nn::UNetSpec s;
  s.in_channels = bands;
  s.outputs = outputs;
  s.depth = depth;
  s.width = 4;
  s.groups = 2;
  s.norm = norm;
  s.encoder = encoder;
  s.blocks = 1;
  return s;
}

// Every parameter as one flat vector, for "did it change" checks.
torch::Tensor flat(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> parts;
  for (auto& p : params) parts.push_back(p.detach().flatten().clone());
  return torch::cat(parts);
}
}  // namespace

TEST(UNet, OutputShapesForAnyBandsDepthPatchSizeEncoderNormAndUpsampling) {
  torch::manual_seed(0);
  struct Case {
    int bands, outputs, depth;
    std::string encoder, norm, up;
    int64_t h, w;
  };
  const std::vector<Case> cases = {
      {10, 3, 4, "plain", "batch", "transpose", 64, 64},   // one date of 10 bands, a multiple of 16
      {10, 3, 4, "plain", "batch", "transpose", 37, 45},   // not a multiple of 2^depth
      {120, 5, 3, "resnet", "group", "bilinear", 33, 20},  // 12 months x 10 bands stacked
      {4, 2, 2, "resnet", "none", "transpose", 5, 7},
      {1, 2, 4, "plain", "group", "bilinear", 3, 1},       // pad larger than the patch, a 1-pixel axis
      {3, 1, 1, "resnet", "batch", "bilinear", 17, 16},
      {6, 4, 0, "plain", "none", "transpose", 9, 11},      // depth 0: no down-sampling at all
  };
  for (const auto& c : cases) {
    auto s = small_spec(c.bands, c.outputs, c.depth, c.encoder, c.norm);
    s.upsampling = c.up;
    s.task = c.outputs == 1 ? "multilabel" : "multiclass";
    nn::UNet net(s);
    net->train();
    auto x = torch::randn({2, c.bands, c.h, c.w});
    auto y = net->forward(x);
    const std::string what = c.encoder + "/" + c.norm + "/" + c.up + " depth " + std::to_string(c.depth) + " " +
                             std::to_string(c.h) + "x" + std::to_string(c.w);
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, c.outputs, c.h, c.w})) << what;
    auto pooled = net->pooled_features(x);
    EXPECT_EQ(pooled.sizes(), (std::vector<int64_t>{2, s.channels(s.depth)})) << what;
    EXPECT_EQ(net->encoder->out_channels(), s.channels(s.depth));
    int64_t top = 0, left = 0;
    auto features = net->encoder->forward(nn::pad_to_multiple(x, s.multiple(), top, left));
    ASSERT_EQ(features.size(), static_cast<size_t>(s.depth + 1)) << what;
    for (int l = 0; l <= s.depth; ++l) {
      EXPECT_EQ(features[static_cast<size_t>(l)].size(1), s.channels(l)) << what;
      EXPECT_EQ(features[static_cast<size_t>(l)].size(2) << l, features[0].size(2)) << what;
    }
    net->eval();
    torch::NoGradGuard no_grad;
    auto p = net->probabilities(x);
    EXPECT_EQ(p.sizes(), y.sizes()) << what;
    if (s.task == "multiclass") EXPECT_LT((p.sum(1) - 1).abs().max().item<float>(), 1e-5f) << what;
  }
  auto bad = small_spec(10, 3, 4, "plain", "layer");
  EXPECT_THROW(nn::UNet{bad}, ConfigError);
}

TEST(UNet, PaddingReflectsAndKeepsTheOriginalPixelsAtTheReportedOffset) {
  auto x = torch::arange(15, torch::kFloat32).view({1, 1, 3, 5});
  int64_t top = -1, left = -1;
  auto p = nn::pad_to_multiple(x, 8, top, left);
  EXPECT_EQ(p.sizes(), (std::vector<int64_t>{1, 1, 8, 8}));
  EXPECT_EQ(top, 2);
  EXPECT_EQ(left, 1);
  EXPECT_TRUE(torch::equal(p.narrow(2, top, 3).narrow(3, left, 5), x));
  EXPECT_EQ(p[0][0][top][0].item<float>(), x[0][0][0][1].item<float>());  // reflection, not edge replication
  auto same = nn::pad_to_multiple(torch::ones({1, 2, 16, 32}), 16, top, left);
  EXPECT_EQ(same.sizes(), (std::vector<int64_t>{1, 2, 16, 32}));
  EXPECT_EQ(top, 0);
  EXPECT_EQ(left, 0);
}

TEST(UNet, FrozenEncoderStaysPutWhileTheDecoderLearns) {
  torch::manual_seed(2);
  auto s = small_spec(5, 3, 2, "resnet", "batch");
  s.dropout = 0.1;
  nn::UNet net(s);
  net->freeze_encoder();
  net->train();
  EXPECT_TRUE(net->encoder_frozen());
  EXPECT_FALSE(net->encoder->is_training());  // batch-norm statistics of a frozen encoder do not move either
  EXPECT_TRUE(net->decoder->is_training());
  std::vector<torch::Tensor> encoder_buffers;
  for (auto& b : net->encoder->buffers()) encoder_buffers.push_back(b);
  const auto enc0 = flat(net->encoder_parameters()), dec0 = flat(net->decoder->parameters());
  const auto buf0 = flat(encoder_buffers);
  EXPECT_LT(net->trainable_parameters().size(), net->parameters().size());
  // Every parameter handed to the optimiser, as a careless trainer would: the frozen ones still do not move.
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-2).weight_decay(1e-2));
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    auto logits = net->forward(torch::randn({2, 5, 12, 12}));
    auto target = torch::randint(0, 3, {2, 12, 12}, torch::kInt64);
    nn::SegmentationLossOptions o;
    auto l = nn::segmentation_loss_sum(logits, target, {}, o);
    (l.sum / l.count).backward();
    opt.step();
  }
  EXPECT_TRUE(torch::equal(flat(net->encoder_parameters()), enc0));
  EXPECT_TRUE(torch::equal(flat(encoder_buffers), buf0));
  EXPECT_FALSE(torch::equal(flat(net->decoder->parameters()), dec0));
  net->freeze_encoder(false);
  EXPECT_TRUE(net->encoder->is_training());
  EXPECT_EQ(net->trainable_parameters().size(), net->parameters().size());
}

TEST(UNet, ModelFileRoundTripsWeightsAndBatchNormStatisticsAndTheEncoderAlone) {
  torch::manual_seed(4);
  auto s = small_spec(4, 2, 2, "resnet", "batch");
  s.upsampling = "bilinear";
  s.task = "multilabel";
  nn::UNet net(s);
  net->train();
  for (int k = 0; k < 3; ++k) net->forward(torch::randn({2, 4, 16, 16}) * 3 + 1);  // running statistics move
  nn::ModelSpec ms;
  ms.kind = "unet";
  ms.unet = s;
  ms.bands = {"B02", "B03", "B04", "B08"};
  ms.class_names = {"cropland", "boundary"};
  ms.mean = {1, 2, 3, 4};
  ms.stddev = {1, 1, 1, 1};
  const auto dir = std::filesystem::temp_directory_path();
  const auto path = (dir / "s2crop_unet_test.h5").string(), enc_path = (dir / "s2crop_unet_encoder_test.h5").string();
  nn::save_model(path, ms, *net, "test = 1\n");
  nn::ModelSpec back_spec;
  auto back = nn::load_unet(path, back_spec);
  EXPECT_EQ(back_spec.unet.encoder, "resnet");
  EXPECT_EQ(back_spec.unet.upsampling, "bilinear");
  EXPECT_EQ(back_spec.unet.task, "multilabel");
  EXPECT_EQ(back_spec.unet.depth, 2);
  EXPECT_EQ(back_spec.class_names, ms.class_names);
  net->eval();
  torch::NoGradGuard no_grad;
  auto x = torch::randn({1, 4, 19, 13});
  EXPECT_TRUE(torch::equal(net->forward(x), back->forward(x)));

  // The encoder alone (what pre-training saves) into a fresh U-Net with another head.
  nn::ModelSpec es = ms;
  es.kind = "unet_encoder";
  es.class_names.clear();
  nn::save_model(enc_path, es, *net->encoder, "pretrain = 1\n");
  EXPECT_EQ(nn::read_model_spec(enc_path).kind, "unet_encoder");
  auto s3 = s;
  s3.outputs = 5;
  s3.task = "multiclass";
  nn::UNet fresh(s3);
  nn::load_parameters(enc_path, *fresh->encoder);
  fresh->eval();
  EXPECT_TRUE(torch::equal(flat(fresh->encoder_parameters()), flat(net->encoder_parameters())));
  EXPECT_TRUE(torch::equal(fresh->pooled_features(x), net->pooled_features(x)));
  EXPECT_THROW(nn::load_unet(enc_path, back_spec), InputError);  // an encoder is not a segmentation model
  std::remove(path.c_str());
  std::remove(enc_path.c_str());
}

// Pre-training with masked-month reconstruction keeps the encoder and decoder under a U-Net's names (nothing of
// the projector or the reconstruction head), and load_pretrained puts both into a fresh U-Net; an encoder-alone file
// (the earlier layout, or VICReg without reconstruction) loads the encoder only.
TEST(SimSiam, PretrainedBodyRoundTripsIntoAUNetWithItsDecoder) {
  torch::manual_seed(7);
  auto s = small_spec(6, 3, 2, "plain", "group");
  nn::SimSiam pre(s, 16, true, 10.0);
  ASSERT_TRUE(pre->reconstructs());
  size_t encoder = 0, decoder = 0;
  for (auto& p : pre->kept->named_parameters()) {
    encoder += p.key().rfind("encoder.", 0) == 0;
    decoder += p.key().rfind("decoder.", 0) == 0;
  }
  EXPECT_EQ(encoder, pre->encoder->parameters().size());
  EXPECT_EQ(decoder, pre->decoder->parameters().size());
  EXPECT_EQ(encoder + decoder, pre->kept->parameters().size());
  nn::ModelSpec ms;
  ms.kind = "unet_encoder";
  ms.unet = s;
  ms.bands = {"B02", "B03", "B04", "B05", "B06", "B08"};
  ms.mean.assign(6, 0.0);
  ms.stddev.assign(6, 1.0);
  const auto dir = std::filesystem::temp_directory_path();
  const auto body_path = (dir / "s2crop_pretrained_body_test.h5").string();
  const auto enc_path = (dir / "s2crop_pretrained_encoder_test.h5").string();
  nn::save_model(body_path, ms, *pre->kept, "pretrain = 1\n");
  nn::UNet fresh(s);
  const auto loaded = nn::load_pretrained(body_path, fresh);
  EXPECT_TRUE(loaded.encoder && loaded.decoder);
  EXPECT_TRUE(torch::equal(flat(fresh->encoder->parameters()), flat(pre->encoder->parameters())));
  EXPECT_TRUE(torch::equal(flat(fresh->decoder->parameters()), flat(pre->decoder->parameters())));

  nn::SimSiam vicreg_only(s, 16, true, 0.0);  // no decoder: the encoder alone, in the earlier unprefixed layout too
  EXPECT_FALSE(vicreg_only->reconstructs());
  EXPECT_EQ(vicreg_only->kept->parameters().size(), vicreg_only->encoder->parameters().size());
  nn::save_model(enc_path, ms, *vicreg_only->encoder, "pretrain = 1\n");
  nn::UNet other(s);
  const auto dec0 = flat(other->decoder->parameters());
  const auto old_layout = nn::load_pretrained(enc_path, other);
  EXPECT_TRUE(old_layout.encoder && !old_layout.decoder);
  EXPECT_TRUE(torch::equal(flat(other->encoder->parameters()), flat(vicreg_only->encoder->parameters())));
  EXPECT_TRUE(torch::equal(flat(other->decoder->parameters()), dec0));
  std::remove(body_path.c_str());
  std::remove(enc_path.c_str());
}

// The reconstruction term is the mean squared error against the target, per channel averaged over pixels, weighted
// 1 for the channels a view dropped and 0.05 for those it kept, averaged over both views; the total adds it to the
// VICReg terms with its weight; and it trains the decoder.
TEST(SimSiam, MaskedMonthReconstructionIsTheWeightedErrorOfTheDroppedMonths) {
  torch::manual_seed(8);
  auto s = small_spec(4, 3, 2, "plain", "group");
  const double weight = 3.0;
  nn::SimSiam pre(s, 16, true, weight);
  {
    torch::NoGradGuard no_grad;
    pre->reconstruct->weight.zero_();  // predicts 0 everywhere: the error is the target's square
    pre->reconstruct->bias.zero_();
  }
  nn::SiameseViews v;
  v.target = torch::randn({2, 4, 8, 8});
  v.view1 = v.target.clone();
  v.view2 = v.target.clone();
  v.dropped1 = torch::tensor({1.f, 0.f, 0.f, 0.f}).repeat({2, 1});
  v.dropped2 = torch::tensor({0.f, 1.f, 1.f, 0.f}).repeat({2, 1});
  v.view1.narrow(1, 0, 1).zero_();
  v.view2.narrow(1, 1, 2).zero_();
  auto l = pre->loss(v);
  auto sq = v.target.pow(2).mean({2, 3});  // [2][4]
  auto w1 = v.dropped1 + 0.05, w2 = v.dropped2 + 0.05;
  auto expected = 0.5 * ((sq * w1).sum(1) / w1.sum(1) + (sq * w2).sum(1) / w2.sum(1));
  ASSERT_TRUE(l.reconstruction.defined());
  EXPECT_TRUE(torch::allclose(l.reconstruction, expected, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(l.total, l.siamese + weight * l.reconstruction, 1e-5, 1e-6));
  // The term trains the decoder (through a head that no longer predicts 0).
  {
    torch::NoGradGuard no_grad;
    pre->reconstruct->weight.fill_(0.1);
  }
  pre->zero_grad();
  pre->loss(v).reconstruction.sum().backward();
  double decoder_grad = 0;
  for (auto& p : pre->decoder->parameters())
    if (p.grad().defined()) decoder_grad += p.grad().abs().sum().item<double>();
  EXPECT_GT(decoder_grad, 0.0);
}

// ---- losses

namespace {
// Loss sum and the gradient of its logits.
std::pair<torch::Tensor, torch::Tensor> loss_and_grad(const torch::Tensor& logits, const torch::Tensor& target,
                                                      const torch::Tensor& mask, const nn::SegmentationLossOptions& o) {
  auto z = logits.detach().clone().requires_grad_(true);
  auto l = nn::segmentation_loss_sum(z, target, mask, o);
  l.sum.backward();
  return {l.sum.detach(), z.grad()};
}
}  // namespace

TEST(UNetLoss, MaskedPixelsChangeNeitherTheLossNorItsGradient) {
  torch::manual_seed(5);
  const int64_t B = 2, C = 3, H = 5, W = 6;
  // Multiclass: pixel (0, 1, 2) is masked by the ignore index, pixel (1, 3, 4) by the mask.
  {
    auto logits = torch::randn({B, C, H, W});
    auto target = torch::randint(0, C, {B, H, W}, torch::kInt64);
    target[0][1][2] = 255;
    auto mask = torch::ones({B, H, W}, torch::kUInt8);
    mask[1][3][4] = 0;
    for (std::string loss : {"ce", "focal"}) {
      nn::SegmentationLossOptions o;
      o.loss = loss;
      o.weights = {1.0f, 2.0f, 0.5f};
      auto [l0, g0] = loss_and_grad(logits, target, mask, o);
      auto logits2 = logits.clone(), target2 = target.clone();
      logits2.select(0, 0).select(1, 1).select(1, 2).fill_(9.0);
      logits2.select(0, 1).select(1, 3).select(1, 4).copy_(torch::tensor({-4.f, 7.f, 1.f}));
      target2[1][3][4] = (target[1][3][4].item<int64_t>() + 1) % C;
      auto [l1, g1] = loss_and_grad(logits2, target2, mask, o);
      EXPECT_EQ(l0.item<float>(), l1.item<float>()) << loss;
      EXPECT_TRUE(torch::equal(g0, g1)) << loss;
      EXPECT_EQ(g0.select(0, 0).select(1, 1).select(1, 2).abs().sum().item<float>(), 0.f) << loss;
      auto count = nn::segmentation_loss_sum(logits, target, mask, o).count.item<double>();
      EXPECT_NEAR(count, nn::segmentation_loss_weights(target, mask, o, C).sum().item<double>(), 1e-9);
    }
  }
  // Multilabel, a pixel mask and a per-label mask: a masked entry's logit and label do not matter.
  for (int per_label = 0; per_label < 2; ++per_label)
    for (std::string loss : {"bce", "focal", "dice"}) {
      auto logits = torch::randn({B, C, H, W});
      auto target = torch::randint(0, 2, {B, C, H, W}, torch::kUInt8);
      auto mask = per_label ? torch::ones({B, C, H, W}, torch::kUInt8) : torch::ones({B, H, W}, torch::kUInt8);
      if (per_label)
        mask[1][2][0][3] = 0;
      else
        mask[1][0][3] = 0;
      target[1][2][0][3] = 255;  // no-data in the label layer
      nn::SegmentationLossOptions o;
      o.task = "multilabel";
      o.loss = loss;
      o.weights = {1.0f, 0.5f, 3.0f};
      auto [l0, g0] = loss_and_grad(logits, target, mask, o);
      auto logits2 = logits.clone(), target2 = target.clone();
      logits2[1][2][0][3] = 25.0;
      target2[1][2][0][3] = 1;
      if (!per_label) {
        logits2[1][0][0][3] = -3.0;
        target2[1][0][0][3] = 1 - target[1][0][0][3].item<int>();
      }
      auto [l1, g1] = loss_and_grad(logits2, target2, mask, o);
      const std::string what = loss + (per_label ? " per-label mask" : " pixel mask");
      EXPECT_EQ(l0.item<float>(), l1.item<float>()) << what;
      EXPECT_TRUE(torch::equal(g0, g1)) << what;
      EXPECT_EQ(g0[1][2][0][3].item<float>(), 0.f) << what;
      auto count = nn::segmentation_loss_sum(logits, target, mask, o).count.item<double>();
      EXPECT_NEAR(count, nn::segmentation_loss_weights(target, mask, o, C).sum().item<double>(), 1e-9) << what;
    }
}

TEST(UNetLoss, BceAndCeHaveTheTextbookValuesAndCounts) {
  // Logits 0: every entry costs log 2 (BCE) and log C (CE).
  auto z = torch::zeros({2, 3, 4, 4});
  nn::SegmentationLossOptions ml;
  ml.task = "multilabel";
  ml.loss = "bce";
  auto mask = torch::ones({2, 4, 4}, torch::kUInt8);
  mask[0].fill_(0);
  auto l = nn::segmentation_loss_sum(z, torch::ones({2, 3, 4, 4}), mask, ml);
  EXPECT_NEAR(l.count.item<double>(), 3 * 16, 1e-9);
  EXPECT_NEAR((l.sum / l.count).item<double>(), std::log(2.0), 1e-6);
  EXPECT_NEAR(nn::segmentation_loss(z, torch::ones({2, 3, 4, 4}), mask, ml, 96.0).item<double>(),
              std::log(2.0) / 2, 1e-6);
  auto w = nn::segmentation_loss_weights(torch::ones({2, 3, 4, 4}), mask, ml, 3);
  EXPECT_EQ(w[0].item<double>(), 0.0);
  EXPECT_EQ(w[1].item<double>(), 48.0);
  nn::SegmentationLossOptions mc;
  mc.weights = {2.f, 1.f, 1.f};
  auto target = torch::zeros({2, 4, 4}, torch::kInt64);
  target[1][0][0] = 1;
  target[1][0][1] = 255;
  auto lc = nn::segmentation_loss_sum(z, target, {}, mc);
  EXPECT_NEAR(lc.count.item<double>(), 30 * 2 + 1, 1e-9);  // 30 class-0 pixels of weight 2, one of class 1
  EXPECT_NEAR((lc.sum / lc.count).item<double>(), std::log(3.0), 1e-6);
  target[1][0][2] = 7;  // a class the head does not have
  EXPECT_THROW(nn::segmentation_loss_sum(z, target, {}, mc), c10::Error);
  nn::SegmentationLossOptions wrong;
  wrong.loss = "dice";  // Dice is offered for the multilabel head only
  EXPECT_THROW(wrong.check(3), ConfigError);
}

TEST(UNetLoss, FocalWithGammaZeroIsBceAndCe) {
  torch::manual_seed(6);
  auto logits = torch::randn({2, 3, 6, 5}) * 3;
  auto mask = torch::randint(0, 2, {2, 6, 5}, torch::kUInt8);
  nn::SegmentationLossOptions bce, focal;
  bce.task = focal.task = "multilabel";
  bce.loss = "bce";
  focal.loss = "focal";
  focal.focal_gamma = 0;
  auto target = torch::randint(0, 2, {2, 3, 6, 5}, torch::kFloat32);
  auto [lb, gb] = loss_and_grad(logits, target, mask, bce);
  auto [lf, gf] = loss_and_grad(logits, target, mask, focal);
  EXPECT_NEAR(lb.item<float>(), lf.item<float>(), 1e-5);
  EXPECT_LT((gb - gf).abs().max().item<float>(), 1e-6f);
  nn::SegmentationLossOptions ce, mfocal;
  mfocal.loss = "focal";
  mfocal.focal_gamma = 0;
  auto classes = torch::randint(0, 3, {2, 6, 5}, torch::kInt64);
  auto [lc, gc] = loss_and_grad(logits, classes, mask, ce);
  auto [lm, gm] = loss_and_grad(logits, classes, mask, mfocal);
  EXPECT_NEAR(lc.item<float>(), lm.item<float>(), 1e-5);
  EXPECT_LT((gc - gm).abs().max().item<float>(), 1e-6f);
  // gamma > 0 down-weights what is already right: the focal loss is smaller than BCE.
  focal.focal_gamma = 2;
  EXPECT_LT(loss_and_grad(logits, target, mask, focal).first.item<float>(), lb.item<float>());
}

TEST(UNetLoss, DiceIsZeroForAPerfectPredictionAndPerSampleLabel) {
  torch::manual_seed(7);
  auto target = torch::randint(0, 2, {3, 2, 8, 8}, torch::kFloat32);
  target[0][1].fill_(0);  // a label absent from a sample: predicted absent, it costs nothing
  auto logits = (target * 2 - 1) * 40;
  nn::SegmentationLossOptions o;
  o.task = "multilabel";
  o.loss = "dice";
  auto mask = torch::ones({3, 8, 8}, torch::kUInt8);
  mask[2].fill_(0);  // sample 2 has no valid pixel: it contributes nothing, not even to the count
  auto l = nn::segmentation_loss_sum(logits, target, mask, o);
  EXPECT_LT(l.sum.item<float>(), 1e-6f);
  EXPECT_EQ(l.count.item<double>(), 4.0);
  auto w = nn::segmentation_loss_weights(target, mask, o, 2);
  EXPECT_EQ(w[0].item<double>(), 2.0);
  EXPECT_EQ(w[2].item<double>(), 0.0);
  // The opposite prediction costs nearly 1 per (sample, label).
  auto bad = nn::segmentation_loss_sum(-logits, target, mask, o);
  EXPECT_GT((bad.sum / bad.count).item<float>(), 0.7f);
}

TEST(UNet, OverfitsATinySquareSegmentation) {
  torch::set_num_threads(1);
  torch::manual_seed(8);
  // 4 patches of 32x32, 3 bands of noise; a square (different place per patch) is brighter in band 0 and darker
  // in band 2. Class 1 = the square. Multiclass head; a multilabel copy with focal loss for the sigmoid path.
  const int64_t N = 4, S = 32;
  auto x = torch::randn({N, 3, S, S}) * 0.5;
  auto y = torch::zeros({N, S, S}, torch::kInt64);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t y0 = 3 + 5 * n, x0 = 20 - 4 * n, side = 8 + 2 * n;
    y.narrow(0, n, 1).narrow(1, y0, side).narrow(2, x0, side).fill_(1);
  }
  x.select(1, 0).add_(y.to(torch::kFloat32) * 1.0);
  x.select(1, 2).sub_(y.to(torch::kFloat32) * 0.7);
  for (std::string task : {"multiclass", "multilabel"}) {
    auto t0 = std::chrono::steady_clock::now();
    nn::UNetSpec s;
    s.in_channels = 3;
    s.task = task;
    s.outputs = task == "multiclass" ? 2 : 1;
    s.depth = 2;
    s.width = 8;
    s.norm = "batch";
    nn::UNet net(s);
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-2));
    nn::SegmentationLossOptions o;
    o.task = task;
    o.loss = task == "multiclass" ? "ce" : "focal";
    auto target = task == "multiclass" ? y : y.unsqueeze(1).to(torch::kFloat32);
    net->train();
    double last = 0;
    for (int step = 0; step < 150; ++step) {
      opt.zero_grad();
      auto l = nn::segmentation_loss_sum(net->forward(x), target, {}, o);
      auto loss = l.sum / l.count;
      loss.backward();
      opt.step();
      last = loss.item<double>();
    }
    net->eval();
    torch::NoGradGuard no_grad;
    auto pred = nn::segmentation_labels(net->forward(x), task);
    auto p1 = (task == "multiclass" ? pred : pred.select(1, 0)).to(torch::kInt64) == 1;
    auto t1 = y == 1;
    const double inter = p1.logical_and(t1).sum().item<double>(), uni = p1.logical_or(t1).sum().item<double>();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_GT(inter / uni, 0.9) << task << ": IoU " << inter / uni << ", last loss " << last;
    std::printf("[ overfit  ] %s: IoU %.4f, loss %.4f after 150 Adam steps, %.2f s on 1 thread\n", task.c_str(),
                inter / uni, last, seconds);
  }
}
