#include "s2crop/parallel/mpi.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <queue>
#include <unordered_map>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"

namespace s2crop::parallel {

MpiContext::MpiContext(int& argc, char**& argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node_comm_);
  MPI_Comm_rank(node_comm_, &node_rank_);
  MPI_Comm_size(node_comm_, &node_size_);
  log::set_rank(rank_, size_);
}

MpiContext::~MpiContext() {
  if (node_comm_ != MPI_COMM_NULL) MPI_Comm_free(&node_comm_);
  MPI_Finalize();
}

namespace {

// "0-1", "0,2,5", "3": ascending integers with runs joined.
std::string ranges(const std::vector<int>& v) {
  std::string out;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(v[i]) + (j > i ? "-" + std::to_string(v[j]) : "");
    i = j + 1;
  }
  return out;
}

}  // namespace

std::string describe_placement(const std::vector<std::string>& hosts, const std::vector<int>& node_ranks) {
  constexpr size_t kNamed = 16;
  std::vector<std::string> order;
  std::unordered_map<std::string, size_t> index;  // host -> position in order (thousands of ranks at start-up)
  std::vector<std::vector<int>> ranks, locals;
  for (size_t r = 0; r < hosts.size(); ++r) {
    const auto [at, added] = index.emplace(hosts[r], order.size());
    const size_t h = at->second;
    if (added) {
      order.push_back(hosts[r]);
      ranks.emplace_back();
      locals.emplace_back();
    }
    ranks[h].push_back(static_cast<int>(r));
    locals[h].push_back(r < node_ranks.size() ? node_ranks[r] : -1);
  }
  std::string out = std::to_string(hosts.size()) + " rank(s) on " + std::to_string(order.size()) + " host(s): ";
  for (size_t h = 0; h < order.size() && h < kNamed; ++h) {
    std::vector<int> local = locals[h];
    std::sort(local.begin(), local.end());
    out += (h ? ", " : "") + order[h] + " ranks " + ranges(ranks[h]) + " (node-local " + ranges(local) + ")";
  }
  if (order.size() > kNamed) out += ", and " + std::to_string(order.size() - kNamed) + " more host(s)";
  return out;
}

std::string MpiContext::placement() const {
  char name[MPI_MAX_PROCESSOR_NAME] = {0};
  int length = 0;
  MPI_Get_processor_name(name, &length);
  std::vector<char> names(is_root() ? static_cast<size_t>(size_) * MPI_MAX_PROCESSOR_NAME : 0);
  std::vector<int> node_ranks(is_root() ? static_cast<size_t>(size_) : 0);
  MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0, MPI_COMM_WORLD);
  MPI_Gather(&node_rank_, 1, MPI_INT, node_ranks.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (!is_root()) return {};
  std::vector<std::string> hosts;
  for (int r = 0; r < size_; ++r) {
    const char* n = names.data() + static_cast<size_t>(r) * MPI_MAX_PROCESSOR_NAME;
    hosts.emplace_back(n, strnlen(n, MPI_MAX_PROCESSOR_NAME));
  }
  return describe_placement(hosts, node_ranks);
}

void fail_fast(const std::string& message, int exit_code) {
  log::error(message);
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  int size = 1;
  if (initialized && !finalized) MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) {
    log::error("aborting all ranks");
    MPI_Abort(MPI_COMM_WORLD, exit_code);
  }
  std::_Exit(exit_code);
}

std::string broadcast_string(MPI_Comm comm, const std::string& value, int root) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  long long n = static_cast<long long>(value.size());
  MPI_Bcast(&n, 1, MPI_LONG_LONG, root, comm);
  std::string out = rank == root ? value : std::string(static_cast<size_t>(n), '\0');
  // Large payloads (acquisition lists of a country) go in pieces below INT_MAX.
  const long long piece = 1 << 30;
  for (long long off = 0; off < n; off += piece)
    MPI_Bcast(out.data() + off, static_cast<int>(std::min(piece, n - off)), MPI_CHAR, root, comm);
  return out;
}

void root_first(MPI_Comm comm, const std::function<void()>& work) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  std::string error;
  int kind = 0;  // 0 ok, 1 ConfigError, 2 InputError/Error
  if (rank == 0) {
    try {
      work();
    } catch (const ConfigError& e) {
      error = e.what();
      kind = 1;
    } catch (const std::exception& e) {
      error = e.what();
      kind = 2;
    }
  }
  MPI_Bcast(&kind, 1, MPI_INT, 0, comm);
  if (kind == 0) return;
  error = broadcast_string(comm, error);
  if (kind == 1) throw ConfigError(error);
  throw AgreedError(error);
}

std::vector<std::string> gather_strings(MPI_Comm comm, const std::string& value, int root) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  // MPI counts bytes in int: more than 2 GiB in all would wrap the displacements. Every rank learns the total and
  // refuses alike, so none is left waiting in the gather.
  long long all_bytes = static_cast<long long>(value.size());
  MPI_Allreduce(MPI_IN_PLACE, &all_bytes, 1, MPI_LONG_LONG, MPI_SUM, comm);
  if (all_bytes > std::numeric_limits<int>::max())
    throw AgreedError("cannot gather " + std::to_string(all_bytes) + " bytes on rank " + std::to_string(root) +
                      " (MPI counts at most 2 GiB in one call)");
  int n = static_cast<int>(value.size());
  std::vector<int> lengths(static_cast<size_t>(size)), displs(static_cast<size_t>(size));
  MPI_Gather(&n, 1, MPI_INT, lengths.data(), 1, MPI_INT, root, comm);
  std::string all;
  if (rank == root) {
    long long total = 0;
    for (int r = 0; r < size; ++r) {
      displs[static_cast<size_t>(r)] = static_cast<int>(total);
      total += lengths[static_cast<size_t>(r)];
    }
    all.resize(static_cast<size_t>(total));
  }
  MPI_Gatherv(value.data(), n, MPI_CHAR, all.data(), lengths.data(), displs.data(), MPI_CHAR, root, comm);
  std::vector<std::string> out;
  if (rank == root)
    for (int r = 0; r < size; ++r)
      out.push_back(all.substr(static_cast<size_t>(displs[static_cast<size_t>(r)]),
                               static_cast<size_t>(lengths[static_cast<size_t>(r)])));
  return out;
}

bool all_true(MPI_Comm comm, bool value) {
  int v = value ? 1 : 0, r = 0;
  MPI_Allreduce(&v, &r, 1, MPI_INT, MPI_MIN, comm);
  return r == 1;
}

double sum_double(MPI_Comm comm, double value) {
  MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_DOUBLE, MPI_SUM, comm);
  return value;
}

std::int64_t sum(MPI_Comm comm, std::int64_t value) {
  long long v = value, r = 0;
  MPI_Allreduce(&v, &r, 1, MPI_LONG_LONG, MPI_SUM, comm);
  return r;
}

std::vector<std::vector<std::size_t>> balance(const std::vector<double>& costs, int ranks,
                                              const std::vector<double>& head_start) {
  std::vector<std::size_t> order(costs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return costs[a] > costs[b]; });
  using Load = std::pair<double, int>;  // (load, rank): ties go to the lower rank
  std::priority_queue<Load, std::vector<Load>, std::greater<Load>> heap;
  for (int r = 0; r < ranks; ++r)
    heap.push({static_cast<size_t>(r) < head_start.size() ? head_start[static_cast<size_t>(r)] : 0.0, r});
  std::vector<std::vector<std::size_t>> out(static_cast<size_t>(ranks));
  for (size_t u : order) {
    auto [load, r] = heap.top();
    heap.pop();
    out[static_cast<size_t>(r)].push_back(u);
    heap.push({load + costs[u], r});
  }
  for (auto& v : out) std::sort(v.begin(), v.end());
  return out;
}

std::vector<std::size_t> contiguous_ranges(const std::vector<double>& costs, int ranks) {
  const size_t n_ranks = static_cast<size_t>(std::max(ranks, 1));
  double total = 0;
  for (double c : costs) total += c;
  std::vector<std::size_t> bounds(n_ranks + 1, costs.size());
  bounds[0] = 0;
  // owner[u] is non-decreasing in u, so each rank's units form one range; empty ranges are allowed.
  double before = 0;
  size_t next_rank = 1;
  for (size_t u = 0; u < costs.size(); ++u) {
    const double midpoint = before + costs[u] / 2;
    const size_t owner = total > 0 ? std::min(n_ranks - 1, static_cast<size_t>(midpoint / total * n_ranks))
                                   : std::min(n_ranks - 1, u * n_ranks / costs.size());
    while (next_rank <= owner) bounds[next_rank++] = u;
    before += costs[u];
  }
  return bounds;
}

}  // namespace s2crop::parallel
