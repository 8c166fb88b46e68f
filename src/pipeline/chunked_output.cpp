#include "s2crop/pipeline/chunked_output.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "s2crop/common/errors.hpp"

namespace s2crop::pipeline {

namespace {

constexpr char kIndexMagic[8] = {'S', '2', 'C', 'I', 'N', 'D', 'X', '1'};
constexpr int kShipHeaderTag = 7302, kShipDataTag = 7303;
// MPI counts are int: a block's chunks travel in pieces of at most this.
constexpr size_t kShipPiece = size_t{1} << 30;

std::uint32_t crc32_of(const std::uint8_t* data, size_t n) {
  return static_cast<std::uint32_t>(crc32_z(crc32(0L, Z_NULL, 0), data, n));
}

}  // namespace

// ---------------------------------------------------------------- ChunkIndex

std::vector<std::uint8_t> ChunkIndex::encode() const {
  std::vector<std::uint8_t> out(24 + entries.size() * sizeof(Entry));
  const std::uint64_t count = entries.size();
  std::memcpy(out.data(), kIndexMagic, 8);
  std::memcpy(out.data() + 8, &generation, 8);
  std::memcpy(out.data() + 16, &count, 8);
  if (!entries.empty()) std::memcpy(out.data() + 24, entries.data(), entries.size() * sizeof(Entry));
  return out;
}

ChunkIndex ChunkIndex::decode(const std::vector<std::uint8_t>& payload, size_t chunks, const std::string& part) {
  static_assert(sizeof(Entry) == 24, "the index's entries are written as they are in memory");
  ChunkIndex index;
  std::uint64_t count = 0;
  if (payload.size() < 24 || std::memcmp(payload.data(), kIndexMagic, 8) != 0)
    throw InputError(part, "is not a block index of this s2crop version; it is recomputed");
  std::memcpy(&index.generation, payload.data() + 8, 8);
  std::memcpy(&count, payload.data() + 16, 8);
  if (count != chunks || payload.size() != 24 + chunks * sizeof(Entry))
    throw InputError(part, "indexes " + std::to_string(count) + " chunks, " + std::to_string(chunks) +
                               " expected; it is recomputed");
  index.entries.resize(chunks);
  if (chunks) std::memcpy(index.entries.data(), payload.data() + 24, chunks * sizeof(Entry));
  return index;
}

std::string generation_file(const std::string& output, std::uint64_t generation) {
  return output + ".parts/generation." + std::to_string(generation) + ".h5";
}

std::vector<std::uint8_t> read_indexed_chunks(const ChunkIndex& index, const std::string& data_file) {
  const size_t n = index.entries.size();
  size_t total = 8 * (1 + n);
  for (auto& e : index.entries) total += e.bytes;
  std::vector<std::uint8_t> packed(8 * (1 + n));
  const std::uint64_t count = n;
  std::memcpy(packed.data(), &count, 8);
  for (size_t k = 0; k < n; ++k) std::memcpy(packed.data() + 8 * (1 + k), &index.entries[k].bytes, 8);
  const int fd = ::open(data_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(data_file, std::string("cannot open the interrupted run's output: ") + std::strerror(errno));
  packed.resize(total);
  size_t at = 8 * (1 + n);
  for (size_t k = 0; k < n; ++k) {
    const ChunkIndex::Entry& e = index.entries[k];
    size_t got = 0;
    while (got < e.bytes) {
      const ssize_t r = ::pread(fd, packed.data() + at + got, e.bytes - got, static_cast<off_t>(e.address + got));
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    if (got != e.bytes || crc32_of(packed.data() + at, e.bytes) != e.crc) {
      ::close(fd);
      throw InputError(data_file, "chunk " + std::to_string(k) + " of a block (at byte " + std::to_string(e.address) +
                                      ") does not match its checksum (lost in a crash, or the file was changed)");
    }
    at += e.bytes;
  }
  ::close(fd);
  return packed;
}

// ---------------------------------------------------------------- ChunkWriter

ChunkWriter::ChunkWriter(const std::string& path, std::uint64_t generation, const ChunkCodec& codec,
                         const ChunkedOutput& output)
    : path_(path), generation_(generation), codec_(codec), output_(output) {
  if (!output.create) throw Error("ChunkWriter: the stage gave no way to create its output");
  std::lock_guard<std::mutex> hold(h5::library_mutex());
  file_ = std::make_unique<h5::File>(h5::File::create_single_writer(path));
  targets_ = output.create(*file_);
}

ChunkWriter::~ChunkWriter() {
  std::lock_guard<std::mutex> hold(h5::library_mutex());
  targets_ = OutputTargets();
  file_.reset();  // unwinding: HDF5 closes what it can; the file is the next run's to check, not a result
}

void ChunkWriter::store(size_t unit, size_t group, const geo::Window& window, int chunk_w, int chunk_h,
                        const std::vector<std::uint8_t>& packed, const std::string& part, const PartKind& kind) {
  const size_t across = ChunkCodec::chunks_across(window, chunk_w), down = ChunkCodec::chunks_down(window, chunk_h);
  const PackedChunks chunks(codec_, packed, across * down, part);
  const std::vector<PlaneTarget>& planes = targets_.planes.at(group);
  if (planes.size() != codec_.planes())
    throw Error(path_ + ": the stage's output has " + std::to_string(planes.size()) + " planes per block, its codec " +
                std::to_string(codec_.planes()));
  ChunkIndex index;
  index.generation = generation_;
  index.entries.reserve(planes.size() * across * down);
  std::unique_lock<std::mutex> hold(h5::library_mutex());
  for (size_t p = 0; p < planes.size(); ++p) {
    const h5::Dataset& dataset = targets_.datasets.at(planes[p].dataset);
    std::vector<hsize_t> at = planes[p].leading;
    at.resize(at.size() + 2);
    for (size_t k = 0; k < across * down; ++k) {
      at[at.size() - 2] = static_cast<hsize_t>(window.y0) + (k / across) * static_cast<hsize_t>(chunk_h);
      at[at.size() - 1] = static_cast<hsize_t>(window.x0) + (k % across) * static_cast<hsize_t>(chunk_w);
      const std::uint8_t* data = chunks.data(p, k);
      const size_t bytes = chunks.size(p, k);
      const std::uint64_t address = dataset.write_chunk(at, data, bytes);
      index.entries.push_back({address, bytes, crc32_of(data, bytes), 0});
      bytes_ += bytes;
    }
  }
  hold.unlock();
  write_part(part, kind, window, index.encode());
  if (output_.stored) output_.stored(unit, chunks);
}

void ChunkWriter::close() {
  std::lock_guard<std::mutex> hold(h5::library_mutex());
  targets_ = OutputTargets();
  file_->close();
}

// ---------------------------------------------------------------- shipping to rank 0

ChunkShipper::~ChunkShipper() {
  try {
    wait_all();
  } catch (...) {
  }
}

std::vector<std::uint8_t>& ChunkShipper::next_buffer() {
  current_ = 1 - current_;
  Slot& s = slots_[current_];
  if (!s.requests.empty()) {
    MPI_Waitall(static_cast<int>(s.requests.size()), s.requests.data(), MPI_STATUSES_IGNORE);
    s.requests.clear();
  }
  return s.data;
}

void ChunkShipper::send(size_t unit) {
  Slot& s = slots_[current_];
  s.header[0] = unit;
  s.header[1] = s.data.size();
  s.requests.emplace_back();
  MPI_Isend(s.header, 2, MPI_UINT64_T, 0, kShipHeaderTag, comm_, &s.requests.back());
  for (size_t at = 0; at < s.data.size(); at += kShipPiece) {
    s.requests.emplace_back();
    MPI_Isend(s.data.data() + at, static_cast<int>(std::min(kShipPiece, s.data.size() - at)), MPI_BYTE, 0,
              kShipDataTag, comm_, &s.requests.back());
  }
}

void ChunkShipper::wait_all() {
  for (Slot& s : slots_) {
    if (s.requests.empty()) continue;
    MPI_Waitall(static_cast<int>(s.requests.size()), s.requests.data(), MPI_STATUSES_IGNORE);
    s.requests.clear();
  }
}

size_t receive_shipped(MPI_Comm comm, bool wait, std::vector<std::uint8_t>& packed,
                       const std::function<void(size_t, const std::vector<std::uint8_t>&)>& store) {
  size_t received = 0;
  for (;;) {
    MPI_Status st;
    int flag = 0;
    if (wait && received == 0) {
      MPI_Probe(MPI_ANY_SOURCE, kShipHeaderTag, comm, &st);
      flag = 1;
    } else {
      MPI_Iprobe(MPI_ANY_SOURCE, kShipHeaderTag, comm, &flag, &st);
    }
    if (!flag) return received;
    std::uint64_t header[2];
    MPI_Recv(header, 2, MPI_UINT64_T, st.MPI_SOURCE, kShipHeaderTag, comm, MPI_STATUS_IGNORE);
    packed.resize(header[1]);
    // The pieces of one block, in order: messages of one sender with one tag do not overtake each other.
    for (size_t at = 0; at < packed.size(); at += kShipPiece)
      MPI_Recv(packed.data() + at, static_cast<int>(std::min(kShipPiece, packed.size() - at)), MPI_BYTE,
               st.MPI_SOURCE, kShipDataTag, comm, MPI_STATUS_IGNORE);
    store(static_cast<size_t>(header[0]), packed);
    ++received;
  }
}

}  // namespace s2crop::pipeline
