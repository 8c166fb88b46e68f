#pragma once
// The main output of a ChunkCodec stage written once: rank 0 holds the staged HDF5 file
// (`<output>.parts/generation.<g>.h5`, `<output>.partial.h5` once complete) open for the whole compute phase and copies each block's compressed chunks into it as the block is finished (its
// own blocks directly, the other ranks' shipped to it over MPI: HDF5 1.10 writes raw chunks from one process only).
// Bytes written per run: the output once, plus a small index per block.
//
// Resume without trusting HDF5's metadata after a SIGKILL: a block's part (part_file.hpp) no longer holds its data but
// its ChunkIndex, written after its chunks: the generation of the staged file they are in and each chunk's address,
// size and CRC-32 there. A rerun finds the interrupted run's file under `<output>.parts/generation.<g>.h5` (moving a
// complete `<output>.partial.h5` back there), checks every indexed chunk by reading it at its address (never parsing that file as HDF5), and copies the blocks
// that pass into the new staged file (generation g + 1) before computing the rest. A block whose index or chunks do
// not check out is recomputed.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "s2crop/geo/grid.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/parallel/mpi.hpp"
#include "s2crop/pipeline/chunk_codec.hpp"
#include "s2crop/pipeline/part_file.hpp"

namespace s2crop::pipeline {

// Where a plane of a group's blocks goes: one of OutputTargets' datasets, and its indices before y and x (month, band).
struct PlaneTarget {
  size_t dataset = 0;
  std::vector<hsize_t> leading;
};

struct OutputTargets {
  std::vector<h5::Dataset> datasets;
  std::vector<std::vector<PlaneTarget>> planes;  // per group (BlockUnit::group), in the codec's plane order
  // Adds `dataset`; returns its index for PlaneTarget.
  size_t add(h5::Dataset dataset) {
    datasets.push_back(std::move(dataset));
    return datasets.size() - 1;
  }
};

// What a ChunkCodec stage tells the engine about its output (BlockStage::compute).
struct ChunkedOutput {
  // Rank 0: creates the groups, datasets and attributes of the staged output (writing no chunk) and returns where
  // each plane of each group's blocks goes.
  std::function<OutputTargets(h5::File& file)> create;
  // Rank 0, optional: called once for every unit whose chunks are in the file (computed in this run or kept from an
  // interrupted one), e.g. to total what the stage checks after the compute phase.
  std::function<void(size_t unit, const PackedChunks& chunks)> stored;
};

// The payload of a ChunkCodec stage's part.
struct ChunkIndex {
  struct Entry {
    std::uint64_t address = 0, bytes = 0;
    std::uint32_t crc = 0, reserved = 0;
  };
  std::uint64_t generation = 0;
  std::vector<Entry> entries;  // in the packed order: plane by plane, row-major within the block

  std::vector<std::uint8_t> encode() const;
  // InputError naming `part` when the payload is not an index of `chunks` chunks.
  static ChunkIndex decode(const std::vector<std::uint8_t>& payload, size_t chunks, const std::string& part);
};

// `<output>.parts/generation.<g>.h5`: where an interrupted run's staged file of generation g is kept.
std::string generation_file(const std::string& output, std::uint64_t generation);

// The chunks of `index` read back from `data_file` at their addresses as a packed payload (chunk_codec.hpp's layout),
// every chunk's CRC-32 checked: InputError naming the file and the chunk otherwise.
std::vector<std::uint8_t> read_indexed_chunks(const ChunkIndex& index, const std::string& data_file);

// Rank 0 during the compute phase: the staged output, open, and the blocks' chunks written into it.
class ChunkWriter {
 public:
  // Creates `path` (truncating it) through `output.create`.
  ChunkWriter(const std::string& path, std::uint64_t generation, const ChunkCodec& codec, const ChunkedOutput& output);
  ~ChunkWriter();
  ChunkWriter(const ChunkWriter&) = delete;
  ChunkWriter& operator=(const ChunkWriter&) = delete;

  // Writes the block's chunks (packed over `window`, chunks of chunk_w x chunk_h) into its group's datasets, then
  // its index as the part at `part` (kind `kind`), then calls `stored`. `unit` is passed on to `stored`.
  void store(size_t unit, size_t group, const geo::Window& window, int chunk_w, int chunk_h,
             const std::vector<std::uint8_t>& packed, const std::string& part, const PartKind& kind);
  std::uint64_t bytes_stored() const { return bytes_; }
  // Writes out the file's metadata and closes it; throws OutputError naming the file on failure.
  void close();

 private:
  std::string path_;
  std::uint64_t generation_;
  const ChunkCodec& codec_;
  const ChunkedOutput& output_;
  std::unique_ptr<h5::File> file_;
  OutputTargets targets_;
  std::uint64_t bytes_ = 0;
};

// Blocks' packed chunks sent from the other ranks to rank 0, which writes them (ChunkWriter). A sender keeps two
// blocks in flight, so it goes on computing while rank 0 is busy with a block of its own.
class ChunkShipper {
 public:
  explicit ChunkShipper(MPI_Comm comm) : comm_(comm) {}
  ~ChunkShipper();  // waits for what is in flight
  ChunkShipper(const ChunkShipper&) = delete;
  ChunkShipper& operator=(const ChunkShipper&) = delete;

  // A buffer to pack the next block into (its previous send finished).
  std::vector<std::uint8_t>& next_buffer();
  // Sends the buffer last returned by next_buffer(), as unit `unit`.
  void send(size_t unit);
  void wait_all();

 private:
  struct Slot {
    std::vector<std::uint8_t> data;
    std::uint64_t header[2] = {0, 0};
    std::vector<MPI_Request> requests;
  };
  MPI_Comm comm_;
  Slot slots_[2];
  int current_ = 1;
};

// Rank 0: receives the blocks the other ranks have sent into `buffer` (reused: memory follows the block size), each
// handed to `store(unit, buffer)`. With `wait`, blocks until at least one arrived. Returns how many were received.
size_t receive_shipped(MPI_Comm comm, bool wait, std::vector<std::uint8_t>& buffer,
                       const std::function<void(size_t, const std::vector<std::uint8_t>&)>& store);

}  // namespace s2crop::pipeline
