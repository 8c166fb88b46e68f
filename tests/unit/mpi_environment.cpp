// HDF5 files are written through MPI-IO (MPI_COMM_SELF in single-process tests): MPI must be up, once for the whole
// unit-test binary. Every test that writes HDF5 (h5, patch sets, model files) relies on this one registration.
#include <gtest/gtest.h>
#include <mpi.h>

namespace {

class MpiEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    int up = 0;
    MPI_Initialized(&up);
    if (!up) MPI_Init(nullptr, nullptr);
  }
  void TearDown() override {
    int down = 0;
    MPI_Finalized(&down);
    if (!down) MPI_Finalize();
  }
};
const auto* const kMpi = ::testing::AddGlobalTestEnvironment(new MpiEnvironment);

}  // namespace
