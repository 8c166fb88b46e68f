// Backend selection of the gradient communicator: which ranks get NCCL and which GPU, and the MPI fallback.
#include <gtest/gtest.h>

#include "s2crop/common/errors.hpp"
#include "s2crop/train/communicator.hpp"

using s2crop::ConfigError;
using s2crop::train::Backend;
using s2crop::train::choose_backend;

TEST(BackendChoice, AutoUsesNcclWithOneGpuPerRankOnTheNode) {
  for (int local = 0; local < 4; ++local) {
    auto c = choose_backend("auto", true, 4, local, 4);
    EXPECT_EQ(c.backend, Backend::Nccl);
    EXPECT_EQ(c.gpu, local) << "the GPU is the node-local rank";
  }
}

TEST(BackendChoice, AutoFallsBackToMpiWithoutGpusOrWithoutNccl) {
  auto no_gpu = choose_backend("auto", true, 0, 0, 2);
  EXPECT_EQ(no_gpu.backend, Backend::Mpi);
  EXPECT_NE(no_gpu.reason.find("no GPU"), std::string::npos);
  auto not_built = choose_backend("auto", false, 4, 0, 1);
  EXPECT_EQ(not_built.backend, Backend::Mpi);
  EXPECT_NE(not_built.reason.find("without NCCL"), std::string::npos);
  auto too_many = choose_backend("auto", true, 2, 3, 4);
  EXPECT_EQ(too_many.backend, Backend::Mpi) << "4 ranks on 2 GPUs: no GPU may be shared";
  EXPECT_NE(too_many.reason.find("one rank per GPU"), std::string::npos);
}

TEST(BackendChoice, ExplicitRequests) {
  EXPECT_EQ(choose_backend("mpi", true, 8, 0, 8).backend, Backend::Mpi);
  EXPECT_THROW(choose_backend("nccl", false, 8, 0, 8), ConfigError);
  EXPECT_THROW(choose_backend("nccl", true, 0, 0, 1), ConfigError);
  EXPECT_THROW(choose_backend("nccl", true, 1, 1, 2), ConfigError);
  EXPECT_THROW(choose_backend("gloo", true, 1, 0, 1), ConfigError);
  auto c = choose_backend("nccl", true, 2, 1, 2);
  EXPECT_EQ(c.backend, Backend::Nccl);
  EXPECT_EQ(c.gpu, 1);
}

TEST(BackendChoice, BuildReportsNcclConsistently) {
  // Without CUDA compiled in there are no GPUs to see; with it, the count comes from the driver.
  if (!s2crop::train::nccl_built()) EXPECT_EQ(s2crop::train::visible_gpus(), 0);
  EXPECT_GE(s2crop::train::visible_gpus(), 0);
}
