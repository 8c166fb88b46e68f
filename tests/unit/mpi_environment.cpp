// HDF5 files are written through MPI-IO (MPI_COMM_SELF in single-process tests): MPI must be up, once for the whole
// unit-test binary. Every test that writes HDF5 (h5, patch sets, model files) relies on this one registration; the
// block-stage tests use its MpiContext.
#include "mpi_environment.hpp"

#include <gtest/gtest.h>
#include <mpi.h>

#include <memory>

namespace {

std::unique_ptr<s2crop::parallel::MpiContext> g_mpi;

class MpiEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    int argc = 0;
    char** argv = nullptr;
    if (!g_mpi) g_mpi = std::make_unique<s2crop::parallel::MpiContext>(argc, argv);
  }
  void TearDown() override { g_mpi.reset(); }  // MPI_Finalize
};
const auto* const kMpi = ::testing::AddGlobalTestEnvironment(new MpiEnvironment);

}  // namespace

const s2crop::parallel::MpiContext& unit_test_mpi() { return *g_mpi; }
