#include "s2crop/train/communicator.hpp"

#include <climits>

#include "s2crop/common/errors.hpp"

namespace s2crop::train {

namespace {

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {}
  void allreduce_sum(float* data, size_t count) override {
    // MPI counts are int: large buffers go in slices.
    for (size_t at = 0; at < count; at += kSlice)
      MPI_Allreduce(MPI_IN_PLACE, data + at, static_cast<int>(std::min(kSlice, count - at)), MPI_FLOAT, MPI_SUM, comm_);
  }
  void allreduce_sum(double* data, size_t count) override {
    for (size_t at = 0; at < count; at += kSlice)
      MPI_Allreduce(MPI_IN_PLACE, data + at, static_cast<int>(std::min(kSlice, count - at)), MPI_DOUBLE, MPI_SUM, comm_);
  }
  void broadcast(float* data, size_t count, int root) override {
    for (size_t at = 0; at < count; at += kSlice)
      MPI_Bcast(data + at, static_cast<int>(std::min(kSlice, count - at)), MPI_FLOAT, root, comm_);
  }
  std::string name() const override { return "MPI"; }

 private:
  static constexpr size_t kSlice = size_t{1} << 30;
  MPI_Comm comm_;
};

}  // namespace

BackendChoice choose_backend(const std::string& requested, bool nccl_is_built, int gpus_on_node, int node_rank,
                             int node_size) {
  BackendChoice c;
  if (requested != "auto" && requested != "mpi" && requested != "nccl")
    throw ConfigError("--backend must be auto, mpi or nccl (got '" + requested + "')");
  if (requested == "mpi") {
    c.reason = "MPI all-reduce (requested)";
    return c;
  }
  std::string why_not;
  if (!nccl_is_built)
    why_not = "this s2crop was built without NCCL (configure with -DS2CROP_WITH_NCCL=ON)";
  else if (gpus_on_node == 0)
    why_not = "no GPU visible on this node";
  else if (node_size > gpus_on_node)
    why_not = std::to_string(node_size) + " ranks on this node but " + std::to_string(gpus_on_node) +
              " GPU(s): start one rank per GPU";
  if (!why_not.empty()) {
    if (requested == "nccl") throw ConfigError("--backend nccl: " + why_not);
    c.reason = "MPI all-reduce on CPU (" + why_not + ")";
    return c;
  }
  c.backend = Backend::Nccl;
  c.gpu = node_rank;
  c.reason = "NCCL all-reduce, GPU " + std::to_string(node_rank) + " of " + std::to_string(gpus_on_node) +
             " on this node";
  return c;
}

BackendChoice choose_backend(const std::string& requested, const nn::DeviceChoice& device, bool nccl_is_built,
                             int gpus_on_node, int node_rank, int node_size) {
  if (!device.cuda && requested == "auto") {
    BackendChoice c;
    c.reason = "MPI all-reduce on CPU (the model is on the CPU)";
    return c;
  }
  BackendChoice c = choose_backend(requested, nccl_is_built, gpus_on_node, node_rank, node_size);
  if (c.backend == Backend::Nccl && device.cuda) {
    if (device.sharing > 1) {
      const std::string why = "ranks share GPU " + std::to_string(device.index) + " (NCCL needs one rank per GPU)";
      if (requested == "nccl") throw ConfigError("--backend nccl: " + why);
      c = BackendChoice{};
      c.reason = "MPI all-reduce through host memory (" + why + ")";
      return c;
    }
    c.gpu = device.index;
    c.reason += ", in place on the device buffers";
  }
  return c;
}

bool nccl_built() {
#ifdef S2CROP_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

#ifndef S2CROP_HAVE_NCCL
int visible_gpus() { return 0; }
#endif

std::unique_ptr<Communicator> make_communicator(const BackendChoice& choice, const parallel::MpiContext& mpi) {
  if (choice.backend == Backend::Nccl) {
#ifdef S2CROP_HAVE_NCCL
    return make_nccl_communicator(choice.gpu, mpi);
#else
    throw ConfigError("NCCL backend chosen but this s2crop was built without NCCL");
#endif
  }
  return std::make_unique<MpiCommunicator>(mpi.world());
}

}  // namespace s2crop::train
