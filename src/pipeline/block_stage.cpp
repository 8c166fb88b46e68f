#include "s2crop/pipeline/block_stage.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/hash.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/pipeline/stage_support.hpp"
#include "s2crop/version.hpp"

namespace fs = std::filesystem;

namespace s2crop::pipeline {

namespace {
// The staged output's name: written by compute(), moved into place by finish(), adopted back by a rerun.
constexpr const char* kPartialSuffix = ".partial.h5";
std::string partial_path(const std::string& output) { return output + kPartialSuffix; }

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void check_block_size(int block_size, BlockSizeLimits limits) {
  if (block_size < limits.min || block_size > limits.max)
    throw ConfigError("--block-size must be " + std::to_string(limits.min) + "-" + std::to_string(limits.max) +
                      " (got " + std::to_string(block_size) + ")");
}

void check_deflate(int level) {
  if (level < 0 || level > 9) throw ConfigError("--deflate must be 0-9 (got " + std::to_string(level) + ")");
}

// ---------------------------------------------------------------- Fingerprint

Fingerprint& Fingerprint::add(const std::string& key, const std::string& value) {
  text_ += key;
  text_ += ' ';
  text_ += value;
  text_ += '\n';
  return *this;
}

Fingerprint& Fingerprint::add(const std::string& key, double value) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", value);
  return add(key, std::string(buf));
}

Fingerprint& Fingerprint::add_file_identity(const std::string& path) {
  return add("file " + path, hash::file_identity(path));
}

Fingerprint& Fingerprint::add_file_content(const std::string& path) {
  return add("content " + path, hash::hex64(hash::file_content(path)));
}

std::string Fingerprint::hex() const { return hash::hex64(hash::fnv1a(text_)); }

// ---------------------------------------------------------------- BlockStage

std::string hdf5_run_fingerprint(const std::string& path) {
  try {
    return h5::File::open_read(path, MPI_COMM_NULL).attr_string("run_fingerprint");
  } catch (const Error&) {
    return std::string();
  }
}

BlockStage::BlockStage(BlockStageConfig config, const parallel::MpiContext& mpi)
    : config_(std::move(config)), mpi_(mpi), started_(now_seconds()) {
  if (config_.outputs.empty()) config_.outputs.push_back(config_.output);
}

BlockStage::~BlockStage() {
  // A run that fails after its compute phase (a refused result, an export that cannot be written): its complete file
  // goes back under the parts, where a rerun takes its blocks from, and nothing beside the output looks finished.
  if (mpi_.is_root() && output_done_ && !finished_) {
    std::error_code ec;
    fs::rename(staged_path_, generation_file(config_.output, generation_), ec);
  }
}

void BlockStage::check_outputs() {
  parallel::root_first(mpi_.world(), [&] {
    for (const std::string& out : config_.outputs) {
      const std::string parent = fs::path(out).parent_path().string();
      ensure_dir(parent.empty() ? "." : parent);
    }
    for (const std::string& dir : config_.export_dirs)
      if (!dir.empty()) ensure_dir(dir);
  });
}

bool BlockStage::begin(const std::string& parts_fingerprint, const std::string& output_fingerprint,
                       const std::vector<std::string>& groups) {
  groups_ = groups;
  output_fingerprint_ = output_fingerprint;
  bool complete = false;
  parallel::root_first(mpi_.world(), [&] {
    lock_ = std::make_unique<OutputLock>(config_.output);
    // Complete when every output carries this run's fingerprint; an output of another run is refused (or replaced
    // with --overwrite), so a changed input never passes as done.
    bool all_match = true;
    for (const std::string& out : config_.outputs) {
      std::string previous;
      if (fs::exists(out) && config_.stored_fingerprint) previous = config_.stored_fingerprint(out);
      if (!output_is_complete(out, previous, output_fingerprint, config_.overwrite, config_.depends_on))
        all_match = false;
    }
    if (all_match) {
      complete = true;
      return;
    }
    prepare_parts_dir(config_.output, parts_fingerprint, config_.overwrite, config_.depends_on);
    for (const std::string& g : groups_) ensure_dir(config_.output + ".parts/" + g);
  });
  int flag = complete ? 1 : 0;
  MPI_Bcast(&flag, 1, MPI_INT, 0, mpi_.world());
  if (flag) {
    if (lock_) lock_->release_and_remove();
    log::root(config_.output + " is already complete for these " + config_.depends_on + ": nothing to do");
    return false;
  }
  return true;
}

std::vector<size_t> BlockStage::resume(std::vector<BlockUnit> units) {
  units_ = std::move(units);
  unit_of_.assign(groups_.size(), {});
  for (size_t u = 0; u < units_.size(); ++u) {
    auto& row = unit_of_.at(units_[u].group);
    if (row.size() <= units_[u].block) row.resize(units_[u].block + 1, kNone);
    row[units_[u].block] = u;
  }
  if (config_.codec.active())
    parallel::root_first(mpi_.world(), [&] { generation_ = adopt_interrupted_output(); });
  // Rename makes parts atomic against SIGKILL, not against a node crash: every part found is checked before it is
  // trusted (with a ChunkCodec, the chunks it indexes too), the reading spread over the ranks; a damaged one is
  // deleted and recomputed.
  std::vector<int> done(units_.size(), 0);
  for (size_t u = static_cast<size_t>(mpi_.rank()); u < units_.size(); u += static_cast<size_t>(mpi_.size())) {
    const std::string path = part_path(u);
    std::error_code ec;
    if (!fs::exists(path, ec)) continue;
    try {
      read_part(u);
      done[u] = 1;
    } catch (const InputError& e) {
      log::warn(std::string(e.what()) + " - recomputing that block");
      fs::remove(path, ec);
    }
  }
  if (!done.empty())
    MPI_Allreduce(MPI_IN_PLACE, done.data(), static_cast<int>(done.size()), MPI_INT, MPI_MAX, mpi_.world());
  std::vector<size_t> todo;
  for (size_t u = 0; u < units_.size(); ++u)
    if (!done[u]) todo.push_back(u);
  done_before_ = static_cast<std::int64_t>(units_.size() - todo.size());
  return todo;
}

std::vector<size_t> BlockStage::assigned(const std::vector<size_t>& todo) const {
  std::vector<double> costs;
  std::vector<double> head_start(static_cast<size_t>(mpi_.size()), 0.0);
  for (size_t u : todo) {
    costs.push_back(units_.at(u).cost);
    if (config_.codec.active() && mpi_.size() > 1) head_start[0] += units_.at(u).write_cost;  // rank 0 writes them
  }
  const auto assignment = parallel::balance(costs, mpi_.size(), head_start);  // named: a range-for over an element
                                                                               // of the temporary would dangle
  std::vector<size_t> out;
  for (size_t k : assignment[static_cast<size_t>(mpi_.rank())]) out.push_back(todo[k]);
  return out;
}

std::vector<size_t> BlockStage::compute(const std::vector<size_t>& todo,
                                        const std::function<void(size_t, std::uint8_t*)>& fn,
                                        const ChunkedOutput& output) {
  const bool chunked = config_.codec.active();
  if (chunked) {
    if (!output.create) throw Error(config_.stage + ": a stage with compressed chunks must say how its output is made");
    staged_output();
    parallel::root_first(mpi_.world(), [&] { open_output(output, todo); });
  }
  std::vector<size_t> mine;
  UnitProgress progress(mpi_, config_.stage, static_cast<std::int64_t>(units_.size()), done_before_);
  std::vector<std::uint8_t> block, packed, incoming;  // ChunkCodec: reused, so memory follows the block size
  ChunkShipper shipper(mpi_.world());
  const std::vector<size_t> order = assigned(todo);
  std::int64_t from_others = static_cast<std::int64_t>(todo.size() - order.size()), received = 0;
  // Rank 0: a block of another rank into the file as it arrives; it counts as done there.
  double writing = 0, waiting = 0;  // rank 0 writing chunks; another rank waiting for rank 0 to take its blocks
  auto store = [&](size_t u, const std::vector<std::uint8_t>& p) {
    const BlockUnit& unit = units_.at(u);
    const double t0 = now_seconds();
    writer_->store(u, unit.group, unit.window, unit.chunk_w(), unit.chunk_h(), p, part_path(u), config_.part_kind);
    writing += now_seconds() - t0;
  };
  auto receive = [&](bool wait) {
    const auto n = static_cast<std::int64_t>(receive_shipped(mpi_.world(), wait, incoming, store));
    received += n;
    progress.add_done(n);
  };
  double packing = 0;
  for (size_t u : order) {
    const BlockUnit& unit = units_[u];
    if (chunked) {
      block.resize(unit.payload_bytes);
      fn(u, block.data());
      const double t0 = now_seconds();
      std::vector<std::uint8_t>& out = mpi_.is_root() ? packed : shipper.next_buffer();
      waiting += now_seconds() - t0;
      config_.codec.pack(block.data(), unit.window, unit.chunk_w(), unit.chunk_h(), out);
      if (mpi_.is_root()) {
        store(u, out);
        progress.unit_done();
        receive(false);
      } else {
        shipper.send(u);  // rank 0 counts it when it has written it
      }
      packing += now_seconds() - t0;
    } else {
      PartWriter part(part_path(u), config_.part_kind, unit.window, unit.payload_bytes);
      fn(u, part.payload());
      part.commit();
      progress.unit_done();
    }
    mine.push_back(u);
  }
  if (chunked) {
    if (mpi_.is_root())
      while (received < from_others) receive(true);
    else {
      const double w0 = now_seconds();
      shipper.wait_all();
      waiting += now_seconds() - w0;
    }
  }
  progress.finish(static_cast<std::int64_t>(units_.size()));
  if (chunked) {
    parallel::root_first(mpi_.world(), [&] {
      writer_->close();
      writer_.reset();
      // Complete: under the name exports read and finish() moves into place.
      std::error_code ec;
      fs::rename(generation_file(config_.output, generation_), staged_path_, ec);
      if (ec) throw OutputError(staged_path_, "cannot move the finished output here: " + ec.message());
    });
    output_done_ = true;
    // The output's compression happens here, once, and its chunks are written once.
    const double total = parallel::sum_double(mpi_.world(), packing);
    const double waited = parallel::sum_double(mpi_.world(), waiting);
    if (mpi_.is_root() && !todo.empty()) {
      char line[320];
      std::snprintf(line, sizeof line, "%s: compressing the blocks and writing their chunks took %.3f s per rank "
                    "(rank 0 writing every rank's chunks: %.3f s; the other ranks waiting for rank 0 to take their "
                    "blocks: %.3f s per rank)", config_.stage.c_str(), total / mpi_.size(), writing,
                    mpi_.size() > 1 ? waited / (mpi_.size() - 1) : 0.0);
      log::info(line);
    }
  }
  MPI_Barrier(mpi_.world());
  return mine;
}

std::uint64_t BlockStage::adopt_interrupted_output() {
  const std::string parts = config_.output + ".parts", partial = partial_path(config_.output);
  std::uint64_t last = 0;
  {
    std::ifstream in(parts + "/generation");
    in >> last;
  }
  std::error_code ec;
  if (fs::exists(partial, ec)) {
    // The output of a run that was interrupted (or failed) after its compute phase: back under the parts, where its
    // blocks' indexes say their chunks are.
    if (last > 0 && !fs::exists(generation_file(config_.output, last), ec)) {
      fs::rename(partial, generation_file(config_.output, last), ec);
      if (ec) throw OutputError(partial, "cannot move it under " + parts + ": " + ec.message());
    } else {
      fs::remove(partial, ec);  // of no run these parts know
    }
  }
  std::uint64_t newest = last;
  for (auto& e : fs::directory_iterator(parts, ec)) {
    const std::string name = e.path().filename().string();
    unsigned long long g = 0;
    if (std::sscanf(name.c_str(), "generation.%llu.h5", &g) == 1) newest = std::max<std::uint64_t>(newest, g);
  }
  return newest + 1;
}

void BlockStage::open_output(const ChunkedOutput& output, const std::vector<size_t>& todo) {
  if (!mpi_.is_root()) return;
  // The generation is recorded before the file exists: a file found without it is of no run and removed.
  write_text_atomically(config_.output + ".parts/generation", std::to_string(generation_) + "\n");
  writer_ = std::make_unique<ChunkWriter>(generation_file(config_.output, generation_), generation_, config_.codec,
                                          output);
  std::vector<char> pending(units_.size(), 0);
  for (size_t u : todo) pending[u] = 1;
  size_t kept = 0;
  for (size_t u = 0; u < units_.size(); ++u) {
    if (pending[u]) continue;
    const BlockUnit& unit = units_[u];
    const ChunkIndex index = ChunkIndex::decode(
        pipeline::read_part(part_path(u), config_.part_kind, unit.window, kAnyPayloadSize), chunk_count(u), part_path(u));
    const std::vector<std::uint8_t> packed =
        read_indexed_chunks(index, generation_file(config_.output, index.generation));
    writer_->store(u, unit.group, unit.window, unit.chunk_w(), unit.chunk_h(), packed, part_path(u),
                   config_.part_kind);
    ++kept;
  }
  if (kept > 0) {
    char line[200];
    std::snprintf(line, sizeof line, "%s: %zu block(s) of the interrupted run copied into the new output (%.1f MiB)",
                  config_.stage.c_str(), kept, static_cast<double>(writer_->bytes_stored()) / 1048576.0);
    log::info(line);
  }
  // Every kept block is in this generation's file now: the older ones go.
  std::error_code ec;
  for (std::uint64_t g = 1; g < generation_; ++g) fs::remove(generation_file(config_.output, g), ec);
}

size_t BlockStage::unit_of(size_t group, size_t block) const {
  if (group >= unit_of_.size() || block >= unit_of_[group].size()) return kNone;
  return unit_of_[group][block];
}

std::string BlockStage::part_path(size_t unit) const {
  const BlockUnit& u = units_.at(unit);
  char name[32];
  std::snprintf(name, sizeof name, "%06zu.part", u.block);
  return config_.output + ".parts/" + groups_.at(u.group) + "/" + name;
}

std::vector<std::uint8_t> BlockStage::read_part(size_t unit) const {
  const BlockUnit& u = units_.at(unit);
  if (!config_.codec.active()) return pipeline::read_part(part_path(unit), config_.part_kind, u.window, u.payload_bytes);
  std::vector<std::uint8_t> part = pipeline::read_part(part_path(unit), config_.part_kind, u.window, kAnyPayloadSize);
  const ChunkIndex index = ChunkIndex::decode(part, chunk_count(unit), part_path(unit));
  // Resume trusts a block only when every chunk it indexes reads back with its checksum.
  read_indexed_chunks(index, generation_file(config_.output, index.generation));
  return part;
}

size_t BlockStage::chunk_count(size_t unit) const {
  const BlockUnit& u = units_.at(unit);
  return config_.codec.planes() * ChunkCodec::chunks_across(u.window, u.chunk_w()) *
         ChunkCodec::chunks_down(u.window, u.chunk_h());
}

void BlockStage::unpack(size_t unit, const PackedChunks& chunks, size_t plane, void* out) const {
  const BlockUnit& u = units_.at(unit);
  chunks.unpack(plane, u.window, u.chunk_w(), u.chunk_h(), out);
}

const std::string& BlockStage::staged_output() {
  if (staged_path_.empty()) {
    staged_path_ = partial_path(config_.output);
    // Every rank writes identical attribute values: rank 0's clock.
    created_ = parallel::broadcast_string(mpi_.world(), log::utc_timestamp());
  }
  return staged_path_;
}

void BlockStage::write_file_attrs(h5::File& file, const std::string& format, std::int64_t format_version,
                                  const std::string& config_text) const {
  file.set_attr("Conventions", std::string("CF-1.8"));  // the tile grids: see write_tile_georeference
  file.set_attr("format", format);
  file.set_attr("format_version", format_version);
  file.set_attr("s2crop_version", std::string(kVersion));
  file.set_attr("created", created_);
  file.set_attr("config", config_text);
  file.set_attr("run_fingerprint", output_fingerprint_);
}

void BlockStage::finish(const std::string& wrote) {
  finished_ = true;
  MPI_Barrier(mpi_.world());
  parallel::root_first(mpi_.world(), [&] {
    std::error_code exists;
    if (!staged_path_.empty() && fs::exists(staged_path_, exists)) StagedFile(config_.output, kPartialSuffix).commit();
    std::error_code ec;
    fs::remove_all(config_.output + ".parts", ec);
    lock_->release_and_remove();
    log::info("wrote " + wrote + " in " + log::format_duration(now_seconds() - started_));
  });
}

}  // namespace s2crop::pipeline
