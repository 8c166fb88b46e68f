// Devices: which device a rank takes (--device), the gradient backend for it, and the device-dependent pieces of
// training and inference run on the CPU through the code path a GPU takes: buffers created on the parameters'
// device, the in-place all-reduce of a flat buffer, checkpoints written as host tensors and loaded onto the run's
// device, inference inputs and outputs through InferencePlace, reduced-precision GEMMs of the LSTM classifier.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "mpi_environment.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/nn/device.hpp"
#include "s2crop/nn/device_torch.hpp"
#include "s2crop/nn/lstm_classifier.hpp"
#include "s2crop/train/communicator.hpp"
#include "train/checkpoint.hpp"
#include "train/flat_model.hpp"

namespace fs = std::filesystem;
using s2crop::AgreedError;
using s2crop::ConfigError;
using namespace s2crop::nn;
using s2crop::train::Backend;

TEST(DeviceChoice, AutoTakesTheNodeLocalGpuOrTheCpu) {
  for (int local = 0; local < 4; ++local) {
    auto d = choose_device("auto", true, 4, local, 4);
    EXPECT_TRUE(d.cuda);
    EXPECT_EQ(d.index, local) << "the GPU of the node-local rank";
    EXPECT_EQ(d.sharing, 1);
    EXPECT_EQ(d.name(), "cuda:" + std::to_string(local));
  }
  auto no_cuda = choose_device("auto", false, 4, 0, 1);
  EXPECT_FALSE(no_cuda.cuda);
  EXPECT_EQ(no_cuda.name(), "cpu");
  EXPECT_NE(no_cuda.reason.find("no CUDA"), std::string::npos) << no_cuda.reason;
  auto no_gpu = choose_device("auto", true, 0, 0, 1);
  EXPECT_FALSE(no_gpu.cuda);
  EXPECT_NE(no_gpu.reason.find("no GPU visible"), std::string::npos) << no_gpu.reason;
  // 8 ranks on 4 GPUs: two per GPU, said in the log line
  auto shared = choose_device("auto", true, 4, 5, 8);
  EXPECT_EQ(shared.index, 1);
  EXPECT_EQ(shared.sharing, 2);
  EXPECT_NE(shared.reason.find("shared by 2 ranks"), std::string::npos) << shared.reason;
}

TEST(DeviceChoice, ExplicitRequestsAndErrors) {
  EXPECT_FALSE(choose_device("cpu", true, 8, 0, 1).cuda) << "cpu wins over visible GPUs";
  auto one = choose_device("cuda:1", true, 2, 0, 1);
  EXPECT_TRUE(one.cuda);
  EXPECT_EQ(one.index, 1);
  EXPECT_THROW(choose_device("cuda", false, 0, 0, 1), ConfigError) << "cuda without a CUDA LibTorch";
  EXPECT_THROW(choose_device("cuda", true, 0, 0, 1), ConfigError) << "cuda on a node without a GPU";
  EXPECT_THROW(choose_device("cuda:2", true, 2, 0, 1), ConfigError) << "no GPU 2";
  for (const char* bad : {"gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", "", "cuda:1:2", "cuda:123456"})
    EXPECT_THROW(check_device_option(bad), ConfigError) << bad;
  for (const char* good : {"auto", "cpu", "cuda", "cuda:0", "cuda:15"}) EXPECT_NO_THROW(check_device_option(good));
  try {
    choose_device("cuda", false, 0, 0, 1);
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--device cuda"), std::string::npos) << e.what();
  }
}

TEST(DeviceChoice, PrecisionNamesAndFp16NeedsAGpu) {
  EXPECT_EQ(parse_precision("fp32"), Precision::Fp32);
  EXPECT_EQ(parse_precision("bf16"), Precision::Bf16);
  EXPECT_EQ(parse_precision("fp16"), Precision::Fp16);
  EXPECT_THROW(parse_precision("fp64"), ConfigError);
  try {
    parse_precision("int8");
    FAIL() << "int8 is not offered";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("fp32 speed"), std::string::npos) << "int8's refusal says why: " << e.what();
  }
  EXPECT_EQ(precision_name(Precision::Bf16), "bf16");
  DeviceChoice cpu, gpu;
  gpu.cuda = true;
  gpu.index = 0;
  const std::string epyc = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 "
                           "avx512_vnni\nvmx flags\t: ept\n";
  const std::string xeon_amx = "flags\t\t: fpu avx2 avx512f amx_bf16 amx_tile amx_int8\n";
  const std::string haswell = "processor\t: 0\nflags\t\t: fpu sse avx avx2 fma\nprocessor\t: 1\nflags\t\t: avx512_bf16\n";
  const std::string graviton3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n";
  EXPECT_TRUE(cpu_has_native_bf16(epyc));
  EXPECT_TRUE(cpu_has_native_bf16(xeon_amx));
  EXPECT_FALSE(cpu_has_native_bf16(haswell));  // the first core's flags tell
  EXPECT_TRUE(cpu_has_native_bf16(graviton3));
  EXPECT_FALSE(cpu_has_native_bf16(""));
  EXPECT_THROW(check_precision(Precision::Fp16, cpu, epyc), ConfigError);
  EXPECT_NO_THROW(check_precision(Precision::Bf16, cpu, epyc));
  EXPECT_THROW(check_precision(Precision::Bf16, cpu, haswell), ConfigError);
  EXPECT_NO_THROW(check_precision(Precision::Bf16, gpu, haswell));  // the GPU does the arithmetic
  EXPECT_NO_THROW(check_precision(Precision::Fp32, cpu, haswell));
  EXPECT_NO_THROW(check_precision(Precision::Fp16, gpu, ""));
}

TEST(DeviceChoice, ResolveOnThisMachine) {
  const auto& mpi = unit_test_mpi();
  // This LibTorch and machine: auto is a GPU exactly when LibTorch sees one.
  const DeviceChoice d = resolve_device("auto", mpi, "unit test");
  EXPECT_EQ(d.cuda, torch_gpus() > 0);
  EXPECT_FALSE(resolve_device("cpu", mpi, "unit test").cuda);
  if (torch_gpus() == 0) {
    // Every rank stops with one message naming the rank (an AgreedError: no rank is left waiting).
    try {
      resolve_device("cuda", mpi, "unit test");
      FAIL() << "--device cuda without a GPU must fail";
    } catch (const AgreedError& e) {
      EXPECT_NE(std::string(e.what()).find("rank 0"), std::string::npos) << e.what();
    }
  }
}

TEST(BackendForDevice, CpuModelsUseMpiGpuModelsNcclInPlace) {
  DeviceChoice cpu, gpu;
  gpu.cuda = true;
  gpu.index = 1;
  auto on_cpu = s2crop::train::choose_backend("auto", cpu, true, 4, 0, 1);
  EXPECT_EQ(on_cpu.backend, Backend::Mpi) << "the CPU path is MPI even where GPUs are visible";
  auto on_gpu = s2crop::train::choose_backend("auto", gpu, true, 4, 1, 4);
  EXPECT_EQ(on_gpu.backend, Backend::Nccl);
  EXPECT_EQ(on_gpu.gpu, 1) << "NCCL on the model's GPU";
  EXPECT_NE(on_gpu.reason.find("in place"), std::string::npos);
  DeviceChoice shared = gpu;
  shared.sharing = 2;
  EXPECT_EQ(s2crop::train::choose_backend("auto", shared, true, 4, 0, 1).backend, Backend::Mpi);
  EXPECT_THROW(s2crop::train::choose_backend("nccl", shared, true, 4, 0, 1), ConfigError);
  EXPECT_EQ(s2crop::train::choose_backend("auto", gpu, false, 4, 0, 1).backend, Backend::Mpi) << "no NCCL built";
}

namespace {

// Records every collective's pointer: the in-place all-reduce must hand the buffer's own memory (no copy) to a
// communicator that can take it, in buckets covering it exactly once.
struct RecordingCommunicator : s2crop::train::Communicator {
  bool device_memory = false;
  std::vector<std::pair<const void*, size_t>> calls;
  void allreduce_sum(float* data, size_t count) override {
    calls.emplace_back(data, count);
    for (size_t i = 0; i < count; ++i) data[i] *= 2;  // as if two ranks held the same values
  }
  void allreduce_sum(double* data, size_t count) override {
    calls.emplace_back(data, count);
    for (size_t i = 0; i < count; ++i) data[i] *= 2;
  }
  void broadcast(float* data, size_t count, int) override { calls.emplace_back(data, count); }
  bool takes_device_memory() const override { return device_memory; }
  std::string name() const override { return "recording"; }
};

}  // namespace

TEST(FlatModelOnDevice, BuffersFollowTheParametersAndTheAllReduceIsInPlace) {
  torch::manual_seed(3);
  torch::nn::Linear layer(5, 3);
  s2crop::train::FlatModel flat = s2crop::train::flatten(layer->parameters());
  EXPECT_EQ(flat.n, 18);
  EXPECT_EQ(flat.param.device(), layer->weight.device());
  EXPECT_EQ(flat.grad.device(), layer->weight.device());
  EXPECT_EQ(flat.grad.numel(), 19) << "one extra slot for the loss";
  // The parameters are views of the flat buffer: an update through it is seen by the module.
  flat.param.add_(1.0);
  EXPECT_TRUE(torch::equal(layer->weight.reshape({-1}), flat.param.narrow(0, 0, 15)));

  s2crop::train::FusedAdamW opt;
  opt.init(flat.n, flat.param.device());
  EXPECT_EQ(opt.m.device(), flat.param.device());

  RecordingCommunicator comm;
  flat.grad.fill_(1.5f);
  s2crop::train::allreduce_sum(comm, flat.grad, 8);
  ASSERT_EQ(comm.calls.size(), 3u) << "19 values in buckets of 8";
  EXPECT_EQ(comm.calls[0].first, flat.grad.data_ptr<float>()) << "in place: the buffer's own memory";
  EXPECT_EQ(comm.calls[1].first, flat.grad.data_ptr<float>() + 8);
  EXPECT_EQ(comm.calls[2].second, 3u);
  EXPECT_TRUE(torch::allclose(flat.grad, torch::full({19}, 3.0f)));
  comm.calls.clear();
  auto g64 = torch::ones({10}, torch::kFloat64);
  s2crop::train::allreduce_sum(comm, g64, 4);
  EXPECT_EQ(comm.calls.size(), 3u);
  EXPECT_EQ(g64.sum().item<double>(), 20.0);
  comm.calls.clear();
  s2crop::train::broadcast(comm, flat.param, 0);
  ASSERT_EQ(comm.calls.size(), 1u);
  EXPECT_EQ(comm.calls[0].first, flat.param.data_ptr<float>());

  // The MPI communicator on one rank: the sum is the buffer itself.
  auto mpi_comm = s2crop::train::make_communicator(s2crop::train::BackendChoice{}, unit_test_mpi());
  auto before = flat.grad.clone();
  s2crop::train::allreduce_sum(*mpi_comm, flat.grad, 5);
  EXPECT_TRUE(torch::equal(before, flat.grad));

  if (torch_gpus() > 0) {  // the GPU path where there is one: a device buffer through MPI goes via the host
    auto on_gpu = flat.grad.to(torch::Device(torch::kCUDA, 0));
    s2crop::train::allreduce_sum(comm, on_gpu, 8);
    EXPECT_TRUE(torch::allclose(on_gpu.cpu(), before * 2));
  }
}

TEST(CheckpointAcrossDevices, WrittenAsHostTensorsLoadedOntoTheRunsDevice) {
  const fs::path dir = fs::temp_directory_path() / ("s2crop-ckpt-device-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  torch::manual_seed(5);
  torch::nn::Linear layer(4, 2);
  auto flat = s2crop::train::flatten(layer->parameters());
  s2crop::train::FusedAdamW opt;
  opt.init(flat.n, flat.param.device());
  opt.m.fill_(0.25f);
  opt.step = 7;
  s2crop::train::TrainState st;
  st.epoch = 2;
  st.step = 40;
  st.best_param = flat.param.clone() + 1;
  st.rng_states = {at::detail::getDefaultCPUGenerator().get_state()};
  s2crop::nn::ModelSpec spec;
  s2crop::train::save_checkpoint(dir.string(), "fp", flat, opt, st, spec);

  std::vector<torch::Device> devices{torch::kCPU};
  if (torch_gpus() > 0) devices.emplace_back(torch::kCUDA, 0);
  for (const auto& device : devices) {
    torch::nn::Linear other(4, 2);
    other->to(device);
    auto into = s2crop::train::flatten(other->parameters());
    s2crop::train::FusedAdamW opt2;
    opt2.init(into.n, into.param.device());
    s2crop::train::TrainState st2;
    ASSERT_TRUE(s2crop::train::load_checkpoint(dir.string(), "fp", into, opt2, st2, 1));
    EXPECT_EQ(into.param.device(), device);
    EXPECT_EQ(opt2.m.device(), device) << "optimiser state on the run's device";
    EXPECT_EQ(st2.best_param.device(), device);
    EXPECT_TRUE(torch::equal(into.param.cpu(), flat.param));
    EXPECT_TRUE(torch::equal(st2.best_param.cpu(), st.best_param));
    EXPECT_EQ(opt2.m.cpu().sum().item<float>(), 0.25f * static_cast<float>(flat.n));
    EXPECT_EQ(opt2.step, 7);
    EXPECT_EQ(st2.step, 40);
  }
  fs::remove_all(dir);
}

TEST(InferencePlace, CpuFloat32IsTheTensorItselfAndBf16CastsOnTheWay) {
  DeviceChoice cpu;
  auto host = torch::randn({4, 12, 3});
  InferencePlace fp32(cpu, Precision::Fp32);
  auto in = fp32.in(host);
  EXPECT_EQ(in.data_ptr(), host.data_ptr()) << "no copy on the CPU in float32";
  InferencePlace bf16(cpu, Precision::Bf16);
  EXPECT_EQ(bf16.in(host).scalar_type(), torch::kBFloat16);
  auto back = InferencePlace::out(bf16.in(host));
  EXPECT_EQ(back.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(back.device().is_cpu());
  EXPECT_TRUE(torch::allclose(back, host, 1e-2, 1e-2));
  EXPECT_EQ(fp32.batch_that_fits(1000), 0u) << "batches are the user's on the CPU";
  torch::nn::Linear layer(3, 2);
  bf16.prepare(*layer);
  EXPECT_EQ(layer->weight.scalar_type(), torch::kBFloat16);
}

TEST(LstmClassifierPrecision, Bf16GemmsStayCloseToFloat32) {
  torch::manual_seed(11);
  ModelSpec spec;
  spec.bands = {"B02", "B03", "B04", "B08"};
  spec.ndvi = true;
  spec.hidden = 32;
  spec.layers = 2;
  spec.class_names = {"a", "b", "c", "d", "e"};
  LstmClassifier model(spec);
  model->eval();
  torch::InferenceMode guard;
  auto x = torch::randn({256, 12, spec.n_features()});
  auto fp32 = model->infer(x);
  auto same = model->infer(x, torch::kFloat32);
  EXPECT_TRUE(torch::equal(fp32, same)) << "float32 GEMMs are the default path, bit for bit";
  auto bf16 = model->infer(x, torch::kBFloat16);
  EXPECT_EQ(bf16.scalar_type(), torch::kFloat32) << "the state and the output stay float32";
  const double err = (bf16.exp() - fp32.exp()).abs().max().item<double>();
  EXPECT_LT(err, 0.02) << "probabilities within 2 points";
  EXPECT_GT(err, 0.0) << "the GEMMs did run in bfloat16";
  // The same function as forward() (the GPU path) up to float rounding.
  EXPECT_TRUE(torch::allclose(model->forward(x), fp32, 1e-4, 1e-4));
}
