#pragma once
// A block's part payload as the output file stores it: every plane of the block (a month of a band, a layer of a
// map) is one HDF5 chunk, padded to the chunk's edge with the plane's fill value, byte-shuffled and deflated exactly
// as the output dataset's filters (h5::Node::create_dataset: shuffle + deflate) would. The stage computes the block
// into memory once; the part holds the compressed chunks; the assembly copies them into the file with
// Dataset::write_chunk without decompressing and compressing again. Bytes written per run: the parts (the output's
// size) and the output, not an uncompressed copy of everything in between.
//
// Packed layout: uint64 plane count, uint64 compressed size of each plane, then the chunks one after another.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "s2crop/geo/grid.hpp"

namespace s2crop::pipeline {

// `planes` consecutive planes of one pixel type, their fill value written where the chunk reaches past the block.
struct PlaneGroup {
  size_t planes = 1;
  size_t element_bytes = 1;  // 1 or 2
  double fill = 0;
};

class ChunkCodec {
 public:
  ChunkCodec() = default;
  ChunkCodec(std::vector<PlaneGroup> groups, int deflate);
  // No groups: the stage keeps raw payloads (the mosaic, whose output is a GeoTIFF).
  bool active() const { return !groups_.empty(); }
  int deflate() const { return deflate_; }
  size_t planes() const { return element_bytes_.size(); }
  size_t element_bytes(size_t plane) const { return element_bytes_.at(plane); }
  // The uncompressed payload of a block: [plane][pixel], planes in group order.
  size_t payload_bytes(size_t pixels) const;
  // payload over `window` (chunks of chunk_width x chunk_height with the window at their origin) -> packed.
  void pack(const std::uint8_t* payload, const geo::Window& window, int chunk_width, int chunk_height,
            std::vector<std::uint8_t>& packed) const;

 private:
  std::vector<PlaneGroup> groups_;
  std::vector<size_t> element_bytes_;
  std::vector<double> fill_;
  int deflate_ = 0;
};

// The chunks of a packed payload (its table checked against the codec and the payload's size).
class PackedChunks {
 public:
  // Throws InputError naming `path` when the table does not describe `packed`.
  PackedChunks(const ChunkCodec& codec, const std::vector<std::uint8_t>& packed, const std::string& path);
  const std::uint8_t* data(size_t plane) const { return base_ + offsets_.at(plane); }
  size_t size(size_t plane) const { return sizes_.at(plane); }
  // Plane `plane` decompressed onto the block's window: [pixel] of the plane's type.
  void unpack(size_t plane, const geo::Window& window, int chunk_width, int chunk_height, void* out) const;

 private:
  const ChunkCodec& codec_;
  const std::uint8_t* base_;
  std::vector<size_t> offsets_, sizes_;
  std::string path_;
};

}  // namespace s2crop::pipeline
