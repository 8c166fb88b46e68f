#pragma once
// MPI context and the fail-fast rule: an error on one rank must stop every rank quickly with the message,
// never leave the others waiting in a collective.
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace s2crop::parallel {

class MpiContext {
 public:
  MpiContext(int& argc, char**& argv);  // MPI_Init_thread(FUNNELED); sets the log's rank prefix
  ~MpiContext();                        // MPI_Finalize
  MpiContext(const MpiContext&) = delete;
  MpiContext& operator=(const MpiContext&) = delete;

  MPI_Comm world() const { return MPI_COMM_WORLD; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  // Ranks sharing this node, from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) - never from SLURM_LOCALID, which is 0
  // for every rank under mpirun inside sbatch.
  MPI_Comm node() const { return node_comm_; }
  int node_rank() const { return node_rank_; }
  int node_size() const { return node_size_; }
  // Collective: where the ranks run, for the log (rank 0 gets the text, the others ""). See describe_placement.
  std::string placement() const;

 private:
  int rank_ = 0, size_ = 1, node_rank_ = 0, node_size_ = 1;
  MPI_Comm node_comm_ = MPI_COMM_NULL;
};

// "6 rank(s) on 3 host(s): node1 ranks 0-1 (node-local 0-1), node2 ranks 2-3 (node-local 0-1), ..." from every
// rank's host name and node-local rank (indexed by rank); hosts in order of their first rank, at most 16 named.
std::string describe_placement(const std::vector<std::string>& hosts, const std::vector<int>& node_ranks);

// Logs `message` as an error and aborts every rank (MPI_Abort) with `exit_code`. Used when one rank fails while
// others may be inside collectives.
[[noreturn]] void fail_fast(const std::string& message, int exit_code = 1);

// Runs `work` on rank 0 only. If it throws, the message is broadcast and every rank throws the same
// s2crop::Error, so a validation failure exits all ranks cleanly with one message. Collective.
void root_first(MPI_Comm comm, const std::function<void()>& work);

std::string broadcast_string(MPI_Comm comm, const std::string& value, int root = 0);
bool all_true(MPI_Comm comm, bool value);
// Gathers one string per rank on `root` (others get an empty vector).
std::vector<std::string> gather_strings(MPI_Comm comm, const std::string& value, int root = 0);
std::int64_t sum(MPI_Comm comm, std::int64_t value);
double sum_double(MPI_Comm comm, double value);

// Deterministic load balancing: assigns each unit (by cost) to a rank, longest-processing-time first onto the least
// loaded rank, ties broken by unit index and rank. `head_start` (empty, or one per rank): load a rank carries before
// any unit (other work it does). Returns per rank the sorted unit indices.
std::vector<std::vector<std::size_t>> balance(const std::vector<double>& costs, int ranks,
                                              const std::vector<double>& head_start = {});

// Deterministic split of an ordered unit list into `ranks` contiguous ranges of near-equal cost, for stages whose
// output is the concatenation of the ranks' results in rank order (so that order must be the global unit order).
// Returns ranks+1 boundaries: rank r owns units [bounds[r], bounds[r+1]). A unit goes to the rank whose share of the
// total cost contains the unit's cost midpoint.
std::vector<std::size_t> contiguous_ranges(const std::vector<double>& costs, int ranks);

}  // namespace s2crop::parallel
